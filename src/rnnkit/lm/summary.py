"""The closing summary of ``rnnkit train``: what was trained, how fast, which weights later
commands use, and how to repeat the run exactly.

    steps: 1623 (6,647,808 characters in 180 s of training, 36,932 chars/s); last training loss 1.62 bits/char
    validation: last 1.710 bits/char (perplexity 3.27) at step 1623, best 1.702 at step 1500 ...
    this run stopped on its time budget at step 1623, its cosine planned for 1650 steps from the
    measured speed: the same command trains differently each time. To repeat this run exactly:
    rnnkit train --max-steps 1623 --schedule-steps 1650 --out runs/charlm-replay
    checkpoints in runs/charlm/: best.safetensors (step 1500), which generate, eval, inspect, gradflow
    and export use; latest.safetensors (step 1623) with --checkpoint latest; try: rnnkit generate ...
"""

from __future__ import annotations

import shlex
from dataclasses import fields

from rnnkit.lm.config import TrainConfig, option_name
from rnnkit.lm.progress import overfitting
from rnnkit.lm.loop import TrainResult
from rnnkit.lm.train import Trainer


def report(trainer: Trainer, result: TrainResult) -> list[str]:
    """The lines of the summary (stdout), the sample aside."""
    cfg = trainer.cfg
    lines = [_speed(trainer, result), _validation(trainer, result)]
    found = overfitting(trainer.val_history)
    if found is not None:
        best, latest = found
        lines.append(f"overfitting: validation rose from {best.bits_per_char:.3f} (step {best.step}) to "
                     f"{latest.bits_per_char:.3f} (step {latest.step}); more text, --dropout or a smaller "
                     "--hidden would help")
    repeat = _repeat(cfg, result)
    if repeat:
        lines.append(repeat)
    best_step = f" (step {result.best.step})" if result.best else ""
    lines.append(f"checkpoints in {cfg.out}/: best.safetensors{best_step}, which generate, eval, inspect, "
                 f"gradflow and export use; latest.safetensors (step {result.steps}) with --checkpoint latest; "
                 f"try: {generate_command(cfg.out, trainer.text.prime)}")
    return lines


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.2g} s"


def _speed(trainer: Trainer, result: TrainResult) -> str:
    cfg = trainer.cfg
    per_step = round(cfg.batch_size * cfg.seq_len * trainer.text.chars_per_token)   # characters of text (mean)
    chars = len(result.losses) * per_step
    rate = chars / result.train_seconds if result.train_seconds else 0.0
    loss = (f"; last training loss {trainer.bits_per_char(result.losses[-1]):.3f} bits/char" if result.losses else "")
    if not result.first_step:
        return (f"steps: {result.steps} ({chars:,} characters in {_seconds(result.train_seconds)} of training, "
                f"{rate:,.0f} chars/s){loss}")
    return (f"steps: {result.first_step + 1}-{result.steps} resumed ({chars:,} characters in "
            f"{_seconds(result.train_seconds)} of training, {rate:,.0f} chars/s){loss}; the whole run: "
            f"{result.steps} steps, {result.steps * per_step:,} characters in {_seconds(result.run_seconds)}")


def _validation(trainer: Trainer, result: TrainResult) -> str:
    val, kind = result.val, trainer.text.vocab.kind
    tokens = "" if kind == "char" else f" per {kind} token, {val.chars:,} tokens"
    text = (f"validation: last {val.bits_per_char:.3f} bits/char (perplexity {val.perplexity:.2f}{tokens}) at step "
            f"{result.steps}")
    if result.best is not None and result.best.step != result.steps:
        text += f", best {result.best.bits_per_char:.3f} at step {result.best.step} (best.safetensors)"
    return (text + f"; on {val.characters or val.chars:,} held-out characters; unigram entropy of the corpus: "
            f"{result.unigram_bits:.3f} bits/char")


def _repeat(cfg: TrainConfig, result: TrainResult) -> str | None:
    """How to continue an interrupted run, or to repeat one that its time budget ended (a
    --max-steps run involves no clock: the same command repeats it)."""
    if result.interrupted:
        return f"this run was interrupted at step {result.steps}; to continue it: rnnkit train --resume " \
               f"--out {shlex.quote(cfg.out)}"
    if not result.stopped_by_budget:
        return None
    planned = result.planned_steps
    fitted = planned is not None and not cfg.schedule_steps and not cfg.max_steps
    plan = f", its cosine planned for {planned} steps from the measured speed" if fitted else ""
    command = replay_command(cfg, result.steps, planned if planned not in (None, result.steps) else None)
    return (f"this run stopped on its time budget at step {result.steps}{plan}: the same command trains "
            f"differently each time. To repeat this run exactly: {command}")


def replay_command(cfg: TrainConfig, steps: int, schedule_steps: int | None) -> str:
    """``rnnkit train`` with this run's settings, ``--max-steps steps`` (no clock) and the cosine's
    last step, writing to a new run directory."""
    default = TrainConfig()
    words = ["rnnkit", "train", *cfg.paths]
    skip = {"paths", "out", "max_steps", "time_budget", "schedule_steps"}
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name in skip or value == getattr(default, f.name):
            continue
        words += [option_name(f.name)] if value is True else [option_name(f.name), _text(value)]
    words += ["--max-steps", str(steps)]
    if schedule_steps is not None:
        words += ["--schedule-steps", str(schedule_steps)]
    words += ["--out", f"{cfg.out.rstrip('/')}-replay"]
    return " ".join(shlex.quote(w) for w in words)


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def generate_command(run_dir: str, prime: str) -> str:
    """``rnnkit generate DIR --prime TEXT``, quoted for a POSIX shell (``--prime=TEXT`` when TEXT
    starts with '-', which argparse would otherwise take for an option)."""
    command = f"rnnkit generate {shlex.quote(run_dir)}"
    if not prime:
        return command
    quoted = shlex.quote(prime)
    return command + (f" --prime={quoted}" if prime.startswith("-") else f" --prime {quoted}")
