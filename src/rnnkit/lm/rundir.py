"""Opening a run directory written by ``rnnkit train``, and saying exactly what is wrong with it.

config.json and vocab.json are checked against their schema and against the weights' shapes
(:mod:`rnnkit.lm.schema`), every problem reported in one message. Of the two checkpoints,
``best.safetensors`` is preferred for using the model; when it is missing or damaged and
``latest.safetensors`` is good (or the reverse), the good one is used and a :class:`Note` says
which file and why. Resuming training needs ``latest.safetensors`` itself:
:func:`read_training_state` refuses a damaged one rather than fall back and silently lose steps.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.lm.data import Vocab
from rnnkit.lm.errors import CheckpointError, DamagedCheckpoint, MismatchedCheckpoint, Note
from rnnkit.lm.formats import damage, read_json, read_tensors, unprefixed
from rnnkit.lm.model import CharLM, ModelConfig
from rnnkit.lm.tokens import load_tokens
from rnnkit.lm.schema import (
    config_problems, model_config, not_a_language_model, shape_problems, value_problems, vocab_problems,
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


def load_model(run_dir, which: str = "best") -> tuple[CharLM, Vocab, dict]:
    """(model, vocab, config) of a run directory; see :func:`load_run`."""
    run = load_run(run_dir, which)
    return run.model, run.vocab, run.config


def load_run(run_dir, which: str = "best") -> LoadedRun:
    """The model of a run directory from ``which`` checkpoint, else from the other one (with a Note)."""
    run = Path(run_dir)
    config, vocab = read_run_files(run)
    order = [which] + [w for w in CHECKPOINTS if w != which]
    failures: list[tuple[Path, CheckpointError]] = []
    for path in (run / f"{w}.safetensors" for w in order):
        if not path.is_file():
            continue
        try:
            model, step = _load_weights(path, config, vocab)
        except (DamagedCheckpoint, MismatchedCheckpoint) as exc:
            failures.append((path, exc))
            continue
        _note_choice(run, path, step, failures, order)
        return LoadedRun(model, vocab, config, path, step)
    raise CheckpointError(_no_usable_checkpoint(run, failures))


def read_run_files(run: Path) -> tuple[dict, Vocab]:
    """config.json and vocab.json of a run directory, checked; every problem in one error."""
    if not run.is_dir():
        state = "is a file, not a directory" if run.exists() else "no such directory"
        raise CheckpointError(f"{run}: {state}; give a run directory written by 'rnnkit train'")
    missing = [n for n in ("config.json", "vocab.json") if not (run / n).is_file()]
    if not any((run / f"{w}.safetensors").is_file() for w in CHECKPOINTS):
        missing.append("best.safetensors or latest.safetensors")
    if missing:
        raise CheckpointError(f"{run}: no checkpoint here (missing {', '.join(missing)}; a run directory "
                              "holds the files 'rnnkit train' writes)")
    problems, parsed = [], {}
    for name, check in (("config.json", config_problems), ("vocab.json", lambda d: vocab_problems(d, run))):
        try:
            parsed[name] = read_json(run / name)
        except CheckpointError as exc:
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


def _no_usable_checkpoint(run: Path, failures: list[tuple[Path, CheckpointError]]) -> str:
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
    except DamagedCheckpoint as exc:
        raise refuse_resume(run, exc) from None
    return tensors, meta


def refuse_resume(run: Path, problem: CheckpointError) -> CheckpointError:
    """The refusal of ``--resume`` (naming best.safetensors as still usable when latest is damaged)."""
    best = run / "best.safetensors"
    usable = isinstance(problem, DamagedCheckpoint) and best.is_file() and damage(best) is None
    return type(problem)(
        f"--resume: {problem}; nothing was changed (resuming from another checkpoint would silently "
        "lose training steps)" + (f"; {best} still works for 'rnnkit generate' and 'rnnkit eval'" if usable else "")
        + "; to train again, start a fresh run without --resume, or use another --out")
