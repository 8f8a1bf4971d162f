"""The outer training loop: time and step limits, progress bar, validation, Ctrl-C, NaN.

A run limited by its time budget with a cosine schedule plans the schedule's last step before the
first step, from the measured time of a step (:meth:`~rnnkit.lm.train.Trainer.measure_step`):
budget / seconds per step. That plan depends on the machine's speed at that moment, so two runs of
the same command differ; the closing summary says how far a run got and the command that repeats
it exactly (``--max-steps`` and ``--schedule-steps``), which involves no clock.

Two files record a run: ``metrics.jsonl`` what it computed (each step's loss and learning rate,
each validation with its sample), the same bytes for the same command, seed and machine kind;
``timings.jsonl`` how long each step took and the seconds of training so far.
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from dataclasses import dataclass

from tqdm import tqdm

from rnnkit.errors import Caution
from rnnkit.lm.infer import Score
from rnnkit.lm.progress import BAR_FORMAT, OVERFIT_EVALUATIONS, Validation, bar_postfix, overfitting, overfitting_message
from rnnkit.lm.train import NonFiniteLoss, Stop, Trainer

SYNC_CHECK_EVERY = 100   # steps between checks that the replicas of a data-parallel run are equal
                         # (and before every checkpoint): a hash of the model and optimizer state,
                         # ~10 ms for the default model, under 0.1% of the training time

@dataclass(frozen=True)
class TrainResult:
    """What one invocation of a run (:meth:`TrainLoop.run`) reached."""
    steps: int                    # the step the run reached (the whole run, resumed parts included)
    losses: list[float]           # training loss (nats) of each step run in this invocation
    val: Score | None             # the last validation
    unigram_bits: float
    train_seconds: float          # this invocation's time in training steps (what --time-budget limits)
    stopped_by: Stop = Stop.NO    # what ended the run before its --max-steps: a signal, the budget
    first_step: int = 0           # the step this invocation started from (> 0: a resumed run)
    run_seconds: float = 0.0      # the whole run's time in training steps, resumed parts included
    best: Validation | None = None    # the best validation (its weights are best.safetensors)
    planned_steps: int | None = None  # the cosine schedule's last step; None for other schedules

    @property
    def signal(self) -> int:
        """The signal that interrupted the run (SIGINT, SIGTERM), or 0."""
        return int({Stop.SIGINT: signal.SIGINT, Stop.SIGTERM: signal.SIGTERM}.get(self.stopped_by, 0))

    @property
    def interrupted(self) -> bool:
        """A signal (Ctrl-C, SIGTERM) ended the run."""
        return self.signal != 0

    @property
    def stopped_by_budget(self) -> bool:
        """The time budget ended the run (not --max-steps)."""
        return self.stopped_by == Stop.BUDGET


class TrainLoop:
    """The loop of one invocation of a run (its first part, or a resumed one).

    Ctrl-C or SIGTERM (on any rank, under MPI) ends the run after the current step, every rank at
    the same step, with a checkpoint; a second one ends it at once (the last checkpoint stays)."""

    def __init__(self, trainer: Trainer) -> None:
        self.t = trainer
        self.first_step = trainer.step                        # where this invocation starts
        self.stop_requested = Stop.NO                         # a signal this process received
        self.stopped_by = Stop.NO                             # the agreed reason the loop ended
        self.last_val: tuple[int, Score] | None = None        # (step, score) of the latest validation
        self.train_seconds = 0.0                              # this invocation's time in training steps
        self.losses: list[float] = []                         # this invocation's training losses (nats)
        self.overfit_said = False                             # the caution is given once per streak
        self.records = trainer.run_dir.records(active=trainer.world.root)    # rank 0 alone writes them

    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = Stop.SIGINT if signum == signal.SIGINT else Stop.SIGTERM

    def run(self) -> TrainResult:
        t = self.t
        t.warm_up()
        if t.last_step is None:
            self._fit_schedule()
        with self.records:
            previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                self._loop()
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
            if self.last_val is None or self.last_val[0] != t.step:
                self._evaluate(None, sample=False)
        best = min(t.val_history, key=lambda v: v.bits_per_char) if t.val_history else None
        return TrainResult(t.step, self.losses, self.last_val[1], t.text.unigram_bits,
                           self.train_seconds, self.stopped_by, first_step=self.first_step,
                           run_seconds=t.train_seconds, best=best,
                           planned_steps=t.last_step if t.cfg.schedule == "cosine" else None)

    def _fit_schedule(self) -> None:
        """The cosine's last step from the time budget and the measured time of a step (rank 0's,
        shared), before the first step."""
        t = self.t
        seconds = t.measure_step()
        t.set_last_step(t.step + max(int(t.cfg.time_budget / seconds), 1))
        t.log(f"cosine schedule: a step takes about {seconds * 1000:.0f} ms here, so the time budget "
              f"allows about {t.last_step} steps; it reaches 5% of --lr at step {t.last_step}")

    def _vote(self, trained: float) -> Stop:
        """This rank's vote on ending the run after the current step (``trained``: seconds of
        training so far, this step included). Rank 0's clock alone decides the time budget: the
        others' steps include their wait for rank 0's validation passes."""
        cfg = self.t.cfg
        spent = self.t.world.root and cfg.time_budget > 0 and trained >= cfg.time_budget
        return max(self.stop_requested, Stop.BUDGET if spent else Stop.NO)

    def _loop(self) -> None:
        """Train until a limit. The time budget counts training steps only, not validation."""
        t, cfg = self.t, self.t.cfg
        bar = self._bar()
        chars = cfg.batch_size * cfg.seq_len * t.text.chars_per_token      # characters of text per step (mean)
        while not self.stopped_by and not (cfg.max_steps and t.step >= cfg.max_steps):
            step_start = time.perf_counter()
            try:
                loss, self.stopped_by = t.train_step(
                    lambda: self._vote(self.train_seconds + time.perf_counter() - step_start))
                seconds = time.perf_counter() - step_start
                self.train_seconds += seconds
                t.train_seconds += seconds
                self.losses.append(loss)
                self.records.metric({"step": t.step, "loss": loss, "bpc": t.bits_per_char(loss),
                                     "lr": t.optimizer.lr})
                self.records.timing({"step": t.step, "train_seconds": t.train_seconds,
                                     "chars_per_s": chars / max(seconds, 1e-9)})
                self._advance(bar, loss, chars / max(seconds, 1e-9))
                if t.step % cfg.eval_every == 0:
                    self._evaluate(bar)                 # its checkpoint checks the replicas first
                elif t.step % SYNC_CHECK_EVERY == 0:
                    t.check_replicas()
            except NonFiniteLoss as exc:       # every rank raised it: the loss and norm are agreed
                bar.close()
                raise t.world.agreed(NonFiniteLoss(f"{exc}; stopped. The last good checkpoint is "
                                                   f"{t.run_dir.latest}")) from None
        bar.close()
        if self.stopped_by in (Stop.SIGINT, Stop.SIGTERM):
            t.log(f"interrupted at step {t.step} ({self.stopped_by.name}): saving a checkpoint in {t.run_dir.path}")

    def _bar(self, file=None) -> tqdm:
        cfg = self.t.cfg
        by_steps = cfg.max_steps > 0
        total = cfg.max_steps - self.t.step if by_steps else cfg.time_budget
        return tqdm(total=total, unit="step" if by_steps else "s", leave=False, file=file,
                    disable=None if self.t.world.root else True,         # rank 0 alone shows it
                    bar_format=BAR_FORMAT, dynamic_ncols=True)

    def _advance(self, bar: tqdm, loss: float, rate: float) -> None:
        if bar.disable:
            return
        if self.t.cfg.max_steps > 0:
            bar.update(1)
        else:
            bar.update(min(self.train_seconds, bar.total) - bar.n)
        bar.set_postfix_str(bar_postfix(self.t.step, self.t.bits_per_char(loss), rate), refresh=False)

    def _evaluate(self, bar: tqdm | None, sample: bool = True) -> None:
        """Validate, keep the best weights, write the latest checkpoint, report (rank 0; every rank
        calls this together and receives rank 0's score)."""
        t = self.t
        val, text = t.world.together(lambda: self._validation(sample), root_only=True)
        t.save()
        self.last_val = (t.step, val)
        t.val_history.append(Validation(t.step, val.bits_per_char))
        self.records.metric({"step": t.step, "val_bpc": val.bits_per_char, "val_ppl": val.perplexity}
                            | ({"sample": text} if text is not None else {}))
        msg = f"step {t.step}: validation {val.bits_per_char:.3f} bits/char, perplexity {val.perplexity:.2f}"
        if text is not None:
            msg += "\n--- sample ---\n" + text + "\n--------------"
        if bar is not None and not bar.disable:
            tqdm.write(msg)
        else:
            t.log(msg)
        if t.world.root:
            self._check_overfitting()

    def _validation(self, sample: bool) -> tuple[Score, str | None]:
        t = self.t
        val = t.validate()
        text = None
        if sample and t.cfg.sample_chars:      # before saving: a model that cannot sample is not kept
            text = t.sample_text(min(t.cfg.sample_chars, 200))
        return val, text

    def _check_overfitting(self) -> None:
        """A Caution when validation has stopped improving while training goes on (once a streak)."""
        found = overfitting(self.t.val_history)
        if found is None:
            self.overfit_said = False
        elif not self.overfit_said:
            self.overfit_said = True
            recent = self.losses[-self.t.cfg.eval_every:] or [math.nan]
            training = self.t.bits_per_char(sum(recent) / len(recent))
            warnings.warn(overfitting_message(*found, training, OVERFIT_EVALUATIONS), Caution, stacklevel=2)
