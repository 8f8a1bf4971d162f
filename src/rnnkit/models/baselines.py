"""Simple baselines and error measures the command line reports beside the model.

    majority class      predict the most frequent training label
    last value          x̂_{N+k} = x_N
    seasonal naive      x̂_{N+k} = x_{N+k−m·⌈k/m⌉}   (the last observed season repeated, period m)
    1-NN DTW            the class of the training sequence nearest in DTW distance (below)

    MAPE = 100/n Σ |y − ŷ| / |y|        RMSE = √(1/n Σ (y − ŷ)²)

DTW between a (T, F) and a (U, F) sequence, full window (no band), dependent over channels:

    D(i, j) = ‖a_i − b_j‖² + min(D(i−1, j), D(i, j−1), D(i−1, j−1))
    D(0, 0) = 0,   D(i, 0) = D(0, j) = ∞ for i, j > 0,   dtw(a, b) = √D(T, U)

computed by dtaidistance's C implementation (the ``ucr`` extra). aeon's DTW is D(T, U) itself
and the square root keeps the order, so the nearest neighbour — and the prediction — is the one
aeon's ``KNeighborsTimeSeriesClassifier(distance="dtw")`` makes on the same data; a tie goes to
the first training sequence.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import DataError, InputError
from rnnkit.ranges import Range


def majority_accuracy(y_train: np.ndarray, y_test: np.ndarray) -> float:
    labels, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == labels[np.argmax(counts)]))


def last_value(series: np.ndarray, h: int) -> np.ndarray:
    return np.repeat(series[-1:], h, axis=0)


def seasonal_naive(series: np.ndarray, h: int, season: int) -> np.ndarray:
    problem = Range(int, low=1, high=len(series)).problem("season", season)
    if problem is not None:
        raise InputError(f"{problem} (at most the series length)")
    last = series[-season:]
    return np.concatenate([last] * (-(-h // season)))[:h]


def estimate_season(series, max_period: int | None = None) -> int:
    """The season of the first series (>= 2), or 1: :func:`rnnkit.models.season.estimate_season`."""
    from rnnkit.models.season import estimate_season as periodogram_and_acf
    return periodogram_and_acf(series, max_period)


def mape(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if np.any(y == 0):
        return float("nan")
    return float(100.0 * np.mean(np.abs(y - pred) / np.abs(y)))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(pred, np.float64)) ** 2)))


def dtw_module():
    """dtaidistance's multichannel DTW, or a DataError saying how to install it."""
    try:
        from dtaidistance import dtw_ndim
    except ImportError:
        raise DataError('--dtw needs dtaidistance: pip install "rnnkit[ucr]"') from None
    return dtw_ndim


def dtw_1nn(X_train, y_train: np.ndarray, X_test) -> np.ndarray:
    """1-NN DTW predictions for X_test; X as rnnkit takes it: (n, T, F) or a list of (T_i, F)."""
    dtw_ndim = dtw_module()
    series = [np.ascontiguousarray(np.asarray(x, np.float64).reshape(len(x), -1))
              for part in (X_train, X_test) for x in part]                   # each (T_i, F)
    n_train = len(X_train)
    # Only the train x test block, row-major: (n_train * n_test,) distances.
    d = dtw_ndim.distance_matrix_fast(series, block=((0, n_train), (n_train, len(series))),
                                      compact=True)
    d = np.asarray(d, np.float64).reshape(n_train, len(series) - n_train)
    return np.asarray(y_train)[np.argmin(d, axis=0)]
