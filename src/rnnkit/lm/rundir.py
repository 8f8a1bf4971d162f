"""A run directory written by ``rnnkit train``: every file of it, written and read back, and what
is wrong with it in words (:class:`RunDirectory`).

Layout (each file written atomically, :mod:`rnnkit.files`; nothing is ever loaded with pickle)::

    config.json          model and training configuration, corpus summary
    vocab.json           the tokens (characters: id 0 is the unknown token; words, BPE: rnnkit.lm.tokens)
    tokenizer.json       a BPE run's tokenizer
    latest.safetensors   model, optimizer state, carried hidden state; metadata: where the run stands
    best.safetensors     model weights at the best validation score so far
    metrics.jsonl        one JSON object per training step and per evaluation (with its sample)
    timings.jsonl        the seconds of training after each step, and its characters per second
    train.lock           while a run writes the directory (its lock: rnnkit.lm.runlock)
    .new-run.XXXXXXXX/   a fresh run's first files, until they are moved into place

What each file must hold is :mod:`rnnkit.lm.schema`: config.json and vocab.json are checked
against it and against the weights' shapes, every problem reported in one message. A fresh run
writes its first files into a staging directory and moves them into place only once they are
all written (:meth:`RunDirectory.stage`, :meth:`~RunDirectory.commit`), so ``--overwrite`` never
leaves half of two runs. Resuming needs ``latest.safetensors`` itself: :meth:`~RunDirectory.read_latest`
refuses a damaged one rather than fall back and silently lose steps. Which checkpoint the other
commands use (``--checkpoint best|latest|PATH``) is :mod:`rnnkit.lm.load`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
from safetensors import SafetensorError, safe_open

from rnnkit.errors import (
    CheckpointError, CorpusError, DamagedCheckpoint, DamagedFile, FileError, MismatchedCheckpoint, UserError, WriteFailed,
)
from rnnkit.files import (
    atomic_write, cannot_write, damage, prefixed, read_json, read_tensors, stale_temporaries, unprefixed,
    write_json, write_tensors,
)
from rnnkit.lm import runlock
from rnnkit.lm.data import Vocab
from rnnkit.lm.model import CharLM, ModelConfig
from rnnkit.lm.progress import Validation
from rnnkit.lm.schema import (
    RunState, config_problems, meta_problems, model_config, not_a_language_model, shape_problems, value_problems,
    vocab_problems,
)
from rnnkit.lm.tokens import TOKENIZER_FILE, load_tokens, same_tokens, write_tokens

CONFIG, VOCAB = "config.json", "vocab.json"
LATEST, BEST = "latest.safetensors", "best.safetensors"
CHECKPOINTS = ("best", "latest")                     # --checkpoint's names: {name}.safetensors
METRICS = "metrics.jsonl"     # what the run computed, one line per step and per validation: the
                              # same bytes for the same command and seed (a --max-steps run)
TIMINGS = "timings.jsonl"     # how long it took, one line per step: differs from run to run
STAGING_PREFIX = ".new-run."  # where a fresh run writes its first files
# The files that make a directory hold a run: any one of them, and --out needs --resume or --overwrite.
RUN_FILES = (CONFIG, VOCAB, LATEST, BEST, METRICS)
# The files of a run that a fresh run (--overwrite) removes (the others it replaces): its checkpoints,
# a BPE run's tokenizer and the curves drawn by --plot or 'rnnkit plot'.
REPLACED_FILES = (BEST, LATEST, TOKENIZER_FILE, "training.png", "training.html")
RESTORE = "restore the run directory from a copy, or train again (its files must all come from one run)"


class RunExists(UserError):
    """The run directory already holds a run, and neither --resume nor --overwrite was given."""


@dataclass(frozen=True)
class SavedTraining:
    """latest.safetensors as ``--resume`` reads it, checked against the run it continues."""
    model: dict[str, np.ndarray]          # the weights (names without "model.")
    optimizer: dict[str, np.ndarray]      # the optimizer's state arrays (names without "optim.")
    carry: dict[str, np.ndarray]          # the carried state of every stream: {"0": h[, "1": c]} or {}
    meta: dict                            # where the run stands (RunState.from_meta reads it)


class RunDirectory:
    """One run directory: ``path``, or a fresh run's staging directory inside ``staging_of``."""

    def __init__(self, path, *, staging_of: RunDirectory | None = None) -> None:
        self.path = Path(path)
        self.staging_of = staging_of

    @property
    def latest(self) -> Path:
        return self.path / LATEST

    def checkpoint(self, which: str) -> Path:
        """``best`` or ``latest`` (:data:`CHECKPOINTS`) as a file of this directory."""
        return self.path / f"{which}.safetensors"

    # -- reading ------------------------------------------------------------------------------------
    def read_files(self, need_checkpoint: bool = True) -> tuple[dict, Vocab]:
        """config.json and the tokens (vocab.json), checked; every problem in one error.
        ``need_checkpoint``: the directory must hold best.safetensors or latest.safetensors too."""
        run = self.path
        if not run.is_dir():
            state = "is a file, not a directory" if run.exists() else "no such directory"
            raise CheckpointError(f"{run}: {state}; give a run directory written by 'rnnkit train'")
        missing = [n for n in (CONFIG, VOCAB) if not (run / n).is_file()]
        if need_checkpoint and not any(self.checkpoint(w).is_file() for w in CHECKPOINTS):
            missing.append("best.safetensors or latest.safetensors")
        if missing:
            raise CheckpointError(f"{run}: no checkpoint here (missing {', '.join(missing)}; a run directory "
                                  "holds the files 'rnnkit train' writes)")
        problems, parsed = [], {}
        for name, check in ((CONFIG, config_problems), (VOCAB, lambda d: vocab_problems(d, run))):
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
        return parsed[CONFIG], load_tokens(run, parsed[VOCAB])

    def resumable_config(self, given: str) -> dict:
        """config.json (checked) of a run that ``--resume`` can continue: one with
        latest.safetensors (``given``: the directory as the user named it)."""
        if not self.latest.is_file():
            best = " (best.safetensors is there, but it holds only weights: no optimizer state or data " \
                   "position to continue from)" if self.checkpoint("best").is_file() else ""
            raise CheckpointError(f"--resume: {given} holds no checkpoint to resume (expected config.json and "
                                  f"latest.safetensors){best}")
        config, _ = self.read_files()
        return config

    def read_latest(self, fingerprint: str, vocab, cfg: ModelConfig) -> SavedTraining:
        """latest.safetensors for ``--resume`` of a run on the text of ``fingerprint`` with these
        tokens and this model, or a refusal saying why. Falling back to best.safetensors would
        silently lose every step after the best validation (and it holds no optimizer state), so a
        damaged latest.safetensors stops the resume."""
        path = self.latest
        try:
            tensors, meta = read_tensors(path)
            wrong = meta_problems(meta)
            if wrong:
                raise DamagedCheckpoint(f"{path} has damaged metadata (missing or mistyped: {', '.join(wrong)})")
        except DamagedFile as exc:
            raise self.refuse_resume(exc) from None
        if meta["corpus_sha256"] != fingerprint:
            raise CorpusError("--resume: the corpus differs from the one this run was trained on")
        _, saved = self.read_files()
        if not same_tokens(saved, vocab):
            raise MismatchedCheckpoint(f"--resume: {self.path}'s tokens differ from the ones learnt again from "
                                       "its corpus (another version of the tokenizer?); train again with another --out")
        model = unprefixed("model.", tensors)
        try:
            check_weights(path, model, cfg, vocab)
        except CheckpointError as exc:
            raise self.refuse_resume(exc) from None
        return SavedTraining(model, unprefixed("optim.", tensors), unprefixed("carry.", tensors), meta)

    def misfit(self, problem: Exception) -> FileError:
        """The refusal of ``--resume`` when latest.safetensors does not fit the run (``problem``:
        what loading it into the model, the optimizer or the generator said)."""
        return self.refuse_resume(MismatchedCheckpoint(f"{self.latest} does not fit this run ({problem})"))

    def refuse_resume(self, problem: FileError) -> FileError:
        """The refusal of ``--resume`` (naming best.safetensors as still usable when latest is damaged)."""
        best = self.checkpoint("best")
        usable = isinstance(problem, DamagedFile) and best.is_file() and damage(best) is None
        return type(problem)(
            f"--resume: {problem}; nothing was changed (resuming from another checkpoint would silently "
            "lose training steps)" + (f"; {best} still works for 'rnnkit generate' and 'rnnkit eval'" if usable else "")
            + "; to train again, start a fresh run without --resume, or use another --out")

    # -- a fresh run's first files -----------------------------------------------------------------
    def stage(self, config: dict, tokens) -> RunDirectory:
        """A staging directory inside this one, holding a fresh run's first files: config.json, the
        tokens, empty metrics and timings (its step-0 checkpoint is written next, then
        :meth:`commit`). A failure removes it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            staging = RunDirectory(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path), staging_of=self)
        except OSError as exc:
            raise cannot_write(self.path, exc) from None
        try:
            write_json(staging.path / CONFIG, config)
            write_tokens(staging.path, tokens, write_json, atomic_write)
            for name in (METRICS, TIMINGS):
                atomic_write(staging.path / name, lambda tmp: Path(tmp).write_text("", encoding="utf-8"))
        except BaseException:
            staging.remove()
            raise
        return staging

    def commit(self) -> str | None:
        """(A staging directory) move the fresh run's files into the run directory (→ what the run
        that was there had reached, or None). The checkpoints of that run go first and
        latest.safetensors comes last, so that no moment pairs one run's checkpoint with the other's
        config.json (a crash in these milliseconds leaves no checkpoint at all, which every command
        reports as such)."""
        final = self.staging_of
        previous = final.describe() if final.holds_run() else None
        staged = sorted(self.path.iterdir(), key=lambda p: p.name == LATEST)
        target = final.path
        try:
            for name in REPLACED_FILES:
                target = final.path / name
                target.unlink(missing_ok=True)
            for path in staged:
                target = final.path / path.name
                os.replace(path, target)
        except OSError as exc:
            raise cannot_write(target, exc) from None
        return previous

    def not_started(self, exc: WriteFailed) -> WriteFailed:
        """(A staging directory) a failed write of the fresh run's first files, naming the file it
        was to become (not its staging name): the run that was there is as it was."""
        final = self.staging_of
        path = getattr(exc, "path", None)
        named = f"cannot write {final.path / path.name}: {exc.problem}" if path and path.parent == self.path \
            else str(exc)
        return WriteFailed(f"{named}; the new run did not start, and {final.path} is as it was"
                           + (f" ({final.describe()})" if final.holds_run() else ""))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    # -- checkpoints and records ---------------------------------------------------------------------
    def write_latest(self, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                     carry: tuple[np.ndarray, ...] | None, state: RunState) -> None:
        """latest.safetensors: the weights, the optimizer's state, the carried state of every stream."""
        parts = {} if carry is None else {f"carry.{k}": a for k, a in enumerate(carry)}
        tensors = prefixed("model.", model) | prefixed("optim.", optimizer) | parts
        self._write_checkpoint(LATEST, tensors, state.to_meta())

    def write_best(self, model: dict[str, np.ndarray], step: int, val_nll: float) -> None:
        self._write_checkpoint(BEST, prefixed("model.", model), {"step": step, "val_nll": val_nll})

    def _write_checkpoint(self, name: str, tensors: dict[str, np.ndarray], meta: dict) -> None:
        """Write a checkpoint atomically; a failure says what is intact."""
        if not self.path.is_dir():       # else the write would make a new directory of one file
            raise WriteFailed(f"cannot write {self.path / name}: {self.path} has vanished (deleted, "
                              "moved or unmounted while the run was writing it), and its checkpoints with it; "
                              "train again")
        try:
            write_tensors(self.path / name, tensors, meta)
        except WriteFailed as exc:
            raise self.write_failed(exc) from None

    def write_failed(self, exc: WriteFailed) -> WriteFailed:
        """A failed write of the run, with what is intact on the disk and how to go on (a staging
        directory's: as it is, :meth:`not_started` says it in its own words)."""
        if self.staging_of is not None:
            return exc
        failed = getattr(exc, "path", None)
        return WriteFailed(f"{exc}; {self.intact(failed and failed.name)}; once it can be written, "
                           "continue the run with "
                           f"'rnnkit train --resume --out {shlex.quote(str(self.path))}'")

    def records(self, active: bool = True) -> Records:
        """metrics.jsonl and timings.jsonl to append to while the run trains (``active`` False:
        a rank that writes nothing)."""
        return Records(self, active)

    def truncate_records(self, step: int, log) -> list[Validation]:
        """Drop the metrics and timings of steps after ``step`` (the checkpoint's) and lines a crash
        left half-written (said through ``log``); → the validations kept: the run's history."""
        history = []
        for name in (METRICS, TIMINGS):
            path = self.path / name
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
            kept = [ln for ln in lines if (s := _metric_step(ln)) is not None and s <= step]
            damaged = sum(1 for ln in lines if ln.strip() and _metric_step(ln) is None)
            if damaged:
                log(f"note: dropped {damaged} damaged line(s) of {path}")
            text = "".join(ln + "\n" for ln in kept)
            try:
                atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            except WriteFailed as exc:
                raise self.write_failed(exc) from None
            if name == METRICS:
                records = [json.loads(ln) for ln in kept]
                history = [Validation(r["step"], r["val_bpc"]) for r in records if "val_bpc" in r]
        return history

    # -- what it holds, in words -------------------------------------------------------------------------
    def holds_run(self) -> bool:
        return self.path.is_dir() and any((self.path / name).exists() for name in RUN_FILES)

    def describe(self) -> str:
        """The run in a few words: "latest.safetensors at step 200, validation 1.234 bits/char at
        step 200"."""
        parts = [f"latest.safetensors {saved_step(self.latest)}"]
        validation = self._last_validation()
        if validation:
            parts.append(validation)
        return ", ".join(parts)

    def intact(self, failed: str | None = None) -> str:
        """What of the run survived a failed write of the file ``failed``, from the disk itself:
        "latest.safetensors at step 40 is unchanged, best.safetensors at step 30 is intact" (the
        writes are atomic: what is there is the last complete version)."""
        kept = [(name, state) for name in (LATEST, BEST)
                if (state := saved_step(self.path / name)).startswith("at step")]
        words = [f"{name} {state} is unchanged" for name, state in kept if name == failed]
        others = [f"{name} {state}" for name, state in kept if name != failed]
        if others:
            words.append(" and ".join(others) + (" is" if len(others) == 1 else " are") + " intact")
        return ", ".join(words) or f"{self.path} holds no checkpoint yet"

    def _last_validation(self) -> str | None:
        """"validation 1.234 bits/char at step 200" from metrics.jsonl's last validation, or None."""
        found = None
        try:
            with open(self.path / METRICS, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if '"val_bpc"' in line:
                        found = line
            record = json.loads(found) if found else None
            return f"validation {record['val_bpc']:.3f} bits/char at step {record['step']}"
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- one writer ----------------------------------------------------------------------------------
    def claim(self, *, resume: bool, overwrite: bool) -> runlock.RunLock:
        """Claim the directory for ``rnnkit train`` before any work, in this order: refused if
        another ``rnnkit train`` holds its lock (:class:`~rnnkit.lm.runlock.RunLocked`), whatever the
        options; refused if it holds a run and neither ``resume`` nor ``overwrite`` is given
        (:class:`RunExists`, naming the run's step and validation figure and both options); else
        locked for the life of the run (:func:`rnnkit.lm.runlock.lock`), and the temporary files
        and staging directories a killed writer left behind are removed. A refusal changes nothing
        on the disk."""
        runlock.refuse_if_held(self.path)
        fresh = not (resume or overwrite)
        if fresh and self.holds_run():
            raise self._exists()
        taken = runlock.lock(self.path)
        if fresh and self.holds_run():               # a run written between the check and the lock
            taken.release()
            raise self._exists()
        for path in stale_temporaries(self.path):
            path.unlink(missing_ok=True)
        for path in self.path.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(path, ignore_errors=True)
        return taken

    def _exists(self) -> RunExists:
        return RunExists(f"--out {self.path} already holds a run ({self.describe()}); continue it with --resume, "
                         "or start again with --overwrite (its files are replaced once the new run has saved "
                         "its first checkpoint), or choose another --out")


class Records:
    """metrics.jsonl and timings.jsonl open for appending while the run trains, line buffered: each
    record reaches the file when it is written, so a crash loses none (``--resume`` drops a line a
    full disk left half written)."""

    def __init__(self, run: RunDirectory, active: bool = True) -> None:
        self.run, self.active = run, active
        self.files: dict[str, TextIO] = {}

    def __enter__(self) -> Records:
        try:
            for name in (METRICS, TIMINGS) if self.active else ():
                try:
                    self.files[name] = open(self.run.path / name, "a", encoding="utf-8", buffering=1)
                except OSError as exc:
                    raise self.run.write_failed(cannot_write(self.run.path / name, exc)) from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for f in self.files.values():
            try:
                f.close()
            except OSError:         # the failed write is already being reported
                pass
        self.files = {}

    def metric(self, record: dict) -> None:
        self._write(METRICS, record)

    def timing(self, record: dict) -> None:
        self._write(TIMINGS, record)

    def _write(self, name: str, record: dict) -> None:
        if name in self.files:
            try:
                self.files[name].write(json.dumps(record) + "\n")
            except OSError as exc:      # a full disk: the line may be left half written
                raise self.run.write_failed(cannot_write(self.run.path / name, exc)) from None


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


def read_weights(path: Path, config: dict, vocab) -> tuple[CharLM, int | None]:
    """(the model, the step it was saved at) of checkpoint ``path``, checked against the
    config.json and the tokens of its run."""
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


def saved_step(path: Path) -> str:
    """"at step 40" for a checkpoint (its header alone), or what is wrong with it."""
    if not path.is_file():
        return "missing"
    try:
        problem = damage(path)
        if problem is not None:
            return problem
        with safe_open(str(path), framework="np") as f:
            step = json.loads((f.metadata() or {}).get("rnnkit", "{}")).get("step")
    except (OSError, SafetensorError, ValueError, AttributeError):
        return "is unreadable"
    return f"at step {step}" if isinstance(step, int) else "has no step in its metadata"


def _metric_step(line: str) -> int | None:
    """The step of one metrics.jsonl line, or None if the line is damaged."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None
