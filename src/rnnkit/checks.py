"""Argument checks shared by every public entry point: dtypes, arrays, shapes, lengths, states.

Each error names the argument and gives the expected and the actual value, shape or type. A
number's range is a :class:`rnnkit.ranges.Range` (``COUNT.check("hidden_size", n)``), not a check
here.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_float_array(name: str, value, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of the layer's ``dtype``.

    Real floating and integer inputs are converted (the layer computes in its own precision, as a
    PyTorch module does with its parameters' dtype); anything else is rejected.
    """
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real (float or integer) array, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def check_shape(name: str, a: np.ndarray, expected: tuple[int, ...], meaning: str) -> None:
    if a.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} {meaning}, got {a.shape}")


def check_lengths(lengths, batch: int, steps: int) -> np.ndarray | None:
    """Validate per-sequence lengths: (B,) integers in [1, T]. Returns an int64 array or None."""
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array of shape ({batch},), got dtype {a.dtype}")
    if a.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence), got {a.shape}")
    if a.min() < 1 or a.max() > steps:
        raise ValueError(
            f"lengths must lie in [1, T={steps}], got min {a.min()} and max {a.max()}"
        )
    return a.astype(np.int64)


def check_pair(owner: str, state) -> tuple:
    """An LSTM state: a pair (h, c) whose parts may be None (zeros)."""
    if not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise TypeError(f"{owner} state must be a pair (h, c) (or None), got {type(state).__name__}")
    return tuple(state)


def make_rng(rng) -> np.random.Generator:
    """``rng``: a Generator, an int seed, or None (fresh OS entropy, like torch's global seed)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _among(value, options) -> bool:
    try:
        return value in options
    except TypeError:                      # an unhashable value asked of a dict or set
        return False


def choice_problem(name: str, value, options) -> str | None:
    """What is wrong with ``value`` for ``name`` if it is not one of ``options``, else None: the
    one wording of a choice check (``cell must be one of lstm, gru, rnn, got 'tcn'``)."""
    if _among(value, options):
        return None
    return f"{name} must be one of {', '.join(map(str, options))}, got {value!r}"


def check_choice(name: str, value, options, error: type[Exception] = ValueError):
    """``value`` if it is one of ``options``, else ``error`` naming ``name``, the options and ``value``."""
    if (problem := choice_problem(name, value, options)) is not None:
        raise error(problem)
    return value
