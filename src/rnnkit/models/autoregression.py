"""Linear autoregression in closed form: least squares, the order by AIC, forecasts as an affine map.

One series a (n,), differenced d times (d ∈ {0, 1}): z = Δ^d a. The model, for t ≥ p,

    z_t = c + φ_1 z_{t−1} + … + φ_p z_{t−p} + ε_t

is fitted by least squares (``numpy.linalg.lstsq``: the rows [z_{t−1} … z_{t−p}, 1], exactly the
closed form); p in 0 … p_max by AIC = n' log σ̂² + 2(p + 1) on the common sample t ≥ p_max.
Forecasts are recursive: ẑ_{t+k} from the values and forecasts before it, then a = Σ z for d = 1.
Being linear in the window, the H forecasts after a window of L ≥ p + d values are an affine map

    â_{t+1..t+H} = A ᵀ a_{t−L+1..t} + b            A (L, H), b (H,)

(:func:`affine_map`, from the forecasts of the zero window and of the unit windows), which is
how the forecaster applies it and how its ONNX graph holds it (one MatMul).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ARModel:
    coef: np.ndarray          # (p,) φ_1 .. φ_p, on z = Δ^d a
    intercept: float          # c
    d: int                    # 0 or 1

    @property
    def span(self) -> int:
        """Values of a a forecast needs: p + d."""
        return len(self.coef) + self.d


def _design(z: np.ndarray, p: int, start: int) -> np.ndarray:
    """Rows [z_{t−1}, …, z_{t−p}, 1] for t = start .. len(z) − 1, shape (len(z) − start, p + 1)."""
    rows = len(z) - start
    lags = [z[start - i:start - i + rows] for i in range(1, p + 1)]
    return np.stack(lags + [np.ones(rows)], axis=1)


def fit_ar(a: np.ndarray, d: int, p_max: int) -> ARModel:
    """The least-squares AR(p) on Δ^d a with the p in [0, p_max] of lowest AIC."""
    z = np.diff(a, n=d) if d else np.asarray(a, np.float64)
    p_max = max(0, min(p_max, len(z) // 2 - 1))
    target = z[p_max:]
    best, best_aic = None, np.inf
    for p in range(p_max + 1):
        X = _design(z, p, p_max)
        sol, *_ = np.linalg.lstsq(X, target, rcond=None)
        rss = float(np.sum((target - X @ sol) ** 2))
        aic = len(target) * np.log(max(rss / len(target), 1e-300)) + 2 * (p + 1)
        if aic < best_aic - 1e-9:
            best, best_aic = (p, sol), aic
    p, sol = best
    if p < p_max:                                # refit on every row the chosen order allows
        X = _design(z, p, p)
        sol, *_ = np.linalg.lstsq(X, z[p:], rcond=None)
    return ARModel(np.asarray(sol[:p], np.float64), float(sol[p]), d)


def fit_order(a: np.ndarray, d: int, p: int) -> ARModel:
    """AR(p) on Δ^d a by least squares, the order fixed (p = 9, d = 0: the baseline the tests
    and the tuning script compare with)."""
    z = np.diff(a, n=d) if d else np.asarray(a, np.float64)
    sol, *_ = np.linalg.lstsq(_design(z, p, p), z[p:], rcond=None)
    return ARModel(sol[:p].copy(), float(sol[p]), d)


def forecast_ar(model: ARModel, windows: np.ndarray, steps: int) -> np.ndarray:
    """Recursive forecasts (B, steps) after each row of windows (B, ≥ p + d) of a."""
    windows = np.asarray(windows, np.float64)
    p, d = len(model.coef), model.d
    z = np.diff(windows, axis=1) if d else windows
    hist = z[:, z.shape[1] - p:] if p else z[:, :0]             # (B, p), oldest first
    out = np.empty((len(windows), steps))
    last = windows[:, -1]
    for k in range(steps):
        nxt = model.intercept + hist[:, ::-1] @ model.coef if p else np.full(len(windows), model.intercept)
        if p:
            hist = np.concatenate([hist[:, 1:], nxt[:, None]], axis=1)
        last = last + nxt if d else nxt
        out[:, k] = last
    return out


def affine_map(model: ARModel, L: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """(A (L, H), b (H,)): forecast_ar(model, w, H) = w A + b for every window w (L,), L ≥ p + d."""
    if L < model.span:
        raise ValueError(f"affine_map: window {L} shorter than the model's span {model.span}")
    basis = np.concatenate([np.zeros((1, L)), np.eye(L)])
    f = forecast_ar(model, basis, H)                             # (L + 1, H)
    return f[1:] - f[0], f[0]


def residuals(model: ARModel, a: np.ndarray) -> np.ndarray:
    """One-step in-sample errors of a, for every t with a full window before it."""
    span = max(model.span, 1)
    if len(a) <= span:
        return np.zeros(0)
    windows = np.lib.stride_tricks.sliding_window_view(a[:-1], span)          # (n − span, span)
    return a[span:] - forecast_ar(model, windows, 1)[:, 0]
