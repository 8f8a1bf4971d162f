"""Backtests: refit on expanding windows, forecast the next ``horizon`` steps, score each window.

The conventions of statsforecast's ``cross_validation(h, n_windows, step_size, level)`` (darts:
``historical_forecasts(..., retrain=True)``; sktime: ``evaluate`` with an
``ExpandingWindowSplitter``): window i (0 = the oldest) is cut off at

    cutoff_i = N − horizon − (n_windows − 1 − i) · step_size

the estimator (a fresh copy: ``sklearn.base.clone`` or the same class with the same
parameters) is fitted on series[:cutoff_i] and forecasts series[cutoff_i : cutoff_i + horizon].
``step_size`` defaults to ``horizon`` (windows that do not overlap; statsforecast's default is
1). With ``coverage`` each window also gets ``predict_interval(horizon, coverage)`` and the share
of its actual values inside. Per window: MAPE, RMSE (rnnkit.models.baselines) and coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.errors import InputError
from rnnkit.models.baselines import mape, rmse
from rnnkit.models.series import as_series
from rnnkit.ranges import COUNT


@dataclass(frozen=True)
class Backtest:
    cutoffs: np.ndarray              # (W,) rows fitted on: series[:cutoff]
    actual: np.ndarray               # (W, horizon) or (W, horizon, F)
    forecast: np.ndarray             # like actual
    lower: np.ndarray | None         # like actual, with coverage
    upper: np.ndarray | None
    coverage: float | None           # the nominal coverage of the intervals

    @property
    def mape(self) -> np.ndarray:
        """(W,) MAPE of each window (%; nan where an actual value is 0)."""
        return np.array([mape(y, p) for y, p in zip(self.actual, self.forecast)])

    @property
    def rmse(self) -> np.ndarray:
        return np.array([rmse(y, p) for y, p in zip(self.actual, self.forecast)])

    @property
    def covered(self) -> np.ndarray | None:
        """(W,) share of each window's actual values inside its interval."""
        if self.lower is None:
            return None
        inside = (self.actual >= self.lower) & (self.actual <= self.upper)
        return inside.reshape(len(inside), -1).mean(axis=1)

    def to_dict(self) -> dict:
        out = {"cutoffs": self.cutoffs.tolist(), "mape": self.mape.tolist(), "rmse": self.rmse.tolist(),
               "forecast": self.forecast.tolist(), "actual": self.actual.tolist()}
        if self.lower is not None:
            out |= {"coverage": self.coverage, "covered": self.covered.tolist(),
                    "lower": self.lower.tolist(), "upper": self.upper.tolist()}
        return out


def fresh(estimator):
    """An unfitted copy with the same parameters (scikit-learn's clone where available)."""
    try:
        from sklearn.base import clone
    except ImportError:
        return type(estimator)(**estimator.get_params(deep=False))
    return clone(estimator)


def cutoffs(n: int, horizon: int, n_windows: int, step_size: int) -> np.ndarray:
    """The cutoffs of the module docstring; InputError if the oldest leaves nothing to fit on."""
    for name, value in (("horizon", horizon), ("n_windows", n_windows), ("step_size", step_size)):
        COUNT.check(name, value, InputError)
    cuts = n - horizon - (n_windows - 1 - np.arange(n_windows)) * step_size
    if cuts[0] < 2:
        raise InputError(f"the series has {n} steps: {n_windows} windows of horizon {horizon}, "
                         f"{step_size} apart, leave {int(cuts[0])} steps to fit the first on")
    return cuts.astype(np.int64)


def cross_validate(estimator, series, horizon: int, n_windows: int = 3, step_size: int | None = None,
                   coverage: float | None = None, exog=None) -> Backtest:
    """Refit ``estimator`` on expanding windows of ``series`` and forecast ``horizon`` steps after
    each (module docstring); ``exog`` (N, E) is split alongside."""
    x = as_series(series, "series")
    one = np.ndim(series) == 1
    e = None if exog is None else as_series(exog, "exog")
    if e is not None and len(e) != len(x):
        raise InputError(f"exog must have {len(x)} rows (one per time step), got {len(e)}")
    cuts = cutoffs(len(x), horizon, n_windows, horizon if step_size is None else step_size)
    actual, pred, lows, highs = [], [], [], []
    for c in cuts:
        train = x[:c, 0] if one else x[:c]
        fit_kw = {} if e is None else {"exog": e[:c]}
        ahead = {} if e is None else {"exog": e[c:c + horizon]}
        est = fresh(estimator).fit(train, **fit_kw)
        pred.append(est.predict(horizon, **ahead))
        actual.append(x[c:c + horizon, 0] if one else x[c:c + horizon])
        if coverage is not None:
            lo, hi = est.predict_interval(horizon, coverage, **ahead)
            lows.append(lo)
            highs.append(hi)
    stack = (lambda v: np.stack(v)) if coverage is not None else (lambda v: None)
    return Backtest(cuts, np.stack(actual), np.stack(pred), stack(lows), stack(highs), coverage)
