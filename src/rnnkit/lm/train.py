"""Training a character language model with truncated BPTT, checkpoints and exact resume.

The training text is cut into ``batch_size`` contiguous streams read ``seq_len`` characters at a
time; the hidden state is carried from one chunk to the next (no gradient crosses the border) and
reset at the start of each pass over the text. Each step: forward, fused softmax cross-entropy,
backward, gradient-norm clipping, optimizer step.

Data parallel (``mpiexec -n N rnnkit train``, :mod:`rnnkit.distributed`): the same code with N
processes, each holding the model and B/N contiguous streams of the batch (their carried state
with them). Each takes the mean loss over its streams, and the gradients are averaged over the
processes (one Allreduce, which also carries the loss and the votes to stop), so every process
clips the same global gradient and takes the same step: the single-process run up to the order
of the float32 sums. Rank 0 alone prints, validates and writes the run directory.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import shlex
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnkit import backend, distributed, engine
from rnnkit.distributed import ShardedRandom, World
from rnnkit.errors import CheckpointError, CorpusError, MismatchedCheckpoint, WriteFailed
from rnnkit.layers import state_parts
from rnnkit.files import atomic_write, cannot_write, prefixed, unprefixed, write_json, write_tensors
from rnnkit.lm.config import RUN_LENGTH_OPTIONS, TrainConfig, option_name
from rnnkit.lm.data import (
    Streams, default_corpus_files, read_corpus, split_text, suggest_prime, unigram_entropy_bits,
)
from rnnkit.lm.infer import NonFiniteOutput, Score, sample, score
from rnnkit.lm.model import CharLM
from rnnkit.lm.progress import Validation
from rnnkit.lm.rundir import check_weights, read_run_files, read_training_state, refuse_resume
from rnnkit.lm.runlock import STAGING_PREFIX, describe, holds_run, intact, move_into_place
from rnnkit.lm.softmax import choose_cutoffs
from rnnkit.lm.tokens import BpeTokens, run_tokens, same_tokens, write_tokens
from rnnkit.module import Parameter
from rnnkit.optim import OPTIMIZERS, Schedule, clip_grad_norm_


CALIBRATION_SECONDS = 1.0       # a time-budgeted cosine times the work of a step for about this long
CALIBRATION_PASSES = (3, 50)    # before the first step: at least 3 passes, at most 50 (tiny models)
SYNC_CHECK_EVERY = 100   # steps between checks that the replicas of a data-parallel run are equal
                         # (and before every checkpoint): a hash of the model and optimizer state,
                         # ~10 ms for the default model, under 0.1% of the training time


METRICS = "metrics.jsonl"     # what the run computed, one line per step and per validation: the
                              # same bytes for the same command and seed (a --max-steps run)
TIMINGS = "timings.jsonl"     # how long it took, one line per step: differs from run to run


class NonFiniteLoss(RuntimeError):
    """Training diverged; the last good checkpoint is left as it was."""


class Stop(enum.IntEnum):
    """Why a step is the last: each rank votes in the step's Allreduce, the highest vote wins."""
    NO = 0
    BUDGET = 1                    # the time budget is spent (rank 0's clock)
    SIGTERM = 2
    SIGINT = 3                    # Ctrl-C


class Step(NamedTuple):
    loss: float                   # training loss (nats), the mean over the whole batch
    stop: Stop                    # agreed by every rank


@dataclass(frozen=True)
class TrainResult:
    steps: int                    # the step the run reached (the whole run, resumed parts included)
    losses: list[float]           # training loss (nats) of each step run in this invocation
    val: Score | None             # the last validation
    unigram_bits: float
    train_seconds: float          # this invocation's time in training steps (what --time-budget limits)
    signal: int = 0               # the signal that interrupted the run (SIGINT, SIGTERM), or 0
    first_step: int = 0           # the step this invocation started from (> 0: a resumed run)
    run_seconds: float = 0.0      # the whole run's time in training steps, resumed parts included
    best: Validation | None = None    # the best validation (its weights are best.safetensors)
    planned_steps: int | None = None  # the cosine schedule's last step; None for other schedules
    stopped_by_budget: bool = False   # the time budget ended the run (not --max-steps)

    @property
    def interrupted(self) -> bool:
        """A signal (Ctrl-C, SIGTERM) ended the run."""
        return self.signal != 0


