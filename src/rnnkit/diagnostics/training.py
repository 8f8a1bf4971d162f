"""The curves of a training run, read from its directory: ``rnnkit plot RUN_DIR`` and ``train --plot``.

From ``metrics.jsonl`` (each step's training loss and learning rate, each validation and its
sample), ``timings.jsonl`` (the seconds of training after each step) and ``config.json`` (the
characters of a step: batch size × sequence length). Two pictures of the same curves: a PNG drawn
with matplotlib (:mod:`rnnkit.plots.training`, the ``plot`` extra) and a self-contained HTML page
(:mod:`rnnkit.diagnostics.training_page`) that needs nothing but a browser. A run still training
can be drawn at any time: a half-written last line is skipped.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.errors import Note, UserError

MAX_POINTS = 2000        # training points drawn: longer runs are averaged in buckets (a curve of
                         # 2000 points is finer than a screen's width)
SMOOTH_SHARE = 0.02      # the moving average of the training loss spans 2% of the run's steps


@dataclass(frozen=True)
class Curves:
    """One run's curves; the training ones averaged down to MAX_POINTS at most."""
    title: str
    step_chars: int                  # characters of one step (batch size × sequence length)
    steps: np.ndarray                # (N,) the step each training point ends
    train_bpc: np.ndarray            # (N,) training bits/char (the bucket's mean)
    smooth_bpc: np.ndarray           # (N,) its moving average
    lr: np.ndarray                   # (N,) learning rate
    seconds: np.ndarray | None       # (N,) seconds of training at that step; None without timings.jsonl
    val_steps: np.ndarray            # (M,) validations
    val_bpc: np.ndarray              # (M,)
    val_seconds: np.ndarray | None   # (M,)
    samples: dict[int, str]          # step -> the sample drawn at that validation


def _records(path: Path) -> list[dict]:
    """The JSON objects of a .jsonl file, skipping damaged lines (a run may be writing it)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _buckets(values: np.ndarray, n: int) -> np.ndarray:
    """values (N,) averaged in n consecutive buckets of (nearly) equal size."""
    return np.array([chunk.mean() for chunk in np.array_split(values, n)])


def _moving_average(values: np.ndarray, span: int) -> np.ndarray:
    """The mean of the last ``span`` values at each point (fewer at the start)."""
    total = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - span, 0)
    return (total[ends] - total[starts]) / (ends - starts)


def read_curves(run_dir) -> Curves:
    from rnnkit.lm.rundir import RunDirectory
    run = Path(run_dir)
    config, _ = RunDirectory(run).read_files(need_checkpoint=False)
    train = config["train"]
    records = _records(run / "metrics.jsonl")
    steps = [r for r in records if "loss" in r]
    if not steps:
        raise UserError(f"{run / 'metrics.jsonl'}: no training step recorded yet; draw the run once it has "
                        "trained (rnnkit train --out DIR)")
    clock = {r["step"]: r["train_seconds"] for r in _records(run / "timings.jsonl") if "train_seconds" in r}
    clock |= {r["step"]: r["train_seconds"] for r in steps if "train_seconds" in r}      # older runs
    n = min(len(steps), MAX_POINTS)
    step_ids = np.array([r["step"] for r in steps])
    bpc = np.array([r.get("bpc", r["loss"] / math.log(2)) for r in steps])   # per character, any tokens
    smooth = _moving_average(bpc, max(1, round(SMOOTH_SHARE * len(bpc))))
    seconds = np.array([clock.get(s, np.nan) for s in step_ids], float) if clock else None
    vals = [r for r in records if "val_bpc" in r]
    val_steps = np.array([r["step"] for r in vals], int)
    cell = config["model"]["cell"].upper()
    title = (f"{run.name}: {config['model']['layers']}-layer {cell} {config['model']['hidden']}, "
             f"{step_ids[-1]} steps")
    return Curves(title=title, step_chars=train["batch_size"] * train["seq_len"],
                  steps=np.array([chunk[-1] for chunk in np.array_split(step_ids, n)]),
                  train_bpc=_buckets(bpc, n), smooth_bpc=_buckets(smooth, n),
                  lr=_buckets(np.array([r["lr"] for r in steps], float), n),
                  seconds=None if seconds is None else np.array([c[-1] for c in np.array_split(seconds, n)]),
                  val_steps=val_steps, val_bpc=np.array([r["val_bpc"] for r in vals], float),
                  val_seconds=None if not clock else np.array([clock.get(s, np.nan) for s in val_steps], float),
                  samples={r["step"]: r["sample"] for r in vals if isinstance(r.get("sample"), str)})


def check_plot_extra() -> None:
    """Before a run's work: say at once when only the HTML page can be drawn (no matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.warn('the PNG needs matplotlib (pip install "rnnkit[plot]"); only the HTML page will be '
                      "drawn", Note, stacklevel=2)


def draw_run(run_dir, png=None, html=None, note_missing: bool = True) -> list[Path]:
    """Draw the run's curves: the HTML page (default RUN_DIR/training.html) always, the PNG
    (default RUN_DIR/training.png) when matplotlib is installed (else a Note, unless
    ``note_missing`` is False because it was said already; an error if ``png`` was asked for by
    name). Returns the files written."""
    from rnnkit.diagnostics.training_page import render
    from rnnkit.files import atomic_write
    run = Path(run_dir)
    curves = read_curves(run)
    written = []
    page = Path(html) if html else run / "training.html"
    atomic_write(page, lambda tmp: Path(tmp).write_text(render(curves), encoding="utf-8"))
    written.append(page)
    from rnnkit.plots import PlotError
    picture = Path(png) if png else run / "training.png"
    try:
        from rnnkit.plots.training import plot_training
        plot_training(curves, picture)
        written.append(picture)
    except PlotError:                     # matplotlib is missing
        if png:
            raise
        if note_missing:
            check_plot_extra()
    return written
