"""What a run directory's files must hold, checked against each other and against the weights.

Each check returns a list of problems, each naming the key or tensor, what was expected and what
was found, so that a damaged run directory is reported whole in one message rather than one
traceback at a time::

    config.json  {"model": {vocab_size, cell, embed, hidden, layers, dropout, peephole
                            [, softmax, cutoffs, div_value, norm_between, layer_norm,
                             recurrent_dropout, zoneout, init]},
                  "train": {TrainConfig's fields; TRAIN_REQUIRED at least}, "corpus": {...}}
    vocab.json   {"unknown_id": 0, "chars": [distinct single characters]}, or for words and BPE
                 the forms of rnnkit.lm.tokens
    weights      model.embed.weight (V, E), model.rnn.weight_ih_l0 (G·H, E), ...,
                 model.head.weight (V, H), model.head.bias (V,)   with G = 4 / 3 / 1 for LSTM / GRU / RNN;
                 adaptive softmax: model.head.head.weight (c_0 + K, H), model.head.tail.{k}.0.weight
                 (d_k, H), model.head.tail.{k}.1.weight (c_{k+1} − c_k, d_k);
                 norm_between: model.rnn.norms.{k}.weight, .bias (H,) and for batch norm
                 .running_mean, .running_var (H,), .num_batches_tracked (int64, shape ())
    latest       the weights, optim.{k}.{name} (the optimizer's state), carry.{k} (the carried
                 state, (L, B, H) each); metadata: where the run stands (:class:`RunState`)
    best         the weights; metadata {"step", "val_nll"}
"""

from __future__ import annotations

import numbers
import re
from dataclasses import asdict, dataclass, fields

import numpy as np

from rnnkit.checks import choice_problem
from rnnkit.init import SCHEMES
from rnnkit.lm.config import train_problems
from rnnkit.kinds import KINDS, option_problems
from rnnkit.layer_flags import flag_problems
from rnnkit.lm.model import CELLS, SOFTMAXES, ModelConfig
from rnnkit.norm.between import NORMS
from rnnkit.ranges import COUNT, POSITIVE, PROBABILITY_BELOW_1, Range

MODEL_LIMITS: dict[str, Range] = {
    "vocab_size": Range(int, low=2),     # the unknown-character token and at least one character
    "embed": COUNT, "hidden": COUNT, "layers": COUNT, "dropout": PROBABILITY_BELOW_1, "div_value": POSITIVE,
}
# Model keys that run directories written before the adaptive softmax lack, with what they meant.
MODEL_OPTIONAL = {"softmax": "full", "cutoffs": [], "div_value": 4.0,
                  # ... and before the remedies of issue 19: the plain stack, cells and initialisation
                  "norm_between": "none", "layer_norm": False, "recurrent_dropout": 0.0, "zoneout": 0.0,
                  "init": "default"}
MODEL_CHOICES = {"norm_between": NORMS, "init": SCHEMES}
REMEDIES = ("norm_between", "layer_norm", "recurrent_dropout", "zoneout", "init")     # in both sections
SHARED = ("cell", "embed", "hidden", "layers", "dropout", "peephole")   # in both sections
# The train keys a run cannot do without (the model and its text); any other TrainConfig field
# missing from an older run directory takes its default, as TrainConfig.from_json does.
TRAIN_REQUIRED = ("paths", *SHARED, "seq_len", "batch_size", "val_fraction", "seed")


def _object_problem(name: str, value) -> str | None:
    return None if isinstance(value, dict) else f"{name} must be a JSON object, got {value!r:.60}"


def _missing(section: str, data: dict, required) -> list[str]:
    absent = [k for k in required if k not in data]
    return [f"{section} lacks the key{'s' if len(absent) > 1 else ''} {', '.join(absent)}"] if absent else []


