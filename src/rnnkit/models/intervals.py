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


def growth(psi: np.ndarray) -> np.ndarray:
    """v_1 .. v_K (K, F) from ψ_0 .. ψ_{K−1} (K, F)."""
    return np.sqrt(np.cumsum(psi ** 2, axis=0))


def scores(errors: np.ndarray, valid: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """Per series, the sorted scores |e| / v_k of errors (B, K, F) where valid (B, K)."""
    ratio = np.abs(errors) / v[None, :, :]
    return [np.sort(ratio[..., f][valid]) for f in range(errors.shape[2])]


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
