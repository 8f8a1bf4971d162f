"""Windows for forecasting: rows, normalisation and the windows of a series.

A series x (N, F) (F series forecast together; in RNNForecaster, the adjusted series a of its
linear path) may come with extra input series e (N, E) whose future values are known (calendar,
planned prices, weather forecasts). The row fed to the network at step s is

    r_s = [x̃_s, ẽ_{s+1}, ..., ẽ_{s+H}]              (F + H·E)

so the last row of a window ending at t carries the extra inputs of the H steps to forecast.
Normalisation of the network's input, per window ending at t (``normalize``):

    "last"    x̃_s = (x_s − x_t) / σ_Δ        σ_Δ: std of x_{s+1} − x_s
    "global"  x̃_s = (x_s − μ) / σ
    "both"    x̃_s = [(x_s − x_t) / σ_Δ, (x_s − μ) / σ]

"last" makes the network blind to the level; "global" keeps it. ẽ = (e − μ_e) / σ_e always.
(The network's targets are the linear path's errors over its one-step spread σ_r:
rnnkit.models.forecaster.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.errors import InputError
from rnnkit.models.data import check_finite, spread_or_one

NORMALIZATIONS = ("last", "global", "both")


def as_series(X, name: str = "X") -> np.ndarray:
    """(N, F) float64 from a (N,) or (N, F) array-like (rows are time steps)."""
    if X is None:
        raise InputError(f"{name} is None: expected a series, shape (N,) or (N, F)")
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported: pass a dense array")
    a = np.asarray(X)
    if a.dtype.kind == "c":
        raise InputError(f"Complex data not supported: {name} has dtype {a.dtype}")
    if a.dtype.kind in "US":
        raise InputError(f"{name} must hold numbers, got strings (dtype {a.dtype})")
    a = a.astype(np.float64)
    if a.ndim not in (1, 2):
        raise InputError(f"{name} must be a series of shape (N,) or (N, F) (rows are time steps), "
                         f"got shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError(f"{name} is empty: found 0 sample(s) (shape={a.shape}) while a minimum of 1 is required.")
    if a.ndim == 2 and a.shape[1] == 0:
        raise InputError(f"{name} has 0 feature(s) (shape={a.shape}) while a minimum of 1 is required.")
    check_finite(name, a)
    return a.reshape(len(a), -1)


@dataclass(frozen=True)
class SeriesScale:
    mean: np.ndarray            # (F,) μ
    std: np.ndarray             # (F,) σ
    step: np.ndarray            # (F,) σ_Δ
    exog_mean: np.ndarray       # (E,)
    exog_std: np.ndarray        # (E,)

    @classmethod
    def fit(cls, x: np.ndarray, e: np.ndarray) -> "SeriesScale":
        mean = x.mean(axis=0)
        std = spread_or_one(x.std(axis=0), mean)
        step = spread_or_one(np.diff(x, axis=0).std(axis=0), mean) if len(x) > 2 else std
        emean = e.mean(axis=0)
        return cls(mean, std, step, emean, spread_or_one(e.std(axis=0), emean))


def rows(x: np.ndarray, e: np.ndarray, horizon: int) -> np.ndarray:
    """(M, F + H·E) rows [x_s, e_{s+1..s+H}] for s < M, from x (M, F) and e (M + H, E)."""
    M = len(x)
    if e.shape[1] == 0:
        return x
    ahead = np.concatenate([e[1 + k:M + 1 + k] for k in range(horizon)], axis=1)
    return np.concatenate([x, ahead], axis=1)


def normalise_windows(windows: np.ndarray, F: int, mode: str, sc: SeriesScale) -> tuple[np.ndarray, np.ndarray]:
    """windows (n, L, F + H·E) of raw rows → (network input, offset (n, F)) with x̃ = (x − offset)/scale."""
    x, e = windows[:, :, :F], windows[:, :, F:]
    if mode == "global":
        offset, scale = np.broadcast_to(sc.mean, (len(windows), F)), sc.std
    else:
        offset, scale = x[:, -1, :], sc.step
    xz = (x - offset[:, None, :]) / scale
    if mode == "both":
        xz = np.concatenate([xz, (x - sc.mean) / sc.std], axis=2)
    if e.shape[2]:
        E = len(sc.exog_mean)
        ez = (e.reshape(e.shape[0], e.shape[1], -1, E) - sc.exog_mean) / sc.exog_std
        xz = np.concatenate([xz, ez.reshape(e.shape)], axis=2)
    return xz, offset


def sliding(a: np.ndarray, length: int) -> np.ndarray:
    """All windows a[t − length + 1 .. t], (M − length + 1, length, ...), as one strided copy."""
    view = np.lib.stride_tricks.sliding_window_view(a, length, axis=0)      # (n, ..., length)
    return np.ascontiguousarray(np.moveaxis(view, -1, 1))
