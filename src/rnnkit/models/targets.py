"""Checks of y: class labels for the classifier, real targets for the regressor."""

from __future__ import annotations

import numpy as np

from rnnkit.errors import InputError
from rnnkit.models._sklearn import column_vector_warning
from rnnkit.models.data import check_finite


def _as_array(y, n: int, estimator: str) -> np.ndarray:
    if y is None:
        raise InputError(f"{estimator} requires y to be passed, but the target y is None")
    if hasattr(y, "toarray") and hasattr(y, "nnz"):
        raise TypeError("y is a sparse matrix; sparse input is not supported: pass a dense array")
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != n:
        found = "a scalar" if y.ndim == 0 else f"{len(y)} values (shape {y.shape})"
        raise InputError(f"y must have one entry per sequence of X: expected {n}, found {found}")
    if y.dtype.kind == "c":
        raise InputError(f"Complex data not supported: y has dtype {y.dtype}")
    return y


def class_labels(y, n: int, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """(classes (K,) sorted, codes (n,) into them). Labels may be ints, strings, bools, floats."""
    y = _as_array(y, n, estimator)
    if y.ndim == 2 and y.shape[1] == 1:
        column_vector_warning(estimator)
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(f"y must be 1-D (one label per sequence), got shape {y.shape}; "
                         f"{estimator} does not do multi-output classification")
    if y.dtype.kind == "f" or (y.dtype == object and all(isinstance(v, float) for v in y)):
        yf = y.astype(np.float64)
        check_finite("y", yf)
        if np.any(yf != np.round(yf)):
            raise InputError("Unknown label type: continuous (y holds non-integer numbers such as "
                             f"{float(yf[yf != np.round(yf)][0])!r}); class labels must be discrete — "
                             "for real targets use RNNRegressor")
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise InputError(f"Unknown label type: y mixes labels that cannot be ordered ({exc})") from None
    if len(classes) < 2:
        raise InputError(f"y has 1 class ({classes.tolist()[0]!r}): {estimator} needs at least 2 classes")
    return classes, codes.reshape(-1).astype(np.int64)


def real_targets(y, n: int, estimator: str) -> np.ndarray:
    """y as float64 (n,) or (n, k)."""
    y = _as_array(y, n, estimator)
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
        raise InputError(f"y must have shape (n,) or (n, k) with k >= 1, got {y.shape}")
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"y must hold real numbers ({exc})") from None
    check_finite("y", y)
    return y
