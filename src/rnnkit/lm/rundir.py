"""A run directory written by ``rnnkit train``: its files, and exactly what is wrong with it.

Layout of a run directory (each file written atomically, :mod:`rnnkit.files`; nothing is ever
loaded with pickle)::

    config.json          model and training configuration, corpus summary
    vocab.json           the characters (id 0 is the unknown token)
    latest.safetensors   model, optimizer state, carried hidden state; metadata: step, RNG, ...
    best.safetensors     model weights at the best validation score so far
    metrics.jsonl        one JSON object per training step and per evaluation (with its sample)
    timings.jsonl        the seconds of training after each step, and its characters per second
    train.lock           while a run writes the directory (its lock: rnnkit.lm.runlock)

config.json and vocab.json are checked against their schema and against the weights' shapes
(:mod:`rnnkit.lm.schema`), every problem reported in one message. Of the two checkpoints,
``best.safetensors`` is preferred for using the model; when it is missing or damaged and
``latest.safetensors`` is good (or the reverse), the good one is used and a :class:`Note` says
which file and why. Every command that uses a model takes ``--checkpoint best|latest|PATH``
(:func:`checkpoint_option`): then that checkpoint is used, or the command stops saying why. Resuming training needs ``latest.safetensors`` itself:
:func:`read_training_state` refuses a damaged one rather than fall back and silently lose steps.
"""

from __future__ import annotations

import argparse
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from rnnkit.lm.data import Vocab
from rnnkit.errors import CheckpointError, DamagedCheckpoint, DamagedFile, FileError, MismatchedCheckpoint, Note
from rnnkit.files import damage, read_json, read_tensors, unprefixed
from rnnkit.lm.model import CharLM, ModelConfig
from rnnkit.lm.tokens import load_tokens
from rnnkit.lm.schema import (
    ANCHORS, config_problems, model_config, not_a_language_model, shape_problems, value_problems, vocab_problems,
)

CHECKPOINTS = ("best", "latest")
RESTORE = "restore the run directory from a copy, or train again (its files must all come from one run)"

# The metadata latest.safetensors carries for --resume, and the type of each entry.
TRAINING_META = {"step": numbers.Integral, "best_val": numbers.Real, "optimizer_lr": numbers.Real,
                 "optimizer_steps": numbers.Integral, "rng": dict, "corpus_sha256": str}


@dataclass(frozen=True)
class LoadedRun:
    model: CharLM
    vocab: Vocab            # the run's tokens: a Vocab (characters), or rnnkit.lm.tokens' words or BPE
    config: dict            # config.json, checked
    weights: Path           # the checkpoint the model's weights came from
    step: int | None        # the training step it was saved at


def load_model(run_dir, which: str | None = None) -> tuple[CharLM, Vocab, dict]:
    """(model, vocab, config) of a run directory; see :func:`load_run`."""
    run = load_run(run_dir, which)
    return run.model, run.vocab, run.config


def checkpoint_option(text: str) -> str:
    """argparse ``type=`` of ``--checkpoint``: ``best``, ``latest`` or the path of a checkpoint
    file (checked to exist now, so that a wrong path fails before any work)."""
    if text in CHECKPOINTS:
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r} is a directory; --checkpoint takes best, latest or the path of a checkpoint file "
            "(give a run directory as DIR, the command's first argument)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"must be best, latest or the path of a checkpoint file, got {text!r} "
                                         "(no such file)")
    return text


def add_checkpoint_option(parser) -> None:
    """``--checkpoint best|latest|PATH``, the same option on every command that uses a model."""
    parser.add_argument("--checkpoint", type=checkpoint_option, default=None, metavar="best|latest|PATH",
                        help="the weights to use: best (the best validation), latest (the last saved step) "
                             "or a checkpoint file; default best, else latest, with a note saying why")


