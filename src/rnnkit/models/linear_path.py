"""The forecaster's linear path: transform, seasonal offsets and autoregression, per series.

For each series x_f (the columns of x) the path is (``rnnkit.models.transforms``,
``rnnkit.models.autoregression``):

    a_t = g_λ(x_t) − s_{t mod m}          the adjusted series (λ = 1, s = 0: x_t − 1)
    â_{t+1..t+H} = Aᵀ a_{t−L+1..t} + b    AR(p) on Δ^d a, as an affine map of the window
    x̂ = g_λ⁻¹(â + s)

λ is :func:`~rnnkit.models.transforms.choose_lambda`'s (a rule on level and spread); whether to
remove seasonal offsets, and d ∈ {0, 1}, are chosen on the most recent steps: each candidate is
fitted on the series less its last ``n_val`` steps and forecasts them from every origin there, up
to ``h_val`` steps ahead; of the candidates whose mean squared error (in the series' own units)
is within ``SIMPLER_MARGIN`` of the lowest, the simplest wins (the fixed order of
:func:`candidates`). Choosing λ the same way was less stable: on 22 validation months of the
airline series the untransformed candidates won, and lost the 36 test months 6.7% to 4.6% MAPE. The winner is refitted on the
whole series. Everything is closed form and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.engine import matmul
from rnnkit.models.autoregression import ARModel, affine_map, fit_ar, fit_order, forecast_ar, residuals
from rnnkit.models.data import spread_or_one
from rnnkit.models.stationarity import needs_difference
from rnnkit.models.transforms import bias_adjusted_inverse, box_cox, choose_lambda, inverse_box_cox, seasonal_offsets

VALIDATION_SHARE = 0.2      # the most recent share of the series that chooses λ, offsets and d
SIMPLER_MARGIN = 0.1        # the first candidate (in order of simplicity) within 10% of the best
                            # validation error wins: without the margin, d = 1 won on US
                            # consumption changes (a stationary series) by 0.17 against 0.22
                            # one step ahead and lost its 12 test quarters 0.44 to 0.25 RMSE
VALIDATION_MIN_STEPS = 8    # h_val >= 8: multi-step errors tell d = 0 from d = 1 better than
                            # one-step ones (on US consumption and lynx, docs/sequence_models.md)
ORDER_SHARE = 5             # p_max = (length of Δ^d a) / ORDER_SHARE, at most the window − d:
                            # AIC over p = 0 .. p_max (an AR(9) of 100 steps may still be found)


@dataclass(frozen=True)
class LinearPath:
    lam: np.ndarray           # (F,) Box-Cox λ per series
    offsets: np.ndarray       # (F, m) seasonal offsets s_j (zeros: none), m = max(season, 1)
    coef: np.ndarray          # (F, P) φ per series, zero beyond its order
    intercept: np.ndarray     # (F,) c
    d: np.ndarray             # (F,) int64 differences
    scale: np.ndarray         # (F,) σ_r: spread of the one-step errors of a (the network's unit)

    @property
    def season(self) -> int:
        return self.offsets.shape[1]

    def model(self, f: int) -> ARModel:
        coef = self.coef[f]
        p = int(np.max(np.nonzero(coef)[0]) + 1) if np.any(coef) else 0
        return ARModel(coef[:p].copy(), float(self.intercept[f]), int(self.d[f]))

    def seasonal(self, start: np.ndarray, T: int) -> np.ndarray:
        """s at rows start + 0 .. T − 1: (B, T, F) for start (B,) (row 0 = the training series' first)."""
        phase = (np.asarray(start, np.int64)[:, None] + np.arange(T)) % self.season         # (B, T)
        return np.moveaxis(self.offsets[:, phase], 0, -1)

    def adjust(self, x: np.ndarray, start: np.ndarray) -> np.ndarray:
        """a (B, T, F) from raw rows x (B, T, F) starting at rows ``start`` (B,)."""
        return box_cox(x, self.lam) - self.seasonal(start, x.shape[1])

    def restore(self, a: np.ndarray, start: np.ndarray, var: np.ndarray | None = None) -> np.ndarray:
        """x (B, T, F) from adjusted rows a (B, T, F) starting at rows ``start``: the median of
        the forecast distribution, or its mean when a's variance ``var`` (T, F) is given."""
        y = a + self.seasonal(start, a.shape[1])
        return inverse_box_cox(y, self.lam) if var is None else bias_adjusted_inverse(y, self.lam, var)

    def affine(self, L: int, H: int) -> tuple[np.ndarray, np.ndarray]:
        """(A (F, L, H), b (F, H)) of every series."""
        maps = [affine_map(self.model(f), L, H) for f in range(len(self.lam))]
        return np.stack([m[0] for m in maps]), np.stack([m[1] for m in maps])

    def forecast(self, a: np.ndarray, H: int) -> np.ndarray:
        """â (B, H, F) after adjusted windows a (B, L, F)."""
        A, b = self.affine(a.shape[1], H)
        out = [matmul(np.ascontiguousarray(a[:, :, f]), A[f]) + b[f] for f in range(len(self.lam))]
        return np.stack(out, axis=2)


@dataclass(frozen=True)
class Candidate:
    lam: float
    offsets: bool
    d: int

    def describe(self) -> dict:
        return {"lambda": self.lam, "seasonal_offsets": self.offsets, "d": self.d}


def fit_linear_path(x: np.ndarray, season: int, L: int, h_val: int) -> tuple[LinearPath, list[dict]]:
    """The linear path of x (n, F) for windows of L rows, and each series' choice (for reports)."""
    n, F = x.shape
    m = max(season, 1)
    parts, choices = [], []
    for f in range(F):
        cand, score = select(x[:, f], season, L, h_val)
        model, offsets, lam = _fit(x[:, f], cand, season, L, n)
        a = box_cox(x[:, f:f + 1], np.array([lam]))[:, 0] - offsets[np.arange(n) % m]
        res = residuals(model, a)
        scale = float(spread_or_one(np.array([np.sqrt(np.mean(res ** 2)) if len(res) else 0.0]),
                                    np.array([np.mean(np.abs(a))]))[0])
        parts.append((lam, offsets, model, scale))
        choices.append(cand.describe() | {"order": len(model.coef), "validation_mse": score})
    coef = np.zeros((F, L))
    for f, (_, _, model, _) in enumerate(parts):
        coef[f, :len(model.coef)] = model.coef
    path = LinearPath(np.array([p[0] for p in parts]), np.stack([p[1] for p in parts]), coef,
                      np.array([p[2].intercept for p in parts]), np.array([p[2].d for p in parts], np.int64),
                      np.array([p[3] for p in parts]))
    return path, choices


def candidates(x: np.ndarray, season: int) -> list[Candidate]:
    """λ from choose_lambda; in the order of preference: no offsets first, then d = 0 first;
    d = 1 only where KPSS rejects the level stationarity of the adjusted series (g_λ(x) less
    the offsets), as AutoARIMA chooses d: validation alone picked d = 1 for the stationary
    cycles of lynx and sunspots and doubled their multi-step error against an AR on the levels."""
    lam = choose_lambda(x, season)
    y = box_cox(x[:, None], np.array([lam]))[:, 0]
    seas = [False, True] if season > 1 and len(x) >= 2 * season + 1 else [False]
    out = []
    for s in seas:
        a = y - seasonal_offsets(y, season)[np.arange(len(y)) % season] if s else y
        out += [Candidate(lam, s, d) for d in ((0, 1) if needs_difference(a) else (0,))]
    return out


def p_max_for(length: int, L: int, d: int) -> int:
    return max(0, min(L - d, (length - d) // ORDER_SHARE))


def _fit(x: np.ndarray, cand: Candidate, season: int, L: int, n_fit: int):
    """(AR model, offsets (m,), λ) of one candidate fitted on x[:n_fit]."""
    m = max(season, 1)
    y = box_cox(x[:, None], np.array([cand.lam]))[:, 0]
    offsets = seasonal_offsets(y[:n_fit], season) if cand.offsets else np.zeros(m)
    a = y - offsets[np.arange(len(x)) % m]
    model = fit_ar(a[:n_fit], cand.d, p_max_for(n_fit, L, cand.d))
    return model, offsets, cand.lam


def select(x: np.ndarray, season: int, L: int, h_val: int) -> tuple[Candidate, float | None]:
    """The candidate with the lowest validation error (module docstring), and that error."""
    n = len(x)
    cands = candidates(x, season)
    n_val = max(h_val, int(round(VALIDATION_SHARE * n)))
    if n - n_val < max(2 * L, 3 * season + 1, 10):          # too short to hold anything out
        return Candidate(cands[-1].lam, cands[-1].offsets, 0), None
    scores = [_validation_error(x, c, season, L, n - n_val, h_val) for c in cands]
    best = next(i for i, s in enumerate(scores) if s <= (1 + SIMPLER_MARGIN) * min(scores))
    return cands[best], float(scores[best])


def _validation_error(x: np.ndarray, cand: Candidate, season: int, L: int, n_fit: int, h: int) -> float:
    model, offsets, lam = _fit(x, cand, season, L, n_fit)
    m, n = max(season, 1), len(x)
    a = box_cox(x[:, None], np.array([lam]))[:, 0] - offsets[np.arange(n) % m]
    origins = np.arange(n_fit, n)
    span = max(model.span, 1)
    windows = np.stack([a[o - span:o] for o in origins])
    fc = forecast_ar(model, windows, h)                                       # (B, h)
    rows = origins[:, None] + np.arange(h)
    valid = rows < n
    pred = inverse_box_cox((fc + offsets[rows % m])[..., None], np.array([lam]))[..., 0]
    err = (pred - x[np.minimum(rows, n - 1)]) ** 2
    return float(np.mean(err[valid]))


def backtest_errors(x: np.ndarray, path: LinearPath, f: int, origins: np.ndarray, K: int) -> np.ndarray:
    """Out-of-sample errors (B, K) of series f's linear path, refitted (same λ, offsets or not,
    d and order) on x[:o] for each origin o and forecasting x[o .. o + K − 1]; in the transformed
    space g_λ(x), nan past the end of x."""
    n, m = len(x), path.season
    lam, model = np.array([path.lam[f]]), path.model(f)
    y = box_cox(x[:, None], lam)[:, 0]
    out = np.full((len(origins), K), np.nan)
    for i, o in enumerate(origins):
        offsets = seasonal_offsets(y[:o], m) if np.any(path.offsets[f]) else np.zeros(m)
        a = y - offsets[np.arange(n) % m]
        refit = fit_order(a[:o], model.d, len(model.coef))
        span = max(refit.span, 1)
        steps = min(K, n - o)
        fc = forecast_ar(refit, a[None, o - span:o], steps)[0] + offsets[(o + np.arange(steps)) % m]
        out[i, :steps] = y[o:o + steps] - fc
    return out
