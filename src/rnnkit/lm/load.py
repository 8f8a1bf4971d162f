"""The model of a run directory, for the commands that use one (generate, eval, inspect, export, ...).

Of the two checkpoints of a run directory (:mod:`rnnkit.lm.rundir`), ``best.safetensors`` is
preferred; when it is missing or damaged and ``latest.safetensors`` is good (or the reverse), the
good one is used and a :class:`~rnnkit.errors.Note` says which file and why. Every command that
uses a model takes ``--checkpoint best|latest|PATH`` (:func:`checkpoint_option`): then that
checkpoint is used, or the command stops saying why.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open

from rnnkit.errors import CheckpointError, DamagedFile, FileError, MismatchedCheckpoint, Note
from rnnkit.files import damage
from rnnkit.lm.data import Vocab
from rnnkit.lm.model import CharLM
from rnnkit.lm.rundir import CHECKPOINTS, RESTORE, RunDirectory, read_weights
from rnnkit.lm.schema import ANCHORS


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
    run = RunDirectory(run_dir)
    if which is None:
        return _load_preferred(run)
    config, vocab = run.read_files(need_checkpoint=which in CHECKPOINTS)
    path = run.checkpoint(which) if which in CHECKPOINTS else Path(which)
    if not path.is_file():
        raise CheckpointError(_absent(run, which))
    try:
        model, step = read_weights(path, config, vocab)
    except (DamagedFile, MismatchedCheckpoint) as exc:
        raise type(exc)(f"--checkpoint {which}: {exc}" + _other_usable(run, path)) from None
    return LoadedRun(model, vocab, config, path, step)


def _absent(run: RunDirectory, which: str) -> str:
    if which == "best":
        return (f"--checkpoint best: {run.path} has no best.safetensors yet (no validation has been saved); "
                "use --checkpoint latest")
    return f"--checkpoint {which}: {run.latest if which == 'latest' else which}: no such file"


def _other_usable(run: RunDirectory, used: Path) -> str:
    """'; best.safetensors is intact: ...' when the run's other checkpoint could be used instead."""
    for other in map(run.checkpoint, CHECKPOINTS):
        if other != used and other.is_file() and damage(other) is None:
            return f"; {other} is intact: use --checkpoint {other.stem}, or leave --checkpoint out"
    return ""


def _load_preferred(run: RunDirectory) -> LoadedRun:
    config, vocab = run.read_files()
    order = list(CHECKPOINTS)
    failures: list[tuple[Path, FileError]] = []
    for path in map(run.checkpoint, order):
        if not path.is_file():
            continue
        try:
            model, step = read_weights(path, config, vocab)
        except (DamagedFile, MismatchedCheckpoint) as exc:
            failures.append((path, exc))
            continue
        _note_choice(run, path, step, failures, order)
        return LoadedRun(model, vocab, config, path, step)
    raise CheckpointError(_no_usable_checkpoint(run.path, failures))


def _at(step: int | None) -> str:
    return f" (step {step})" if step is not None else ""


def _note_choice(run: RunDirectory, used: Path, step: int | None, failures: list, order: list[str]) -> None:
    """Say which checkpoint is used when it is not the preferred one, or when the other is damaged."""
    preferred = run.checkpoint(order[0])
    if failures:
        warnings.warn(f"{failures[0][1]}; using {used}{_at(step)} instead", Note, stacklevel=3)
    elif used != preferred:
        warnings.warn(f"there is no {preferred.name} (no validation has been saved yet); using "
                      f"{used}{_at(step)}", Note, stacklevel=3)
    else:
        for other in map(run.checkpoint, order[1:]):
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
