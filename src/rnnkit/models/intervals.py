"""Prediction intervals: split-conformal on the forecaster's own multi-step errors.

The k-step error of a linear AR forecast is Σ_{j<k} ψ_j ε, so its spread grows as

    v_k = √(Σ_{j<k} ψ_j²)                       (the linear path's ψ, per series)

In ``fit``, the forecaster forecasts the most recent ``n_cal`` steps of its training series from
every origin there, up to ``K`` steps ahead, in the adjusted space a (``linear_path``); each
error becomes a score |a_{o+k} − â_{o+k}| / v_k, pooled over origins and steps (many scores even
for a short series, and steps beyond K need no scores of their own). ``predict_interval`` takes
the conformal quantile of the scores,

    q = the ⌈(n + 1)·coverage⌉-th smallest of the n scores   (the largest if that exceeds n)

and the interval â_k ± q v_k, mapped back through the transform and the seasonal offsets (which
are monotone, so the interval keeps its coverage; after a log it is asymmetric, as the series).
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.models.errors import InputError

MIN_ERRORS = 5          # backtest errors a step needs for its own spread v_k


def spread_and_scores(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v (K,), sorted scores) of one series' backtest errors (B, K), nan where missing.

    v_k: the root mean square of the errors k steps ahead where at least MIN_ERRORS exist, never
    falling with k; past the last such k it grows as √k (a random walk's spread)."""
    counts = np.sum(np.isfinite(errors), axis=0)
    K = len(counts)
    known = int(np.max(np.nonzero(counts >= MIN_ERRORS)[0]) + 1) if np.any(counts >= MIN_ERRORS) else 0
    if known == 0:
        return np.full(K, np.inf), np.zeros(0)
    rms = np.sqrt(np.nanmean(errors[:, :known] ** 2, axis=0))
    v = np.maximum.accumulate(np.maximum(rms, 1e-12 * (1 + rms.max())))
    ratio = np.abs(errors[:, :known]) / v
    return v, np.sort(ratio[np.isfinite(ratio)])


def extend(v: np.ndarray, h: int) -> np.ndarray:
    """v_1 .. v_h from the known v (K,): past K, v_K √(k / K)."""
    K = len(v)
    if h <= K:
        return v[:h]
    return np.concatenate([v, v[-1] * np.sqrt(np.arange(K + 1, h + 1) / K)])


def conformal_quantile(sorted_scores: np.ndarray, coverage: float) -> float:
    n = len(sorted_scores)
    if n == 0:
        return math.inf
    rank = math.ceil((n + 1) * coverage)
    return float(sorted_scores[min(rank, n) - 1])


def check_coverage(coverage) -> float:
    try:
        c = float(coverage)
    except (TypeError, ValueError):
        raise InputError(f"coverage must be a number in (0, 1), got {coverage!r}") from None
    if isinstance(coverage, bool) or not 0 < c < 1:
        raise InputError(f"coverage must be a number in (0, 1), got {coverage!r}")
    return c
