"""A forecast as a PNG: ``rnnkit forecast --plot FILE.png``.

The history (the series the model was fitted on), the forecast after it with its prediction
interval shaded, and — when the last values were held out — the actual values over the
forecast. The x axis is the time index: dates when the series came with a date column (as
matplotlib dates), else the row number.
"""

from __future__ import annotations

import numpy as np

from rnnkit.plots import new_figure, save_png


def _axis(labels) -> np.ndarray:
    """x values for labels: numpy datetime64 for date strings, else the values as floats."""
    a = np.asarray(labels)
    if a.dtype.kind in "iuf":
        return a.astype(np.float64)
    return np.array([np.datetime64(str(v)) for v in a]).astype("datetime64[s]").astype(object)


def plot_forecast(path, history_index, history, forecast_index, forecast, lower=None, upper=None,
                  actual=None, coverage: float | None = None, title: str = "", dpi: int = 100) -> None:
    """Draw one series (history (n,), forecast (h,), bounds and actual (h,) optional) into ``path``."""
    history, forecast = np.asarray(history, np.float64), np.asarray(forecast, np.float64)
    if len(history_index) != len(history) or len(forecast_index) != len(forecast):
        raise ValueError(f"plot_forecast: {len(history_index)} index labels for {len(history)} history "
                         f"values, {len(forecast_index)} for {len(forecast)} forecasts")
    fig = new_figure(9.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    xh, xf = _axis(history_index), _axis(forecast_index)
    ax.plot(xh, history, color="0.25", lw=1.2, label="history")
    if lower is not None and upper is not None:
        label = f"{round(100 * coverage)}% interval" if coverage is not None else "interval"
        ax.fill_between(xf, np.asarray(lower, np.float64), np.asarray(upper, np.float64), color="tab:blue",
                        alpha=0.2, lw=0, label=label)
    if actual is not None:
        ax.plot(xf, np.asarray(actual, np.float64), color="0.25", lw=1.2, ls=":", label="actual (held out)")
    ax.plot(xf, forecast, color="tab:blue", lw=1.6, label="forecast")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    fig.autofmt_xdate() if np.asarray(history_index).dtype.kind not in "iuf" else None
    fig.tight_layout()
    save_png(fig, path, dpi=dpi)