def model_problems(data: dict) -> list[str]:
    """config.json's "model" section: ModelConfig's fields, each of the right type and range."""
    problems = _missing("model", data, [f.name for f in fields(ModelConfig) if f.name not in MODEL_OPTIONAL])
    problems += [p for key, limits in MODEL_LIMITS.items() if key in data
                 and (p := limits.problem(f"model.{key}", data[key])) is not None]
    problems += [p for key, choices in {"cell": CELLS, **MODEL_CHOICES}.items() if key in data
                 and (p := choice_problem(f"model.{key}", data[key], choices)) is not None]
    problems += flag_problems(data.get("cell"), data, lambda key: f"model.{key}")
    if "peephole" in data and not isinstance(data["peephole"], bool):
        problems.append(f"model.peephole must be true or false, got {data['peephole']!r}")
    else:
        problems += option_problems(data.get("cell"), data, lambda key: f"model.{key}")
    return problems + softmax_problems(data)


def softmax_problems(data: dict) -> list[str]:
    """The output layer's keys: softmax, and the adaptive softmax's cutoffs."""
    softmax, cutoffs = data.get("softmax", "full"), data.get("cutoffs", [])
    if (problem := choice_problem("model.softmax", softmax, SOFTMAXES)) is not None:
        return [problem]
    ints = isinstance(cutoffs, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in cutoffs)
    if not ints:
        return [f"model.cutoffs must be a list of integers, got {cutoffs!r:.60}"]
    V = data.get("vocab_size")
    if softmax == "adaptive" and isinstance(V, int) and not (
            cutoffs and cutoffs == sorted(set(cutoffs)) and cutoffs[0] > 0 and cutoffs[-1] < V):
        return [f"model.cutoffs must increase from 1 to at most model.vocab_size - 1 = {V - 1}, got {cutoffs!r:.60}"]
    return []


def model_config(data: dict) -> ModelConfig:
    """config.json's checked "model" section as a ModelConfig (keys a later version added are ignored;
    keys an earlier one lacked take what they meant then)."""
    return ModelConfig(**{f.name: data.get(f.name, MODEL_OPTIONAL.get(f.name)) for f in fields(ModelConfig)})


def config_problems(data) -> list[str]:
    """Everything wrong with the parsed content of config.json (an empty list: usable)."""
    if (p := _object_problem("the file", data)) is not None:
        return [p]
    problems = _missing("the file", data, ("model", "train"))
    sections = {k: data[k] for k in ("model", "train", "corpus") if k in data}
    problems += [p for k, v in sections.items() if (p := _object_problem(k, v)) is not None]
    if problems:
        return problems
    model, train = data["model"], data["train"]
    problems += model_problems(model)
    problems += _missing("train", train, TRAIN_REQUIRED)
    problems += train_problems(train, name=lambda field: f"train.{field}")
    if problems:
        return problems
    # SHARED keys are in every run directory; the remedies' keys only in newer ones
    later = [k for k in REMEDIES if k in model and k in train]
    return [f"model.{k} = {model[k]!r} but train.{k} = {train[k]!r} (they must agree)"
            for k in (*SHARED, *later) if model[k] != train[k]]


def vocab_problems(data, run=None) -> list[str]:
    """Everything wrong with the parsed content of vocab.json (of the run directory ``run``)."""
    if (p := _object_problem("the file", data)) is not None:
        return [p]
    if "tokens" in data and data["tokens"] != "char":
        from pathlib import Path

        from rnnkit.lm.tokens import tokens_problems
        return tokens_problems(data, Path(run or "."))
    if "chars" not in data:
        return ["the file lacks the key chars (the list of characters)"]
    chars = data["chars"]
    if not isinstance(chars, list):
        return [f"chars must be a list of single characters, got {type(chars).__name__} {chars!r:.60}"]
    problems = []
    bad = [(i, c) for i, c in enumerate(chars) if not (isinstance(c, str) and len(c) == 1)]
    if bad:
        i, c = bad[0]
        problems.append(f"chars must hold single characters; {len(bad)} entr{'ies do' if len(bad) > 1 else 'y does'} "
                        f"not, e.g. chars[{i}] = {c!r:.40}")
    elif len(set(chars)) != len(chars):
        twice = sorted({c for c in chars if chars.count(c) > 1})
        problems.append(f"chars must be distinct, but {''.join(twice)!r:.40} appear more than once")
    elif not chars:
        problems.append("chars is empty; a model needs at least one character")
    if data.get("unknown_id", 0) != 0:
        problems.append(f"unknown_id must be 0, got {data['unknown_id']!r}")
    return problems