def load_run(run_dir, which: str | None = None) -> LoadedRun:
    """The model of a run directory: its config.json and vocab.json, and the weights ``which``
    names (``--checkpoint``): ``best`` or ``latest`` of the run directory, or the path of a
    checkpoint file, used as asked or not at all. ``None`` (no --checkpoint): best.safetensors,
    else latest.safetensors, with a Note saying why when the other one is used."""
    run = Path(run_dir)
    if which is None:
        return _load_preferred(run)
    config, vocab = read_run_files(run, need_checkpoint=which in CHECKPOINTS)
    path = run / f"{which}.safetensors" if which in CHECKPOINTS else Path(which)
    if not path.is_file():
        raise CheckpointError(_absent(run, which))
    try:
        model, step = _load_weights(path, config, vocab)
    except (DamagedFile, MismatchedCheckpoint) as exc:
        raise type(exc)(f"--checkpoint {which}: {exc}" + _other_usable(run, path)) from None
    return LoadedRun(model, vocab, config, path, step)


def _absent(run: Path, which: str) -> str:
    if which == "best":
        return (f"--checkpoint best: {run} has no best.safetensors yet (no validation has been saved); "
                "use --checkpoint latest")
    return f"--checkpoint {which}: {run / 'latest.safetensors' if which == 'latest' else which}: no such file"


def _other_usable(run: Path, used: Path) -> str:
    """'; best.safetensors is intact: ...' when the run's other checkpoint could be used instead."""
    for other in (run / f"{w}.safetensors" for w in CHECKPOINTS):
        if other != used and other.is_file() and damage(other) is None:
            return f"; {other} is intact: use --checkpoint {other.stem}, or leave --checkpoint out"
    return ""


def _load_preferred(run: Path) -> LoadedRun:
    config, vocab = read_run_files(run)
    order = list(CHECKPOINTS)
    failures: list[tuple[Path, FileError]] = []
    for path in (run / f"{w}.safetensors" for w in order):
        if not path.is_file():
            continue
        try:
            model, step = _load_weights(path, config, vocab)
        except (DamagedFile, MismatchedCheckpoint) as exc:
            failures.append((path, exc))
            continue
        _note_choice(run, path, step, failures, order)
        return LoadedRun(model, vocab, config, path, step)
    raise CheckpointError(_no_usable_checkpoint(run, failures))


def read_run_files(run: Path, need_checkpoint: bool = True) -> tuple[dict, Vocab]:
    """config.json and vocab.json of a run directory, checked; every problem in one error.
    ``need_checkpoint``: the directory must hold best.safetensors or latest.safetensors too."""
    if not run.is_dir():
        state = "is a file, not a directory" if run.exists() else "no such directory"
        raise CheckpointError(f"{run}: {state}; give a run directory written by 'rnnkit train'")
    missing = [n for n in ("config.json", "vocab.json") if not (run / n).is_file()]
    if need_checkpoint and not any((run / f"{w}.safetensors").is_file() for w in CHECKPOINTS):
        missing.append("best.safetensors or latest.safetensors")
    if missing:
        raise CheckpointError(f"{run}: no checkpoint here (missing {', '.join(missing)}; a run directory "
                              "holds the files 'rnnkit train' writes)")
    problems, parsed = [], {}
    for name, check in (("config.json", config_problems), ("vocab.json", lambda d: vocab_problems(d, run))):
        try:
            parsed[name] = read_json(run / name)
        except FileError as exc:
            problems.append(str(exc))
            continue
        found = check(parsed[name])
        if found:
            problems.append(f"{run / name}: " + "; ".join(found))
    if problems:
        raise CheckpointError("; ".join(problems) + f"; {RESTORE}")
    return parsed["config.json"], load_tokens(run, parsed["vocab.json"])


def vocab_entries(vocab) -> str:
    """What vocab.json counts: characters, or tokens (words, BPE)."""
    return "characters" if vocab.kind == "char" else "tokens"


def check_weights(path: Path, weights: dict[str, np.ndarray], cfg: ModelConfig, vocab) -> None:
    """Raise if the model tensors of checkpoint ``path`` cannot be the weights of this model."""
    alien = not_a_language_model(weights)
    if alien:
        raise DamagedCheckpoint(f"{path} {alien}")
    mismatches = shape_problems(weights, cfg, vocab.size, vocab_entries(vocab))
    if mismatches:
        raise MismatchedCheckpoint(f"{path} does not fit config.json and vocab.json: " + "; ".join(mismatches))
    bad_values = value_problems(weights)
    if bad_values:
        raise DamagedCheckpoint(f"{path} is damaged: " + "; ".join(bad_values))


