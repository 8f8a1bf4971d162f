"""Variance-stabilising transforms and seasonal offsets of a series, and their inverses.

Box-Cox, per series (``lam`` = λ; λ = 1 leaves the series as it is, shifted by 1):

    g_λ(x) = (x^λ − 1) / λ      λ > 0          g_λ⁻¹(y) = (λ y + 1)^{1/λ}
    g_0(x) = log x                             g_0⁻¹(y) = exp y

chosen (:func:`choose_lambda`) only when the series is positive and its spread grows with its
level: over blocks of a season (or of n/8 steps without one), the slope b of log(spread) on
log(level) (Guerrero's idea: x^{1−b} has a constant spread), λ = 1 − b rounded to 0, ½ or 1 —
rounded so that noise does not move it by small amounts; the forecaster then keeps it only if
it forecasts the most recent steps better (``rnnkit.models.linear_path``).

Seasonal offsets (classical decomposition, in the transformed space): the trend is a centred
moving average over one season (weights ½, 1, …, 1, ½ over m + 1 steps for an even m), and

    s_j = mean over t ≡ j (mod m) of (y_t − trend_t),    centred to Σ_j s_j = 0
    adjusted series  a_t = g_λ(x_t) − s_{t mod m}        t counted from the series' first row

so a multiplicative season (airline) is an additive one after the log.
"""

from __future__ import annotations

import numpy as np

LAMBDAS = (0.0, 0.5, 1.0)        # the Box-Cox exponents choose_lambda rounds to
MIN_BLOCKS = 4                   # fewer blocks of level and spread: no transform
MIN_LEVEL_RATIO = 1.5            # the highest block level over the lowest, at least; below it
                                 # the slope of spread on level is mostly noise
SLOPE_T = 3.0                    # the slope must exceed 3 standard errors: on a simulated additive
                                 # season with a trend (spread constant, level 100 to 170) the
                                 # slope's noise alone gave λ = ½ (and a 36-month RMSE 1.5x
                                 # Holt-Winters'); the airline series' slope is 1.1 ± 0.1
BASE_FLOOR = 1e-12               # λ y + 1 is clipped here in g_λ⁻¹ (a forecast below the
                                 # transform's range maps to ~0, not to nan)


def box_cox(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """g_λ(x) per column: x (..., F), lam (F,)."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    for f, l in enumerate(np.broadcast_to(lam, x.shape[-1:])):
        col = x[..., f]
        out[..., f] = np.log(col) if l == 0 else (col - 1.0 if l == 1 else (np.power(col, l) - 1.0) / l)
    return out


def inverse_box_cox(y: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """g_λ⁻¹(y) per column."""
    y = np.asarray(y, np.float64)
    out = np.empty_like(y)
    for f, l in enumerate(np.broadcast_to(lam, y.shape[-1:])):
        col = y[..., f]
        out[..., f] = np.exp(col) if l == 0 else (col + 1.0 if l == 1 else
                                                   np.power(np.maximum(l * col + 1.0, BASE_FLOOR), 1.0 / l))
    return out


def bias_adjusted_inverse(y: np.ndarray, lam: np.ndarray, var: np.ndarray) -> np.ndarray:
    """The mean, not the median, of x = g_λ⁻¹(y) when y has variance ``var`` (broadcast to y):

        x̄ ≈ g_λ⁻¹(y) · (1 + var (1 − λ) / (2 (λ y + 1)²))     (λ = 0: exp(y) (1 + var / 2))

    the second-order expansion of E[g_λ⁻¹(y + ε)] (Hyndman and Athanasopoulos, "Forecasting:
    principles and practice", 3rd ed., section 5.6, "Bias adjustments"). g_λ⁻¹ of a forecast of
    the transformed series is its median; the mean is what minimises squared error."""
    y = np.asarray(y, np.float64)
    lam = np.broadcast_to(np.asarray(lam, np.float64), y.shape[-1:])
    base = np.maximum(lam * y + 1.0, BASE_FLOOR)
    return inverse_box_cox(y, lam) * (1.0 + np.asarray(var) * (1.0 - lam) / (2.0 * base ** 2))


def _blocks(x: np.ndarray, season: int) -> list[np.ndarray]:
    size = season if season > 1 else max(4, len(x) // 8)
    return [x[i:i + size] for i in range(0, len(x) - size + 1, size)]


def choose_lambda(x: np.ndarray, season: int) -> float:
    """λ for one series (n,) (module docstring): 1 unless positive with spread growing with level."""
    x = np.asarray(x, np.float64)
    if np.any(x <= 0):
        return 1.0
    blocks = _blocks(x, season)
    if len(blocks) < MIN_BLOCKS:
        return 1.0
    t = np.arange(len(blocks[0]), dtype=np.float64)
    level = np.array([b.mean() for b in blocks])
    spread = np.array([np.std(b - np.polyval(np.polyfit(t, b, 1), t)) for b in blocks])
    if level.max() / level.min() < MIN_LEVEL_RATIO or np.any(spread <= 0):
        return 1.0
    (slope, _), cov = np.polyfit(np.log(level), np.log(spread), 1, cov="unscaled" if len(blocks) < 5 else True)
    if slope < SLOPE_T * np.sqrt(max(cov[0, 0], 0.0)):      # no clear growth of spread with level
        return 1.0
    return float(min(LAMBDAS, key=lambda l: abs(l - (1.0 - slope))))


def moving_trend(y: np.ndarray, season: int) -> np.ndarray:
    """The centred moving average over one season, nan where the window does not fit."""
    w = np.ones(season + (season % 2 == 0))
    if season % 2 == 0:
        w[0] = w[-1] = 0.5
    w /= season
    out = np.full(len(y), np.nan)
    half = len(w) // 2
    out[half:len(y) - half] = np.convolve(y, w, mode="valid")
    return out


def seasonal_offsets(y: np.ndarray, season: int) -> np.ndarray:
    """s_0 .. s_{m−1} of one (transformed) series (n,), centred; zeros if n < 2m + 1."""
    if season < 2 or len(y) < 2 * season + 1:
        return np.zeros(max(season, 1))
    detr = y - moving_trend(y, season)
    phase = np.arange(len(y)) % season
    s = np.array([np.nanmean(detr[phase == j]) for j in range(season)])
    return s - s.mean()
