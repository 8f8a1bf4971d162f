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
import math
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rnnkit import backend, distributed
from rnnkit.distributed import World
from rnnkit.errors import WriteFailed
from rnnkit.layers import state_parts
from rnnkit.lm.config import TrainConfig
from rnnkit.lm.infer import NonFiniteOutput, Score, sample, score
from rnnkit.lm.model import CharLM
from rnnkit.lm.progress import Validation
from rnnkit.lm.rundir import RunDirectory
from rnnkit.lm.schema import RunState
from rnnkit.lm.text import prepare_text
from rnnkit.module import Parameter
from rnnkit.optim import OPTIMIZERS, Schedule, clip_grad_norm_
from rnnkit.precision import autocast

if TYPE_CHECKING:
    from rnnkit.lm.loop import TrainResult


CALIBRATION_SECONDS = 1.0       # a time-budgeted cosine times the work of a step for about this long
CALIBRATION_PASSES = (3, 50)    # before the first step: at least 3 passes, at most 50 (tiny models)


class NonFiniteLoss(RuntimeError):
    """Training diverged; the last good checkpoint is left as it was."""


class Stop(enum.IntEnum):
    """Why a step is the last: each rank votes in the step's Allreduce, the highest vote wins."""
    NO = 0
    BUDGET = 1                    # the time budget is spent (rank 0's clock)
    SIGTERM = 2
    SIGINT = 3                    # Ctrl-C

    def ballot(self) -> tuple[float, ...]:
        """This vote as one count per reason to stop (BUDGET, SIGTERM, SIGINT), for the Allreduce to sum."""
        return tuple(float(self == reason) for reason in list(Stop)[1:])

    @staticmethod
    def counted(counts) -> Stop:
        """The highest reason that any rank voted for (the ballots' sums), or NO."""
        return max((Stop(i + 1) for i, n in enumerate(counts) if n), default=Stop.NO)


class Step(NamedTuple):
    loss: float                   # training loss (nats), the mean over the whole batch
    stop: Stop                    # agreed by every rank


def _silent(msg: str) -> None:
    pass