def _load_weights(path: Path, config: dict, vocab: Vocab) -> tuple[CharLM, int | None]:
    tensors, meta = read_tensors(path)
    weights = unprefixed("model.", tensors)
    cfg = model_config(config["model"])
    check_weights(path, weights, cfg, vocab)
    model = CharLM(cfg, rng=0).eval()
    try:
        model.load_state_dict(weights)
    except ValueError as exc:           # lists every missing, unexpected and mis-shaped tensor
        raise MismatchedCheckpoint(f"{path} does not fit config.json: {exc}") from None
    step = meta.get("step")
    return model, step if isinstance(step, int) else None


def _at(step: int | None) -> str:
    return f" (step {step})" if step is not None else ""


def _note_choice(run: Path, used: Path, step: int | None, failures: list, order: list[str]) -> None:
    """Say which checkpoint is used when it is not the preferred one, or when the other is damaged."""
    preferred = run / f"{order[0]}.safetensors"
    if failures:
        warnings.warn(f"{failures[0][1]}; using {used}{_at(step)} instead", Note, stacklevel=3)
    elif used != preferred:
        warnings.warn(f"there is no {preferred.name} (no validation has been saved yet); using "
                      f"{used}{_at(step)}", Note, stacklevel=3)
    else:
        for other in (run / f"{w}.safetensors" for w in order[1:]):
            problem = damage(other) if other.is_file() else None
            if problem:
                consequence = ", so --resume cannot continue this run" if other.name == "latest.safetensors" else ""
                warnings.warn(f"{other} {problem}{consequence}; using {used}{_at(step)}, which is intact",
                              Note, stacklevel=3)


def language_model_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint ``rnnkit train`` wrote (judged by its header alone: the
    model's 2-D anchor tensors; a damaged or foreign file is not)."""
    try:
        if not path.is_file() or damage(path) is not None:
            return False
        with safe_open(str(path), framework="np") as f:
            names = set(f.keys())
            return all(f"model.{k}" in names and len(f.get_slice(f"model.{k}").get_shape()) == 2 for k in ANCHORS)
    except (OSError, SafetensorError):
        return False


def _no_usable_checkpoint(run: Path, failures: list[tuple[Path, FileError]]) -> str:
    reasons = [str(exc) for _, exc in failures]
    mismatch = any(isinstance(exc, MismatchedCheckpoint) for _, exc in failures)
    advice = RESTORE if mismatch else f"train again (rnnkit train ... --out {run})"
    tails = {str(exc).removeprefix(str(path)) for path, exc in failures}
    if len(failures) > 1 and len(tails) == 1:          # the same problem in both: say it once
        reasons = [" and ".join(str(path) for path, _ in failures) + tails.pop().replace(" does not", " do not", 1)]
    return f"{run}: no usable checkpoint: " + "; ".join(reasons) + f"; {advice}"


def read_training_state(run: Path) -> tuple[dict[str, np.ndarray], dict]:
    """latest.safetensors for ``--resume``: tensors and metadata, or a refusal saying why.

    Falling back to best.safetensors would silently lose every step after the best validation
    (and it holds no optimizer state), so a damaged latest.safetensors stops the resume.
    """
    path = run / "latest.safetensors"
    try:
        tensors, meta = read_tensors(path)
        wrong = [k for k, kind in TRAINING_META.items() if not isinstance(meta.get(k), kind)
                 or isinstance(meta.get(k), bool)]
        if wrong:
            raise DamagedCheckpoint(f"{path} has damaged metadata (missing or mistyped: {', '.join(wrong)})")
    except DamagedFile as exc:
        raise refuse_resume(run, exc) from None
    return tensors, meta


def refuse_resume(run: Path, problem: FileError) -> FileError:
    """The refusal of ``--resume`` (naming best.safetensors as still usable when latest is damaged)."""
    best = run / "best.safetensors"
    usable = isinstance(problem, DamagedFile) and best.is_file() and damage(best) is None
    return type(problem)(
        f"--resume: {problem}; nothing was changed (resuming from another checkpoint would silently "
        "lose training steps)" + (f"; {best} still works for 'rnnkit generate' and 'rnnkit eval'" if usable else "")
        + "; to train again, start a fresh run without --resume, or use another --out")
