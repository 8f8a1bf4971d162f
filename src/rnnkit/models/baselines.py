"""Simple baselines and error measures the command line reports beside the model.

    majority class      predict the most frequent training label
    last value          x̂_{N+k} = x_N
    seasonal naive      x̂_{N+k} = x_{N+k−m·⌈k/m⌉}   (the last observed season repeated, period m)
    1-NN DTW            aeon's KNeighborsTimeSeriesClassifier(distance="dtw"), full window

    MAPE = 100/n Σ |y − ŷ| / |y|        RMSE = √(1/n Σ (y − ŷ)²)
"""

from __future__ import annotations

import time

import numpy as np

from rnnkit.models.errors import InputError


def majority_accuracy(y_train: np.ndarray, y_test: np.ndarray) -> float:
    labels, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == labels[np.argmax(counts)]))


def last_value(series: np.ndarray, h: int) -> np.ndarray:
    return np.repeat(series[-1:], h, axis=0)


def seasonal_naive(series: np.ndarray, h: int, season: int) -> np.ndarray:
    if season < 1 or season > len(series):
        raise InputError(f"season must lie in [1, {len(series)}] (the series length), got {season}")
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


def dtw_1nn(X_train, y_train: np.ndarray, X_test, y_test: np.ndarray) -> tuple[float, float]:
    """(accuracy, seconds) of 1-NN DTW from aeon on the same split (X as rnnkit takes it)."""
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    def to_aeon(X):
        if isinstance(X, np.ndarray):
            return np.ascontiguousarray(np.asarray(X, np.float64).reshape(len(X), X.shape[1], -1).transpose(0, 2, 1))
        return [np.ascontiguousarray(np.asarray(x, np.float64).reshape(len(x), -1).T) for x in X]

    start = time.perf_counter()
    knn = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")
    knn.fit(to_aeon(X_train), y_train)
    acc = float(np.mean(knn.predict(to_aeon(X_test)) == y_test))
    return acc, time.perf_counter() - start