def load_corpus(cfg: TrainConfig) -> tuple[str, list[str], list[str]]:
    """(text, files read, files skipped): the given paths, or the standard library's sources."""
    paths = list(cfg.paths) if cfg.paths else [str(f) for f in default_corpus_files()]
    return read_corpus(paths)


def resume_config(run_dir: str, overrides: dict) -> TrainConfig:
    """The saved configuration of a run, with the options a resumed run may change applied.

    ``overrides`` holds only the options the user gave; any other option that differs from the
    saved run is an error (a resumed run must continue the same model on the same data).
    """
    run = Path(run_dir)
    if not (run / "latest.safetensors").is_file():
        best = " (best.safetensors is there, but it holds only weights: no optimizer state or data " \
               "position to continue from)" if (run / "best.safetensors").is_file() else ""
        raise CheckpointError(f"--resume: {run_dir} holds no checkpoint to resume (expected config.json and "
                              f"latest.safetensors){best}")
    config, _ = read_run_files(run)                 # checked against the schema
    saved = TrainConfig.from_json(config["train"])
    changed = sorted(k for k, v in overrides.items()
                     if k not in RUN_LENGTH_OPTIONS and k != "out" and getattr(saved, k) != v)
    if changed:
        raise CorpusError("--resume continues the saved run; these options differ from it: "
                          + ", ".join("PATH" if k == "paths" else option_name(k) for k in changed))
    return replace(saved, out=str(run_dir), **{k: v for k, v in overrides.items() if k in RUN_LENGTH_OPTIONS})