def _layer_count(tensors: dict) -> int:
    pattern = re.compile(r"rnn\.weight_ih_l(\d+)$")
    return len({m.group(1) for k in tensors if (m := pattern.match(k))})


ANCHORS = ("embed.weight", "head.weight", "rnn.weight_ih_l0")      # 2-D tensors the sizes are read from
ADAPTIVE_HEAD = "head.head.weight"                                  # head.weight's place in an adaptive softmax


def _head_key(tensors: dict) -> str:
    return ADAPTIVE_HEAD if ADAPTIVE_HEAD in tensors else "head.weight"


def not_a_language_model(tensors: dict[str, np.ndarray]) -> str | None:
    """Why these tensors cannot be a character language model's at all, or None."""
    anchors = [_head_key(tensors) if k == "head.weight" else k for k in ANCHORS]
    absent = [k for k in anchors if k not in tensors or np.ndim(tensors[k]) != 2]
    return f"holds no language model (no 2-D tensor model.{absent[0]})" if absent else None


def _adaptive_problems(tensors: dict[str, np.ndarray], cfg: ModelConfig) -> list[str]:
    """The adaptive softmax's tensors against model.cutoffs (each cluster's rows, its projection's)."""
    ends = [*cfg.cutoffs, cfg.vocab_size]
    rows = tensors[ADAPTIVE_HEAD].shape[0]
    clusters = len({k.split(".")[2] for k in tensors if k.startswith("head.tail.")})
    problems = [] if rows == ends[0] + len(cfg.cutoffs) and clusters == len(cfg.cutoffs) else [
        f"model.cutoffs {list(cfg.cutoffs)} in config.json means {ends[0] + len(cfg.cutoffs)} head rows and "
        f"{len(cfg.cutoffs)} tail clusters, but the weights have {rows} ({ADAPTIVE_HEAD}) and {clusters}"]
    for k in range(min(clusters, len(cfg.cutoffs))):
        out = tensors.get(f"head.tail.{k}.1.weight")
        if out is not None and np.ndim(out) == 2 and out.shape[0] != ends[k + 1] - ends[k]:
            problems.append(f"model.cutoffs gives tail cluster {k} {ends[k + 1] - ends[k]} tokens in config.json "
                            f"but head.tail.{k}.1.weight has shape {out.shape}")
    return problems


def _norm_between(tensors: dict) -> str:
    """The norm between the layers that the tensors hold (rnnkit.norm.between's names)."""
    if "rnn.norms.0.running_mean" in tensors:
        return "batch"
    return "layer" if "rnn.norms.0.weight" in tensors else "none"


