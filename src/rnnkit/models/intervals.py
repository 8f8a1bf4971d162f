"""Prediction intervals: split-conformal on out-of-sample multi-step errors of the linear path.

In ``fit`` the forecaster refits its linear path (the λ, offsets, d and order it chose) at up to
40 origins spread over the most recent 40% of the series, each on the steps before the origin
(``linear_path.backtest_errors``), and forecasts to the series' end: errors e_{o,k} of every
k-step forecast, in the transformed space g_λ(x). From them (:func:`spread_and_scores`):

    v_k   = max_{j ≤ k} RMS_o(e_{o,j})             the spread k steps ahead (steps with at least
                                                  MIN_ERRORS errors; never falling with k)
    v_k   = v_K √(k / K)  for k > K               past them, a random walk's growth
    score = |e_{o,k}| / v_k                        pooled over origins and steps

``predict_interval`` takes their conformal quantile,

    q = the ⌈(n + 1)·coverage⌉-th smallest of the n scores   (the largest if that exceeds n)

and the interval â_k ± q v_k, mapped back through the seasonal offsets and g_λ⁻¹ (monotone, so
the coverage is kept; after a log the interval is asymmetric, as the series). The network's
correction is not refitted per origin (that would mean training it 40 times): when it is kept,
the interval is that of the linear path's errors around the corrected forecast.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import InputError
from rnnkit.ranges import FRACTION

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
    """The share of future values an interval is to cover: strictly between 0 and 1."""
    return FRACTION.check("coverage", coverage, InputError)
