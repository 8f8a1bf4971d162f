"""The training configuration: every default with the reason for it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields

from rnnkit.checks import choice_problem
from rnnkit.init import SCHEMES
from rnnkit.kinds import option_problems
from rnnkit.layer_flags import LAYER_FLAGS, flag_problems
from rnnkit.lm.model import CELLS, ModelConfig
from rnnkit.norm.between import NORMS
from rnnkit.lm.softmax import SOFTMAX_CHOICES
from rnnkit.lm.tokens import KINDS
from rnnkit.optim import OPTIMIZERS
from rnnkit.ranges import (
    COUNT, FRACTION, NONNEGATIVE, NONNEGATIVE_INT, POSITIVE, PROBABILITY_BELOW_1, SEED, Range,
)


@dataclass(frozen=True)
class TrainConfig:
    paths: tuple[str, ...] = ()     # empty: the running interpreter's standard library, no download
    tokens: str = "char"            # "char" | "word" | "bpe" (rnnkit.lm.tokens); characters: any
                                    # text, no tokenizer to learn, no extra dependency. (Words and
                                    # BPE with the adaptive softmax did better in 3 minutes of a
                                    # loaded machine, 1.74 and 1.84 against 1.92 bits/char:
                                    # docs/language_model.md; longer runs not measured.)
    vocab_size: int = 0             # words (word) or tokens (bpe); 0: the kind's default
                                    # (rnnkit.lm.tokens.DEFAULT_SIZES)
    softmax: str = "auto"           # "auto" | "full" | "adaptive": auto is adaptive from
                                    # rnnkit.lm.softmax.AUTO_ADAPTIVE ids on, where it is faster
    cell: str = "gru"               # 3 gates to the LSTM's 4: more text per second, and in our
                                    # 3-minute runs it learned faster per step than the LSTM too
    peephole: bool = False          # Graves peepholes; off by default as in most published LMs
    layers: int = 2                 # two layers beat one at equal time on a 2-core CPU
    hidden: int = 256               # large enough to learn syntax, small enough for ~3 min runs
    embed: int = 64                 # ~150 distinct characters need few dimensions
    dropout: float = 0.0            # a 3-minute run sees ~1 epoch: nothing to regularise yet
    norm_between: str = "none"      # "none" | "batch" | "layer" after each recurrent layer. After
                                    # 300 steps (one seed): batch 1.925, layer 1.944, none 2.007
                                    # bits/char (docs/training_remedies.md); not yet compared at
                                    # equal time, where a norm's cost per step counts: none for now
    layer_norm: bool = False        # layer-normalised cells. 180 s of the default run: 1.694 and
                                    # 1.711 against plain 1.778 and 1.747 bits/char (2 seeds,
                                    # docs/training_remedies.md); off until more seeds and the
                                    # refusals it brings (peephole, zoneout, torch) are settled
    recurrent_dropout: float = 0.0  # variational dropout on the recurrent state: nothing to
                                    # regularise in ~1 epoch, as dropout
    zoneout: float = 0.0            # zoneout probability on the state; 0 for the same reason
    init: str = "default"           # "default" | "xavier" | "orthogonal" | "kaiming" for the
                                    # recurrent weights (rnnkit.init.init_recurrent_); default:
                                    # PyTorch's U(-1/sqrt(H), 1/sqrt(H)), what the other defaults
                                    # were tuned with (300 steps: kaiming 1.975, orthogonal 2.068,
                                    # default 2.007 bits/char, one seed: too close to switch)
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
    schedule_steps: int = 0         # the cosine's last step; 0: --max-steps, or else fitted to the
                                    # time budget before the first step (what a replay gives back)
    clip: float = 1.0               # global gradient-norm clipping against exploding gradients
    max_steps: int = 0              # 0: no step limit, stop on --time-budget
    time_budget: float = 180.0      # seconds of training steps (validation not counted): ~3 minutes;
                                    # the command line drops it when --max-steps comes alone
                                    # (step_limits), so that such a run involves no clock
    val_fraction: float = 0.05      # the last 5% of the text is held out
    eval_every: int = 300           # steps between validation passes (and checkpoints): ~1 minute
    sample_chars: int = 300         # length of the samples shown during and after training
    seed: int = 0                   # initialisation, dropout and sampling
    precision: str = "float32"      # "float32" | "bfloat16": the training step's layer products
                                    # (rnnkit.autocast; validation and generation stay float32).
                                    # bfloat16 needs AVX512_BF16 or AMX; the default run's layers
                                    # (H = 256, B = 128) gain least from it, and every CPU has float32
    threads: int = 0                # engine threads per process; 0: the CPUs this process may use,
                                    # divided among the processes on its machine (mpiexec -n), so
                                    # that they never start more threads than there are cores
    out: str = "runs/charlm"        # run directory

    def __post_init__(self) -> None:
        problems = train_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError("; ".join(problems))

    def model_config(self, vocab_size: int, softmax: str = "full", cutoffs: tuple[int, ...] = ()) -> ModelConfig:
        return ModelConfig(vocab_size, self.cell, self.embed, self.hidden, self.layers,
                           self.dropout, self.peephole, softmax, cutoffs, norm_between=self.norm_between,
                           init=self.init, **{f: getattr(self, f) for f in LAYER_FLAGS})

    def to_json(self) -> dict:
        d = asdict(self)
        d["paths"] = list(self.paths)
        return d

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        # Run directories written before there was a choice of softmax used the full one.
        data = {"softmax": "full", **data}
        return cls(**{k: tuple(v) if k == "paths" else v for k, v in data.items() if k in known})


# What each numeric setting accepts: checked here, by the command line's options (before any work)
# and in a run directory's config.json.
TRAIN_LIMITS: dict[str, Range] = {
    "layers": COUNT, "hidden": COUNT, "embed": COUNT, "seq_len": COUNT, "batch_size": COUNT,
    "eval_every": COUNT,
    "dropout": PROBABILITY_BELOW_1, "recurrent_dropout": PROBABILITY_BELOW_1, "zoneout": PROBABILITY_BELOW_1,
    "lr": POSITIVE,                  # a rate of 0 would train nothing
    "clip": NONNEGATIVE,             # 0: no clipping
    "warmup": NONNEGATIVE_INT, "max_steps": NONNEGATIVE_INT, "sample_chars": NONNEGATIVE_INT,
    "schedule_steps": NONNEGATIVE_INT,   # 0: --max-steps, or fitted to the time budget
    "time_budget": NONNEGATIVE,      # 0: no time limit (then --max-steps ends the run)
    "val_fraction": FRACTION,
    "seed": SEED,
    "threads": NONNEGATIVE_INT,      # 0: this process's share of its machine's cores
    "vocab_size": NONNEGATIVE_INT,   # 0: the token kind's default
}
TRAIN_CHOICES: dict[str, tuple[str, ...]] = {
    "cell": CELLS, "optimizer": tuple(sorted(OPTIMIZERS)), "schedule": ("constant", "cosine", "step"),
    "tokens": KINDS, "softmax": SOFTMAX_CHOICES, "norm_between": NORMS, "init": SCHEMES,
    "precision": ("float32", "bfloat16"),
}

# The model's own distribution (as Hugging Face's generate and char-rnn default): at 0.8 the
# samples of a 60-s Chinese dictionary run held 62% CJK ideographs against the corpus's 74%
# (the sharpened distribution favours its layout: "\t1.", "。", newlines); at 1.0, 72-75%.
DEFAULT_TEMPERATURE = 1.0

# What the options of `rnnkit generate` accept.
GENERATE_LIMITS: dict[str, Range] = {
    "length": NONNEGATIVE_INT,       # characters after the prime
    "temperature": NONNEGATIVE,      # 0: always the most likely character
    "top_k": NONNEGATIVE_INT,        # 0: sample among all characters
    "top_p": Range(float, low=0, high=1, low_open=True),   # nucleus sampling; 1: no cut
    "seed": SEED,
}


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def train_problems(values: Mapping, name: Callable[[str], str] = option_name) -> list[str]:
    """Every reason why these training settings (field -> value, any subset) are unusable.

    ``name`` turns a field into what the user knows it as (``--lr`` on the command line,
    ``train.lr`` in config.json).
    """
    problems = [p for field, limits in TRAIN_LIMITS.items() if field in values
                and (p := limits.problem(name(field), values[field])) is not None]
    problems += [p for field, choices in TRAIN_CHOICES.items() if field in values
                 and (p := choice_problem(name(field), values[field], choices)) is not None]
    problems += [f"{name(flag)} must be true or false, got {values[flag]!r}" for flag in ("peephole", "layer_norm")
                 if flag in values and not isinstance(values[flag], bool)]
    paths = values.get("paths", ())
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
        problems.append(f"{name('paths')} must be a list of file or directory names, got {paths!r}")
    if not isinstance(values.get("out", ""), str):
        problems.append(f"{name('out')} must be a directory name, got {values['out']!r}")
    if problems:
        return problems
    if values.get("time_budget", 1) == 0 and values.get("max_steps", 1) == 0:
        problems.append(f"give a positive {name('time_budget')} or {name('max_steps')}, or training never ends")
    problems += option_problems(values.get("cell"), values, name)
    problems += [p for p in flag_problems(values.get("cell", "gru"), values, name) if "needs recurrent layers" in p]
    if values.get("vocab_size") and values.get("tokens", "char") == "char":
        problems.append(f"{name('vocab_size')} applies to word and bpe tokens (characters take every one "
                        f"the text has), got {name('tokens')} char")
    if values.get("schedule_steps") and values.get("schedule", "cosine") != "cosine":
        problems.append(f"{name('schedule_steps')} applies to the cosine schedule only, got "
                        f"{name('schedule')} {values['schedule']}")
    return problems


def step_limits(given: dict) -> dict:
    """The options the user gave, with --time-budget 0 when --max-steps N comes without it: N steps
    exactly, the same run on every run and every machine of a kind (a budget stops on the clock)."""
    if given.get("max_steps") and "time_budget" not in given:
        return {**given, "time_budget": 0.0}
    return given


# Options that only say how long, how often or on how many threads this invocation runs; a
# resumed run may change them.
RUN_LENGTH_OPTIONS = ("max_steps", "time_budget", "eval_every", "sample_chars", "threads", "schedule_steps")
