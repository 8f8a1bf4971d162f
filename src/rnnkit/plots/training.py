"""A training run's curves as a PNG: ``rnnkit plot RUN_DIR`` and ``rnnkit train --plot``.

Four panels: bits/char against the characters seen (training, its moving average, validation,
the best validation marked: the weights in best.safetensors), the same against the seconds of
training, the learning rate against the characters seen, and the latest validation sample
(characters the font lacks draw as boxes; the HTML page shows every character).
"""

from __future__ import annotations

import textwrap
import warnings

import numpy as np

from rnnkit.plots import new_figure, save_png

SAMPLE_LINES = 14          # lines of the latest sample shown
SAMPLE_WIDTH = 60          # characters per line, wrapped


def plot_training(curves, path, dpi: int = 100) -> None:
    """Draw ``curves`` (:class:`rnnkit.diagnostics.training.Curves`) into the PNG ``path``."""
    fig = new_figure(12.0, 8.0)
    by_chars, by_time, rate, sample = (fig.add_subplot(2, 2, k) for k in range(1, 5))
    chars = curves.steps * curves.step_chars / 1e6                              # millions
    _losses(by_chars, chars, curves, curves.val_steps * curves.step_chars / 1e6)
    by_chars.set_xlabel("characters seen (millions)")
    if curves.seconds is not None and np.isfinite(curves.seconds).any():
        _losses(by_time, curves.seconds, curves, curves.val_seconds)
        by_time.set_xlabel("seconds of training")
    else:
        by_time.text(0.5, 0.5, "no timings.jsonl in this run directory", ha="center", va="center",
                     transform=by_time.transAxes)
        by_time.set_axis_off()
    rate.plot(chars, curves.lr, color="tab:green")
    rate.set_xlabel("characters seen (millions)")
    rate.set_ylabel("learning rate")
    rate.set_title("learning-rate schedule")
    _sample(sample, curves)
    fig.suptitle(curves.title)
    fig.tight_layout()
    with warnings.catch_warnings():       # characters the font lacks (Chinese, say) draw as boxes;
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")   # the page shows them
        save_png(fig, path, dpi)


def _losses(ax, x, curves, val_x) -> None:
    ax.plot(x, curves.train_bpc, color="tab:blue", alpha=0.25, linewidth=0.8, label="training")
    ax.plot(x, curves.smooth_bpc, color="tab:blue", label="training, moving average")
    if len(curves.val_bpc):
        ax.plot(val_x, curves.val_bpc, "o-", color="tab:orange", markersize=4, label="validation")
        best = int(np.argmin(curves.val_bpc))
        ax.plot([val_x[best]], [curves.val_bpc[best]], "*", color="tab:red", markersize=14,
                label=f"best {curves.val_bpc[best]:.3f} (step {curves.val_steps[best]}): best.safetensors")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _sample(ax, curves) -> None:
    ax.set_axis_off()
    if not curves.samples:
        ax.text(0.5, 0.5, "no validation sample (--sample-chars 0)", ha="center", va="center",
                transform=ax.transAxes)
        return
    step = max(curves.samples)
    lines = [w for line in curves.samples[step].splitlines() for w in (textwrap.wrap(line, SAMPLE_WIDTH) or [""])]
    ax.set_title(f"validation sample at step {step}")
    ax.text(0.0, 1.0, "\n".join(lines[:SAMPLE_LINES]), family="monospace", fontsize=8, va="top",
            transform=ax.transAxes, parse_math=False)          # text, not TeX: "$" stays "$"