def _metric_step(line: str) -> int | None:
    """The step of one metrics.jsonl line, or None if the line is damaged."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None


def _silent(msg: str) -> None:
    pass


def engine_threads(requested: int, world: World) -> int | None:
    """The engine threads of each process: ``requested`` (--threads) if given; else, for a single
    process or if RNNKIT_NUM_THREADS / OMP_NUM_THREADS gives a count, None (the engine's own
    choice: that count, else every CPU); else the CPUs this process may use, divided among the
    processes of its machine that may use them too."""
    if requested:
        return requested
    if world.size == 1 or engine.threads_from_environment() is not None:
        return None
    return world.threads


class Trainer:
    """A run: its text, model, optimizer, schedule, data position and run directory.

    Under MPI every rank builds one, with ``world`` (default :func:`rnnkit.distributed.world`):
    each reads the text and trains on its share of the streams; rank 0 alone writes the run
    directory (after the others' results are gathered), validates, and reads a checkpoint to
    resume, which it then shares. Anything that may fail on one rank only is agreed on
    (:meth:`~rnnkit.distributed.World.together`), so a failure stops every rank together.

    A fresh Trainer replaces a run already in ``cfg.out`` (once its own first checkpoint is
    written): refusing such a directory, and locking it against a second writer, is the command's
    part (:func:`rnnkit.lm.runlock.claim`, in :func:`rnnkit.lm.run.run_train`).
    """

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, log=print, world: World | None = None) -> None:
        self.world = world or distributed.world()
        self.log = log if self.world.root else _silent
        self.run_dir = Path(cfg.out)
        self.cfg = cfg
        self.train_seconds = 0.0        # time in training steps so far, resumed parts included
        self.val_history: list[Validation] = []     # every validation of the run (rank 0)
        files, chars = self.world.together(self._prepare)     # every rank: text, model, optimizer
        self.started = resume           # a fresh run's files are in their place once _start is done
        if resume:
            self.world.together(self._restore, root_only=True)
            self._share_restored()
        else:
            self._start(files, chars)

    def _prepare(self) -> tuple[list[str], int]:
        """The text, its streams (this rank's share of them), the model and the optimizer."""
        cfg, log = self.cfg, self.log
        self.threads = engine_threads(cfg.threads, self.world)
        if self.threads is not None:
            backend.current().set_num_threads(self.threads)
        text, files, skipped = load_corpus(cfg)
        if skipped:
            log(f"skipped {len(skipped)} binary or non-UTF-8 file(s), e.g. {skipped[0]}")
        train_text, val_text = split_text(text, cfg.val_fraction)
        self.vocab, softmax = self._tokens(train_text)
        train_ids, _ = self.vocab.encode(train_text)
        self.streams = Streams(train_ids, cfg.batch_size, cfg.seq_len)
        self.share = self.world.share(cfg.batch_size, "--batch-size")   # this rank's streams
        self.val_ids, _ = self.vocab.encode(val_text)
        self.prime = suggest_prime(val_text, self.vocab, starts_line=train_text.endswith("\n"))
        if len(self.val_ids) < 2:
            raise CorpusError(f"the validation split has {len(self.val_ids)} tokens; raise --val-fraction")
        self.val_chars = len(val_text) - self.vocab.lead_chars(self.val_ids)    # what validation predicts
        self.chars_per_token = len(train_text) / max(len(train_ids), 1)
        code_points = np.frombuffer(train_text.encode("utf-32-le"), np.uint32)
        self.unigram_bits = unigram_entropy_bits(code_points)           # of the characters, any tokens
        counts = np.bincount(train_ids, minlength=self.vocab.size)
        cutoffs = choose_cutoffs(counts, cfg.hidden) if softmax == "adaptive" else ()
        self.model = CharLM(cfg.model_config(self.vocab.size, softmax, cutoffs), rng=cfg.seed)
        self.params = self.model.parameters()
        self.optimizer = OPTIMIZERS[cfg.optimizer](self.params, lr=cfg.lr)
        # A cosine run without --schedule-steps or --max-steps fits its last step to the time
        # budget before the first step (TrainLoop); a resumed one takes it from the checkpoint.
        self.schedule: Schedule | None = None
        self.warmup_schedule = Schedule(warmup=cfg.warmup)   # the factor of --lr until the schedule is fixed
        if cfg.schedule != "cosine" or cfg.schedule_steps or cfg.max_steps:
            self.set_last_step(cfg.schedule_steps or cfg.max_steps)
        self.step, self.best_val, self.carry = 0, math.inf, None
        self.fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if self.world.size > 1:         # each rank draws its streams' share of the batch's dropout masks
            sharded = ShardedRandom(self.model.rng, self.share, cfg.batch_size)
            for m in self.model.modules():
                if m is not self.model and getattr(m, "rng", None) is self.model.rng:
                    m.rng = sharded
        return files, len(text)

    def _tokens(self, train_text: str):
        """(tokens, softmax) of the run. Characters and words are counted on every rank (exact
        and cheap); BPE is learnt by rank 0 alone and its tokenizer sent to the others: learning
        it is the costly part, and one tokenizer by construction beats one per rank that must
        agree (tokenizers' trainer is multi-threaded)."""
        cfg = self.cfg
        if self.world.size == 1 or cfg.tokens != "bpe":
            return run_tokens(cfg.tokens, cfg.vocab_size, cfg.softmax, train_text)

        def learn() -> tuple[str, str]:
            tokens, softmax = run_tokens(cfg.tokens, cfg.vocab_size, cfg.softmax, train_text)
            return tokens.json, softmax
        tokenizer_json, softmax = self.world.together(learn, root_only=True)
        return BpeTokens(tokenizer_json), softmax

    # -- run directory ---------------------------------------------------------------------------
    def _start(self, files: list[str], chars: int) -> None:
        """A fresh run's first files (config.json, vocab.json, empty metrics and timings, the
        step-0 latest.safetensors: there is always a checkpoint to go back to) are written into a
        staging directory inside the run directory, then moved into place, and only then are the
        files of a run that was there (``--overwrite``) removed. A failure before (a full disk)
        leaves that run as it was, and the staging directory is removed."""
        final, w = self.run_dir, self.world
        staging = w.together(lambda: str(self._stage(files, chars)), root_only=True)
        self.run_dir = Path(staging)
        try:
            w.broadcast_parameters(self.params)         # every replica starts from rank 0's
            self.save()
            replaced = w.together(lambda: move_into_place(Path(staging), final), root_only=True)
        except WriteFailed as exc:
            path = getattr(exc, "path", None)         # named as the file it was to become, not its staging name
            named = f"cannot write {final / path.name}: {exc.problem}" if path and path.parent == Path(staging) \
                else str(exc)
            raise WriteFailed(f"{named}; the new run did not start, and {final} is as it was"
                              + (f" ({describe(final)})" if holds_run(final) else "")) from None
        finally:
            self.run_dir = final
            if w.root:
                shutil.rmtree(staging, ignore_errors=True)      # already empty after the commit
        self.started = True
        if replaced:
            self.log(f"--overwrite: replaced the run that was in {final} ({replaced})")

    def _stage(self, files: list[str], chars: int) -> Path:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.run_dir))
        except OSError as exc:
            raise cannot_write(self.run_dir, exc) from None
        try:
            corpus = {"files": len(files), "chars": chars, "sha256": self.fingerprint,
                      "source": "python-stdlib" if not self.cfg.paths else "paths"}
            write_json(staging / "config.json", {
                "model": self.model.cfg.to_json(), "train": self.cfg.to_json(), "corpus": corpus})
            write_tokens(staging, self.vocab, write_json, atomic_write)
            for name in (METRICS, TIMINGS):
                atomic_write(staging / name, lambda tmp: Path(tmp).write_text("", encoding="utf-8"))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def save(self) -> None:
        """Write latest.safetensors (rank 0; every rank calls this together): the carried state of
        every stream is gathered from the ranks, after checking that the replicas are equal."""
        self.check_replicas()
        carry = None if self.carry is None else self.world.gather_streams(state_parts(self.carry))
        self.world.together(lambda: self._write_latest(carry), root_only=True)

    def _write_latest(self, parts: tuple[np.ndarray, ...] | None) -> None:
        carry = {} if parts is None else {f"carry.{k}": a for k, a in enumerate(parts)}
        tensors = (prefixed("model.", self.model.state_dict())
                   | prefixed("optim.", self.optimizer.state_dict()["state"]) | carry)
        self._write_checkpoint("latest.safetensors", tensors, self._meta())

    def _write_checkpoint(self, name: str, tensors: dict[str, np.ndarray], meta: dict) -> None:
        """Write a checkpoint of the run directory atomically; a failure says what is intact."""
        if not self.run_dir.is_dir():       # else the write would make a new directory of one file
            raise WriteFailed(f"cannot write {self.run_dir / name}: {self.run_dir} has vanished (deleted, "
                              "moved or unmounted while the run was writing it), and its checkpoints with it; "
                              "train again")
        try:
            write_tensors(self.run_dir / name, tensors, meta)
        except WriteFailed as exc:
            raise self.write_failed(exc) from None

    def write_failed(self, exc: WriteFailed) -> WriteFailed:
        """A failed write of the run, with what is intact on the disk and how to go on."""
        if not self.started:                # _start says it in its own words
            return exc
        failed = getattr(exc, "path", None)
        return WriteFailed(f"{exc}; {intact(self.run_dir, failed and failed.name)}; once it can be written, "
                           "continue the run with "
                           f"'rnnkit train --resume --out {shlex.quote(str(self.run_dir))}'")

    def _meta(self) -> dict:
        """Where the run stands, beside the tensors of its checkpoint: the step (the data position),
        the best validation loss, the optimizer's learning rate and step count, the schedule's last
        step, the dropout generator's state, the corpus's fingerprint and the seconds of training."""
        return {"step": self.step, "best_val": self.best_val, "optimizer_lr": self.optimizer.lr,
                "last_step": self.last_step if self.schedule else None,
                "optimizer_steps": self.optimizer.steps, "rng": self.model.rng.bit_generator.state,
                "corpus_sha256": self.fingerprint, "train_seconds": self.train_seconds}

    def _apply_meta(self, meta: dict) -> None:
        """Stand where :meth:`_meta` said the run stood (read from a checkpoint, or rank 0's)."""
        self.step, self.best_val = int(meta["step"]), float(meta["best_val"])
        self.optimizer.lr, self.optimizer.steps = float(meta["optimizer_lr"]), int(meta["optimizer_steps"])
        self.model.rng.bit_generator.state = meta["rng"]
        self.train_seconds = float(meta.get("train_seconds", 0.0))     # absent before it was recorded
        if self.schedule is None and meta.get("last_step") is not None:
            self.set_last_step(int(meta["last_step"]))

    def _state(self, parts: tuple[np.ndarray, ...]):
        """A carried state from its arrays: None (no arrays), h, or (h, c) as this model's is."""
        if not parts:
            return None
        return parts if isinstance(self.model.initial_state(1), tuple) else parts[0]

    def _restore(self) -> None:
        tensors, meta = read_training_state(self.run_dir)
        if meta["corpus_sha256"] != self.fingerprint:
            raise CorpusError("--resume: the corpus differs from the one this run was trained on")
        _, saved = read_run_files(self.run_dir)
        if not same_tokens(saved, self.vocab):
            raise MismatchedCheckpoint(f"--resume: {self.run_dir}'s tokens differ from the ones learnt again from "
                                       "its corpus (another version of the tokenizer?); train again with another --out")
        path = self.run_dir / "latest.safetensors"
        try:
            check_weights(path, unprefixed("model.", tensors), self.model.cfg, self.vocab)
        except CheckpointError as exc:
            raise refuse_resume(self.run_dir, exc) from None
        try:                          # the checks of load_state_dict and of NumPy's RNG state
            self.model.load_state_dict(unprefixed("model.", tensors))
            self.optimizer.load_state_dict({"lr": meta["optimizer_lr"], "steps": meta["optimizer_steps"],
                                            "state": unprefixed("optim.", tensors)})
            carry = self._carry(unprefixed("carry.", tensors))
            self._apply_meta(meta)
        except (ValueError, TypeError, KeyError) as exc:
            mismatch = MismatchedCheckpoint(f"{path} does not fit this run ({exc})")
            raise refuse_resume(self.run_dir, mismatch) from None
        self.carry = carry
        self._truncate_metrics()
        self.log(f"resumed {self.run_dir} at step {self.step}")

    def _carry(self, saved: dict[str, np.ndarray]):
        """The carried hidden state of a checkpoint: none, h, or (h, c), shaped as this run's."""
        parts = tuple(saved[str(k)] for k in range(len(saved)))
        if not parts:
            return None
        expected = [a.shape for a in state_parts(self.model.initial_state(self.cfg.batch_size))]
        if [a.shape for a in parts] != expected:
            raise ValueError(f"carried state of shapes {[a.shape for a in parts]}, expected {expected}")
        return self._state(parts)

    def _share_restored(self) -> None:
        """Rank 0 read the checkpoint: every rank takes its parameters, optimizer state, RNG state,
        step (the data position) and schedule, and the carried state of its own streams."""
        w = self.world
        carry = state_parts(self.carry) if w.root and self.carry is not None else ()
        if w.size > 1:
            meta = w.broadcast_object({**self._meta(), "carry": [(a.shape, a.dtype.str) for a in carry]}
                                      if w.root else None)
            w.broadcast_parameters(self.params)
            w.broadcast_arrays(self._optimizer_arrays())
            if not w.root:
                carry = tuple(np.empty(shape, dtype) for shape, dtype in meta["carry"])
            w.broadcast_arrays(carry)
            self._apply_meta(meta)
        self.carry = self._state(tuple(np.ascontiguousarray(a[:, self.share]) for a in carry))   # (L, B/N, H)

    def _optimizer_arrays(self) -> list[np.ndarray]:
        return [a for state in self.optimizer.state for a in state.values()]

    def check_replicas(self) -> None:
        """Stop every rank (ReplicaDrift) unless the parameters and the optimizer state are bit for
        bit equal on every rank (a data-parallel run only)."""
        arrays = [p.data for p in self.params] + self._optimizer_arrays()
        self.world.check_replicas(arrays, "parameters and optimizer state")

    def _truncate_metrics(self) -> None:
        """Drop the metrics and timings of steps after the checkpoint (and lines a crash left
        half-written); the validations kept are the run's history."""
        for name in (METRICS, TIMINGS):
            path = self.run_dir / name
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
            kept = [ln for ln in lines if (step := _metric_step(ln)) is not None and step <= self.step]
            damaged = sum(1 for ln in lines if ln.strip() and _metric_step(ln) is None)
            if damaged:
                self.log(f"note: dropped {damaged} damaged line(s) of {path}")
            text = "".join(ln + "\n" for ln in kept)
            try:
                atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            except WriteFailed as exc:
                raise self.write_failed(exc) from None
            if name == METRICS:
                records = [json.loads(ln) for ln in kept]
                self.val_history = [Validation(r["step"], r["val_bpc"]) for r in records if "val_bpc" in r]

    # -- training ---------------------------------------------------------------------------------
    def train_step(self, vote: Callable[[], Stop] = lambda: Stop.NO) -> Step:
        """One step on this rank's streams. ``vote()`` is asked after the backward pass, just before
        the gradients are averaged over the ranks: whether this rank wants this step to be the last;
        the votes travel in the same Allreduce, so every rank returns the same ``stop``."""
        k = self.step % self.streams.num_chunks
        if k == 0 or self.carry is None:
            self.carry = self.model.initial_state(self.share.stop - self.share.start)
        x, y = self.streams.chunk(k, self.share)
        loss, carry = self.model.loss(x, y, self.carry)        # the mean over this rank's streams
        self.model.zero_grad()
        if math.isfinite(loss):                 # else no backward: the loss stops every rank below
            self.model.backward_loss()
        ballot = [0.0] * (len(Stop) - 1)        # one count per reason to stop: BUDGET, SIGTERM, ...
        if (reason := vote()) != Stop.NO:
            ballot[reason - 1] = 1.0
        total, *counts = self.world.allreduce_gradients(self.params, extras=(loss, *ballot))
        loss = total / self.world.size          # equal shares: the mean over the whole batch
        stop = max((Stop(i + 1) for i, n in enumerate(counts) if n), default=Stop.NO)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at step {self.step + 1}")
        if self.cfg.clip > 0:
            norm = clip_grad_norm_(self.params, self.cfg.clip)
            if not math.isfinite(norm):
                raise NonFiniteLoss(f"the gradient norm became {norm} at step {self.step + 1}")
        factor = (self.schedule or self.warmup_schedule).factor(self.step)
        self.optimizer.lr = self.cfg.lr * factor
        self.optimizer.step()
        self.carry = carry
        self.step += 1
        return Step(loss, stop)

    def bits_per_char(self, loss: float) -> float:
        """A training loss (nats per token) in bits per character of the training text (exact
        for characters; at the text's mean characters per token for words and BPE)."""
        return loss / math.log(2) / self.chars_per_token

    def set_last_step(self, last: int) -> None:
        """Fix the schedule; a cosine reaches 5% of --lr at step ``last``."""
        cfg = self.cfg
        self.last_step = last
        self.schedule = Schedule(cfg.schedule, warmup=cfg.warmup, total=max(last - cfg.warmup, 1),
                                 min_factor=0.05)

    def validate(self) -> Score:
        val = score(self.model, self.val_ids, characters=self.val_chars)
        if not math.isfinite(val.nll):
            raise NonFiniteLoss(f"the validation loss became {val.nll} at step {self.step}")
        if val.nll < self.best_val:
            self.best_val = val.nll
            self._write_checkpoint("best.safetensors", prefixed("model.", self.model.state_dict()),
                                   {"step": self.step, "val_nll": val.nll})
        return val

    def warm_up(self) -> None:
        """One forward and backward pass on a batch of a training step's shape before the clock
        starts, so that compiling the engine (seconds on a fresh install, then cached on disk) for
        every path a step takes (sizes that share a step between threads take their own) is
        neither counted as training time nor taken for the speed of a step by the time-fitted
        schedule. In eval mode (no dropout draws) and with the gradients cleared after: the run is
        unchanged by it.

        With several ranks, rank 0 compiles first, then the first rank of every other machine,
        then the rest, each group loading what the previous one wrote to the on-disk cache: no two
        processes of a machine write the same cache files at the same time."""
        w = self.world
        turn = 0 if w.root else (1 if w.local_rank == 0 else 2)
        for group in range(3 if w.size > 1 else 1):
            if group == turn:
                self._compile()
            w.barrier()

    def _compile(self) -> None:
        self.model.eval()
        try:
            batch = self.share.stop - self.share.start
            shape = (self.cfg.seq_len, batch)
            every = (np.arange(shape[0] * batch) % self.vocab.size).reshape(shape).astype(np.int32)  # every cluster
            self.model.loss(np.zeros(shape, np.int32), every, self.model.initial_state(batch))
            self.model.backward_loss()
        finally:
            self.model.zero_grad()
            self.model.train()

    def measure_step(self) -> float:
        """The seconds a training step takes here (the mean of a few passes, rank 0's: the mean, as
        the budget is spent by the steps' total, hiccups of a busy machine included), measured
        before the first step without changing the run: each pass is a step's forward, loss,
        backward, gradient Allreduce and clipping on this rank's batch in eval mode (no dropout
        draw), and the optimizer's update of a copy of the parameters; the gradients are cleared
        after. A run fitted to its time budget plans its schedule from this, so the plan is fixed
        before step 0 (and a replay with --max-steps and --schedule-steps repeats the run from its
        first step). Every rank makes as many passes as rank 0 decides (the Allreduce is collective).
        A first pass is made and not counted: with a cold compile cache it compiles the engine's
        kernels, and counted it made the default run on a fresh install plan 659 steps and reach
        1,105 (the cosine at its floor for the last 40% of the budget)."""
        x, y = self.streams.chunk(self.step % self.streams.num_chunks, self.share)
        shadow = [Parameter(p.data.copy()) for p in self.params]
        optimizer = OPTIMIZERS[self.cfg.optimizer](shadow, lr=self.cfg.lr)

        def one_pass() -> float:
            start = time.perf_counter()
            self.model.loss(x, y, self.model.initial_state(x.shape[1]))
            self.model.zero_grad()
            self.model.backward_loss()
            self.world.allreduce_gradients(self.params, extras=(0.0,) * len(Stop))
            if self.cfg.clip > 0:
                clip_grad_norm_(self.params, self.cfg.clip)
            for s, p in zip(shadow, self.params):
                s.grad[...] = p.grad
            optimizer.step()
            return time.perf_counter() - start

        self.model.eval()
        try:
            one_pass()          # not counted: the first pass compiles what a cold cache lacks
            times = [one_pass()]
            low, high = CALIBRATION_PASSES
            passes = self.world.broadcast_object(min(max(math.ceil(CALIBRATION_SECONDS / times[0]), low), high))
            times += [one_pass() for _ in range(passes - 1)]
        finally:
            self.model.zero_grad()
            self.model.train()
        return self.world.broadcast_object(statistics.fmean(times))

    def sample_text(self, length: int) -> str:
        rng = np.random.default_rng([self.cfg.seed, self.step])
        prime = "\n" if self.vocab.known("\n") else self.vocab.chars[0]
        try:
            return "".join(sample(self.model, self.vocab, prime, length, rng=rng))
        except NonFiniteOutput as exc:
            raise NonFiniteLoss(f"{exc} (at step {self.step})") from None

    def run(self) -> TrainResult:
        from rnnkit.lm.loop import TrainLoop          # the loop module builds on this one
        return TrainLoop(self).run()
