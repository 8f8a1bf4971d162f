"""The training configuration: every default with the reason for it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from rnnkit.lm.model import ModelConfig
from rnnkit.optim import OPTIMIZERS


@dataclass(frozen=True)
class TrainConfig:
    paths: tuple[str, ...] = ()     # empty: the running interpreter's standard library, no download
    cell: str = "gru"               # 3 gates to the LSTM's 4: more text per second, and in our
                                    # 3-minute runs it learned faster per step than the LSTM too
    peephole: bool = False          # Graves peepholes; off by default as in most published LMs
    layers: int = 2                 # two layers beat one at equal time on a 2-core CPU
    hidden: int = 256               # large enough to learn syntax, small enough for ~3 min runs
    embed: int = 64                 # ~150 distinct characters need few dimensions
    dropout: float = 0.0            # a 3-minute run sees ~1 epoch: nothing to regularise yet
    seq_len: int = 32               # BPTT window; state is carried beyond it. Half of 64 doubles
                                    # the updates per character: 1.749 vs 1.79 bits/char in 3 min
                                    # (16: 1.792, 24: 1.774, 48: 1.768 measured the same way);
                                    # for runs of 15 minutes and more, 64 is better (1.615 vs 1.684)
    batch_size: int = 128           # per-step matrix products of 128 rows run BLAS far closer to
                                    # its peak than 32; measured best of 32/64/128/256 in 3 minutes
    optimizer: str = "adam"         # robust to the learning rate on recurrent nets
    lr: float = 6e-3                # peak rate for batch 128 with the cosine decay below; best of
                                    # 3e-3 .. 1.2e-2 measured on the default corpus
    warmup: int = 0                 # steps of linear warm-up; Adam at 2e-3 needs none here
    schedule: str = "cosine"        # "constant" | "step" | "cosine": decays to 5% at the last step,
                                    # --max-steps or else estimated from the time budget; the
                                    # annealing is worth ~0.03 bits/char in a 3-minute run
    clip: float = 1.0               # global gradient-norm clipping against exploding gradients
    max_steps: int = 0              # 0: no step limit, stop on --time-budget
    time_budget: float = 180.0      # seconds of training steps (validation not counted): ~3 minutes
    val_fraction: float = 0.05      # the last 5% of the text is held out
    eval_every: int = 300           # steps between validation passes (and checkpoints): ~1 minute
    sample_chars: int = 300         # length of the samples shown during and after training
    seed: int = 0                   # initialisation, dropout and sampling
    out: str = "runs/charlm"        # run directory

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        positive = ("layers", "hidden", "embed", "seq_len", "batch_size", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "warmup", "sample_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.time_budget <= 0 and self.max_steps == 0:
            raise ValueError("give a positive --time-budget or --max-steps, or training never ends")
        if self.schedule not in ("constant", "step", "cosine"):
            raise ValueError(f"--schedule must be constant, step or cosine, got {self.schedule!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must lie in [0, 1), got {self.dropout}")
        if self.clip < 0:
            raise ValueError(f"--clip must be >= 0 (0 disables clipping), got {self.clip}")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, self.cell, self.embed, self.hidden, self.layers,
                           self.dropout, self.peephole)

    def to_json(self) -> dict:
        d = asdict(self)
        d["paths"] = list(self.paths)
        return d

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if k == "paths" else v for k, v in data.items() if k in known})


# Options that only say how long or how often this invocation runs; a resumed run may change them.
RUN_LENGTH_OPTIONS = ("max_steps", "time_budget", "eval_every", "sample_chars")
