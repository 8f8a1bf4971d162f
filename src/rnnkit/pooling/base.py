"""What every pooling module shares: layouts, lengths, the valid-step mask and its call record.

A pooling module reads the outputs of a recurrent layer, h (T, B, F) — (B, T, F) with
``batch_first`` — and optional per-sequence ``lengths`` (B,), and returns one vector per sequence,
(B, F). Steps t ≥ lengths[b] are padding: they never reach the output and get zero gradient.
"""

from __future__ import annotations

import numpy as np

from rnnkit.checks import as_float_array, check_lengths
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.module import Module


def valid_mask(steps: int, lengths: np.ndarray) -> np.ndarray:
    """(T, B) booleans: True where step t is inside sequence b (t < lengths[b])."""
    return np.arange(steps)[:, None] < lengths[None, :]


class SequencePool(Module):
    """Base class: subclasses give ``_forward(h, lengths) -> (y, cache)`` and ``_backward(dy, cache)``.

    ``h`` reaching them is time-major (T, B, F) in the module's dtype and ``lengths`` an int64 (B,)
    array (all T when the caller gave none). The cache of the last call with gradients enabled is
    kept for ``backward``; under :func:`rnnkit.no_grad` nothing is kept.
    """

    def __init__(self, *, batch_first: bool = False, dtype=np.float32) -> None:
        super().__init__(dtype=dtype)
        self.batch_first = bool(batch_first)
        self._cache = None
        self._shape: tuple[int, ...] | None = None      # (T, B, F) of the last call with a cache

    def __call__(self, h, lengths=None) -> np.ndarray:
        return self.forward(h, lengths)

    def forward(self, h, lengths=None) -> np.ndarray:
        """h (T, B, F) or (B, T, F) with batch_first, lengths (B,) or None → (B, F)."""
        h = self._time_major(h)
        T, B, _ = h.shape
        lengths = check_lengths(lengths, B, T)
        y, cache = self._forward(h, np.full(B, T, np.int64) if lengths is None else lengths)
        self._cache = cache if is_grad_enabled() else None
        self._shape = h.shape if is_grad_enabled() else None
        return y

    def backward(self, dout) -> np.ndarray:
        """Gradient of the last call's input, shaped like that input; parameter grads accumulate."""
        name = type(self).__name__
        if self._cache is None:
            raise RuntimeError(f"{name}.backward: no forward call with gradients enabled to differentiate")
        T, B, F = self._shape
        dy = as_float_array("dout", dout, self.dtype)
        if dy.shape != (B, F):
            raise ValueError(f"{name}.backward: dout must have shape {(B, F)} (the forward output), "
                             f"got {dy.shape}")
        dh = self._backward(dy, self._cache)
        return np.ascontiguousarray(dh.transpose(1, 0, 2)) if self.batch_first else dh

    def _time_major(self, h) -> np.ndarray:
        name = type(self).__name__
        h = as_float_array("h", h, self.dtype)
        if h.ndim != 3:
            layout = "(B, T, F)" if self.batch_first else "(T, B, F)"
            raise ValueError(f"{name}: h must have 3 dimensions {layout}, got shape {h.shape}")
        if self.batch_first:
            h = np.ascontiguousarray(h.transpose(1, 0, 2))
        if min(h.shape) < 1:
            raise ValueError(f"{name}: h must have at least one step, sequence and feature, "
                             f"got shape {h.shape} (time-major)")
        return h

    def _forward(self, h: np.ndarray, lengths: np.ndarray):
        raise NotImplementedError

    def _backward(self, dy: np.ndarray, cache) -> np.ndarray:
        raise NotImplementedError