def shape_problems(tensors: dict[str, np.ndarray], cfg: ModelConfig, vocab_size: int,
                   what: str = "characters") -> list[str]:
    """How the model tensors (names without the ``model.`` prefix; ANCHORS present) disagree with
    config.json's model section and vocab.json's size (``vocab_size`` ids with the unknown token,
    ``what`` its entries are). Sizes are read off the tensors' shapes, so a wrong config never
    makes us build a model of the wrong size."""
    V, E = tensors["embed.weight"].shape
    head = _head_key(tensors)
    V_head, H = tensors[head].shape
    rows = tensors["rnn.weight_ih_l0"].shape[0]
    found = {"vocab_size": (V, f"embed.weight has shape {(V, E)}"),
             "embed": (E, f"embed.weight has shape {(V, E)}"),
             "hidden": (H, f"{head} has shape {(V_head, H)}"),
             "layers": (_layer_count(tensors), "rnn.weight_ih_l0 ... l{k} counted"),
             "peephole": ("rnn.weight_ci_l0" in tensors, "rnn.weight_ci_l0 present or not"),
             "softmax": ("adaptive" if head == ADAPTIVE_HEAD else "full", f"{head} present"),
             "norm_between": (_norm_between(tensors), "rnn.norms.0.weight and .running_mean present or not")}
    cell = next((c for c in CELLS if rows == KINDS[c].num_gates * H), None)      # rows of W_ih: G per unit
    found["cell"] = (cell or f"none of {', '.join(CELLS)}", f"rnn.weight_ih_l0 has {rows} rows for {H} units")
    problems = [f"model.{k} is {getattr(cfg, k)!r} in config.json but {v!r} in the weights ({why})"
                for k, (v, why) in found.items() if getattr(cfg, k) != v]
    if vocab_size != V:
        problems.append(f"vocab.json has {vocab_size - 1} {what} ({vocab_size} ids with the unknown "
                        f"token) but the weights have {V} (embed.weight has shape {(V, E)})")
    if not problems and head == ADAPTIVE_HEAD:
        problems += _adaptive_problems(tensors, cfg)
    return problems


def value_problems(tensors: dict[str, np.ndarray]) -> list[str]:
    """Tensors that are not finite floating-point numbers (training never saves those)."""
    not_float = [k for k, a in tensors.items() if a.dtype.kind != "f"
                 and not (k.endswith(".num_batches_tracked") and a.dtype.kind == "i")]   # batch norm's count
    not_finite = [k for k, a in tensors.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    problems = [f"tensor model.{k} has dtype {tensors[k].dtype}, expected floating point" for k in not_float[:3]]
    if not_finite:
        problems.append(f"{len(not_finite)} tensor(s) hold NaN or infinite values, e.g. model.{not_finite[0]}")
    return problems


@dataclass(frozen=True)
class RunState:
    """Where a run stands: latest.safetensors' metadata beside its tensors, in this order."""
    step: int                     # the training steps taken: the data position
    best_val: float               # the best validation loss (nats per token); inf before the first
    optimizer_lr: float           # the optimizer's learning rate at the last step
    last_step: int | None         # the schedule's last step; None while it is not fixed yet
    optimizer_steps: int          # the optimizer's own count of updates
    rng: dict                     # the dropout generator's bit_generator.state
    corpus_sha256: str            # the text's fingerprint: a resumed run must train on the same
    train_seconds: float          # the seconds in training steps, resumed parts included

    def to_meta(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict) -> "RunState":
        """The state of checked metadata (:func:`meta_problems`); raises ValueError or TypeError
        where a value cannot be what it names. Checkpoints written before ``train_seconds`` was
        recorded lack it (0 s)."""
        last = meta.get("last_step")
        return cls(int(meta["step"]), float(meta["best_val"]), float(meta["optimizer_lr"]),
                   None if last is None else int(last), int(meta["optimizer_steps"]), meta["rng"],
                   meta["corpus_sha256"], float(meta.get("train_seconds", 0.0)))


# The metadata latest.safetensors must carry for --resume, and the type of each entry.
TRAINING_META = {"step": numbers.Integral, "best_val": numbers.Real, "optimizer_lr": numbers.Real,
                 "optimizer_steps": numbers.Integral, "rng": dict, "corpus_sha256": str}


def meta_problems(meta: dict) -> list[str]:
    """The keys of latest.safetensors' metadata that are missing or mistyped."""
    return [k for k, kind in TRAINING_META.items() if not isinstance(meta.get(k), kind)
            or isinstance(meta.get(k), bool)]