class Trainer:
    """A run: its text, model, optimizer, schedule, data position and run directory.

    Under MPI every rank builds one, with ``world`` (default :func:`rnnkit.distributed.world`):
    each reads the text and trains on its share of the streams; rank 0 alone writes the run
    directory (after the others' results are gathered), validates, and reads a checkpoint to
    resume, which it then shares. Anything that may fail on one rank only is agreed on
    (:meth:`~rnnkit.distributed.World.together`), so a failure stops every rank together.

    A fresh Trainer replaces a run already in ``cfg.out`` (once its own first checkpoint is
    written): refusing such a directory, and locking it against a second writer, is the command's
    part (:meth:`rnnkit.lm.rundir.RunDirectory.claim`, in :func:`rnnkit.lm.run.run_train`).
    """

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, log=print, world: World | None = None) -> None:
        self.world = world or distributed.world()
        self.log = log if self.world.root else _silent
        self.run_dir = RunDirectory(cfg.out)
        self.cfg = cfg
        self.train_seconds = 0.0        # time in training steps so far, resumed parts included
        self.val_history: list[Validation] = []     # every validation of the run (rank 0)
        self.world.together(self._build)            # every rank: text, model, optimizer
        if resume:
            self.world.together(self._restore, root_only=True)
            self._share_restored()
        else:
            self._start()

    def _build(self) -> None:
        """The text (and this rank's share of its streams), the model and the optimizer."""
        cfg = self.cfg
        self.threads = self.world.engine_threads(cfg.threads)
        if self.threads is not None:
            backend.current().set_num_threads(self.threads)
        self.text = prepare_text(cfg, self.world, self.log)
        self.share = self.world.share(cfg.batch_size, "--batch-size")   # this rank's streams
        text = self.text
        self.model = CharLM(cfg.model_config(text.vocab.size, text.softmax, text.cutoffs), rng=cfg.seed)
        # each rank draws its streams' share of the batch's dropout masks
        self.model.use_rng(self.world.sharded_random(self.model.rng, cfg.batch_size))
        self.params = self.model.parameters()
        self.optimizer = OPTIMIZERS[cfg.optimizer](self.params, lr=cfg.lr)
        self.step, self.best_val, self.carry = 0, math.inf, None
        # A cosine run without --schedule-steps or --max-steps fits its last step to the time
        # budget before the first step (TrainLoop); a resumed one takes it from the checkpoint.
        self.last_step: int | None = None
        self.schedule = Schedule(warmup=cfg.warmup)     # the factor of --lr until the last step is fixed
        if cfg.schedule != "cosine" or cfg.schedule_steps or cfg.max_steps:
            self.set_last_step(cfg.schedule_steps or cfg.max_steps)

    def set_last_step(self, last: int) -> None:
        """Fix the schedule; a cosine reaches 5% of --lr at step ``last``."""
        cfg = self.cfg
        self.last_step = last
        self.schedule = Schedule(cfg.schedule, warmup=cfg.warmup, total=max(last - cfg.warmup, 1),
                                 min_factor=0.05)

    # -- the run directory ------------------------------------------------------------------------
    def _start(self) -> None:
        """A fresh run's first files (config.json, vocab.json, empty metrics and timings, the
        step-0 latest.safetensors: there is always a checkpoint to go back to) are written into a
        staging directory inside the run directory, then moved into place, and only then are the
        files of a run that was there (``--overwrite``) removed. A failure before (a full disk)
        leaves that run as it was, and the staging directory is removed."""
        w, final = self.world, self.run_dir
        config = {"model": self.model.cfg.to_json(), "train": self.cfg.to_json(), "corpus": self.text.corpus}
        staging = w.together(lambda: final.stage(config, self.text.vocab), root_only=True)
        try:
            w.broadcast_parameters(self.params)         # every replica starts from rank 0's
            self.save(staging)
            replaced = w.together(staging.commit, root_only=True)
        except WriteFailed as exc:
            reworded = staging.not_started(exc)      # every rank's, if the failure was
            raise (w.agreed(reworded) if w.raised_together(exc) else reworded) from None
        finally:
            if w.root:
                staging.remove()                        # already empty after the commit
        if replaced:
            self.log(f"--overwrite: replaced the run that was in {final.path} ({replaced})")

    def save(self, run_dir: RunDirectory | None = None) -> None:
        """Write latest.safetensors into the run directory (or ``run_dir``: a fresh run's staging
        one), rank 0 alone though every rank calls this together: the carried state of every
        stream is gathered from the ranks, after checking that the replicas are equal."""
        self.check_replicas()
        carry = None if self.carry is None else self.world.gather_streams(state_parts(self.carry))
        target = run_dir or self.run_dir
        self.world.together(lambda: target.write_latest(self.model.state_dict(), self.optimizer.state_dict()["state"],
                                                        carry, self._standing()), root_only=True)

    def _standing(self) -> RunState:
        return RunState(self.step, self.best_val, self.optimizer.lr, self.last_step, self.optimizer.steps,
                        self.model.rng.bit_generator.state, self.text.fingerprint, self.train_seconds)

    def _stand_at(self, state: RunState) -> None:
        """Stand where the run stood (read from a checkpoint, or rank 0's)."""
        self.step, self.best_val = state.step, state.best_val
        self.optimizer.lr, self.optimizer.steps = state.optimizer_lr, state.optimizer_steps
        self.model.rng.bit_generator.state = state.rng
        self.train_seconds = state.train_seconds
        if self.last_step is None and state.last_step is not None:
            self.set_last_step(state.last_step)

    def _restore(self) -> None:
        saved = self.run_dir.read_latest(self.text.fingerprint, self.text.vocab, self.model.cfg)
        try:                          # the checks of load_state_dict and of NumPy's RNG state
            state = RunState.from_meta(saved.meta)
            self.model.load_state_dict(saved.model)
            self.optimizer.load_state_dict({"lr": saved.meta["optimizer_lr"], "steps": saved.meta["optimizer_steps"],
                                            "state": saved.optimizer})
            carry = self._carry(saved.carry)
            self._stand_at(state)
        except (ValueError, TypeError, KeyError) as exc:
            raise self.run_dir.misfit(exc) from None
        self.carry = carry
        self.val_history = self.run_dir.truncate_records(self.step, self.log)
        self.log(f"resumed {self.run_dir.path} at step {self.step}")

    def _carry(self, saved: dict[str, np.ndarray]):
        """The carried hidden state of a checkpoint: none, h, or (h, c), shaped as this run's."""
        parts = tuple(saved[str(k)] for k in range(len(saved)))
        if not parts:
            return None
        expected = [a.shape for a in state_parts(self.model.initial_state(self.cfg.batch_size))]
        if [a.shape for a in parts] != expected:
            raise ValueError(f"carried state of shapes {[a.shape for a in parts]}, expected {expected}")
        return self._state(parts)

    def _state(self, parts: tuple[np.ndarray, ...]):
        """A carried state from its arrays: None (no arrays), h, or (h, c) as this model's is."""
        if not parts:
            return None
        return parts if isinstance(self.model.initial_state(1), tuple) else parts[0]

    def _share_restored(self) -> None:
        """Rank 0 read the checkpoint: every rank takes its parameters, optimizer state, RNG state,
        step (the data position) and schedule, and the carried state of its own streams."""
        w = self.world
        self._stand_at(w.broadcast_object(self._standing() if w.root else None))
        w.broadcast_arrays(self._replicated())
        carry = w.broadcast_new_arrays(state_parts(self.carry) if self.carry is not None else ())
        self.carry = self._state(tuple(np.ascontiguousarray(a[:, self.share]) for a in carry))   # (L, B/N, H)

    def _replicated(self) -> list[np.ndarray]:
        """What every rank holds the same: the parameters and the optimizer's state."""
        return [p.data for p in self.params] + [a for state in self.optimizer.state for a in state.values()]

    def check_replicas(self) -> None:
        """Stop every rank (ReplicaDrift) unless the parameters and the optimizer state are bit for
        bit equal on every rank (a data-parallel run only)."""
        self.world.check_replicas(self._replicated(), "parameters and optimizer state")

    # -- training ---------------------------------------------------------------------------------
    def train_step(self, vote: Callable[[], Stop] = lambda: Stop.NO) -> Step:
        """One step on this rank's streams. ``vote()`` is asked after the backward pass, just before
        the gradients are averaged over the ranks: whether this rank wants this step to be the last;
        the votes travel in the same Allreduce, so every rank returns the same ``stop``."""
        k = self.step % self.text.streams.num_chunks
        if k == 0 or self.carry is None:
            self.carry = self.model.initial_state(self.share.stop - self.share.start)
        x, y = self.text.streams.chunk(k, self.share)
        with self.products():
            loss, carry = self.model.loss(x, y, self.carry)    # the mean over this rank's streams
            self.model.zero_grad()
            if math.isfinite(loss):             # else no backward: the loss stops every rank below
                self.model.backward_loss()
        total, *counts = self.world.allreduce_gradients(self.params, extras=(loss, *vote().ballot()))
        loss = total / self.world.size          # equal shares: the mean over the whole batch
        stop = Stop.counted(counts)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at step {self.step + 1}")
        if self.cfg.clip > 0:
            norm = clip_grad_norm_(self.params, self.cfg.clip)
            if not math.isfinite(norm):
                raise NonFiniteLoss(f"the gradient norm became {norm} at step {self.step + 1}")
        self.optimizer.lr = self.cfg.lr * self.schedule.factor(self.step)
        self.optimizer.step()
        self.carry = carry
        self.step += 1
        return Step(loss, stop)

    def products(self) -> autocast:
        """The training step's precision of products (``--precision``): a context for its passes."""
        return autocast(enabled=self.cfg.precision == "bfloat16")

    def bits_per_char(self, loss: float) -> float:
        """A training loss (nats per token) in bits per character of the training text (exact
        for characters; at the text's mean characters per token for words and BPE)."""
        return loss / math.log(2) / self.text.chars_per_token

    def validate(self) -> Score:
        val = score(self.model, self.text.val_ids, characters=self.text.val_chars)
        if not math.isfinite(val.nll):
            raise NonFiniteLoss(f"the validation loss became {val.nll} at step {self.step}")
        if val.nll < self.best_val:
            self.best_val = val.nll
            self.run_dir.write_best(self.model.state_dict(), self.step, val.nll)
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
        self.world.in_turns(self._compile)

    def _compile(self) -> None:
        self.model.eval()
        try:
            batch = self.share.stop - self.share.start
            shape = (self.cfg.seq_len, batch)
            # targets of every id, so that every cluster of an adaptive softmax is compiled
            every = (np.arange(shape[0] * batch) % self.text.vocab.size).reshape(shape).astype(np.int32)
            with self.products():
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
        x, y = self.text.streams.chunk(self.step % self.text.streams.num_chunks, self.share)
        shadow = [Parameter(p.data.copy()) for p in self.params]
        optimizer = OPTIMIZERS[self.cfg.optimizer](shadow, lr=self.cfg.lr)

        def one_pass() -> float:
            start = time.perf_counter()
            with self.products():
                self.model.loss(x, y, self.model.initial_state(x.shape[1]))
                self.model.zero_grad()
                self.model.backward_loss()
            self.world.allreduce_gradients(self.params, extras=(0.0, *Stop.NO.ballot()))
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
        vocab = self.text.vocab
        prime = "\n" if vocab.known("\n") else vocab.chars[0]
        try:
            return "".join(sample(self.model, vocab, prime, length, rng=rng))
        except NonFiniteOutput as exc:
            raise NonFiniteLoss(f"{exc} (at step {self.step})") from None

    def run(self) -> TrainResult:
        from rnnkit.lm.loop import TrainLoop          # the loop module builds on this one
        return TrainLoop(self).run()
