"""Figures of rnnkit's results, drawn with matplotlib (the ``plot`` extra).

Each module draws one kind of figure onto a new :class:`matplotlib.figure.Figure` attached to
the non-interactive Agg canvas — never through ``pyplot``, so a drawing changes no global state
(the backend of a notebook stays what it was) — and writes it atomically to a PNG file.
:func:`require_matplotlib` is the one import guard: a command calls it before its work, and
every module of this package gets matplotlib through it.
"""

from __future__ import annotations

from rnnkit.errors import UserError


class PlotError(UserError):
    """A figure that cannot be drawn here: matplotlib is not installed."""


def require_matplotlib(what: str = "--plot"):
    """The matplotlib module, or a PlotError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError(f'{what} needs matplotlib: pip install "rnnkit[plot]"') from None
    return matplotlib


def new_figure(width: float, height: float):
    """A Figure of width x height inches on its own Agg canvas."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path, dpi: int = 100) -> None:
    """Write the figure to ``path`` as a PNG, atomically (temporary file, then rename)."""
    from pathlib import Path

    from rnnkit.files import atomic_write
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
