r"""Pooling without parameters: the last valid step, the maximum and the mean over valid steps.

With L_b = lengths[b] and the valid steps t < L_b of sequence b:

    LastStep   y_b = h[L_b − 1, b]                 bidirectional: [h→[L_b − 1, b], h←[0, b]]
    MaxPool    y_bf = max_{t < L_b} h[t, b, f]     (padding never wins: it is set to −∞ first)
    MeanPool   y_b = (1 / L_b) Σ_{t < L_b} h[t, b]

Backward (dy of shape (B, F); dh is zero wherever the formula does not name it):

    LastStep   dh[L_b − 1, b] = dy_b               bidirectional: each half to its own step
    MaxPool    dh[t*_bf, b, f] = dy_bf             t*_bf = the (first) step that won the max
    MeanPool   dh[t, b] = dy_b / L_b  for t < L_b

For a bidirectional layer the output is [forward half, reverse half] (F = 2H): the forward
direction's final state sits at the last valid step, the reverse direction's at step 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.pooling.base import SequencePool, valid_mask


@dataclass(frozen=True)
class GatherCache:
    """Where each output entry came from: steps (B, F) into a (T, B, F) input."""

    steps: np.ndarray
    shape: tuple[int, int, int]


def last_forward(h: np.ndarray, lengths: np.ndarray, bidirectional: bool):
    T, B, F = h.shape
    steps = np.repeat((lengths - 1)[:, None], F, axis=1)          # (B, F) step read for each entry
    if bidirectional:
        steps[:, F // 2:] = 0
    return gather_forward(h, steps)


def max_forward(h: np.ndarray, lengths: np.ndarray):
    masked = np.where(valid_mask(h.shape[0], lengths)[:, :, None], h, -np.inf)
    return gather_forward(h, np.argmax(masked, axis=0))         # (B, F) winning steps


def gather_forward(h: np.ndarray, steps: np.ndarray):
    """y[b, f] = h[steps[b, f], b, f]."""
    y = np.take_along_axis(h, steps[None], axis=0)[0]
    return y, GatherCache(steps, h.shape)


def gather_backward(dy: np.ndarray, cache: GatherCache) -> np.ndarray:
    dh = np.zeros(cache.shape, dy.dtype)
    np.put_along_axis(dh, cache.steps[None], dy[None], axis=0)
    return dh


@dataclass(frozen=True)
class MeanCache:
    mask: np.ndarray            # (T, B) valid steps
    lengths: np.ndarray         # (B,)


def mean_forward(h: np.ndarray, lengths: np.ndarray):
    mask = valid_mask(h.shape[0], lengths)
    total = np.einsum("tb,tbf->bf", mask.astype(h.dtype), h)
    return total / lengths[:, None].astype(h.dtype), MeanCache(mask, lengths)


def mean_backward(dy: np.ndarray, cache: MeanCache) -> np.ndarray:
    share = dy / cache.lengths[:, None].astype(dy.dtype)            # (B, F)
    return cache.mask[:, :, None].astype(dy.dtype) * share[None]


class LastStep(SequencePool):
    """Each sequence's output at its last valid step (the many-to-one head: h_T of a GRU/LSTM).

    With ``bidirectional=True`` the input's feature axis is [forward, reverse] halves and the
    reverse half is read at step 0, where the reverse direction finishes.
    """

    def __init__(self, bidirectional: bool = False, *, batch_first: bool = False, dtype=np.float32) -> None:
        super().__init__(batch_first=batch_first, dtype=dtype)
        self.bidirectional = bool(bidirectional)

    def _forward(self, h, lengths):
        if self.bidirectional and h.shape[2] % 2:
            raise ValueError("LastStep(bidirectional=True): h must have an even number of features "
                             f"[forward, reverse], got {h.shape[2]}")
        return last_forward(h, lengths, self.bidirectional)

    def _backward(self, dy, cache):
        return gather_backward(dy, cache)


class MaxPool(SequencePool):
    """Feature-wise maximum over each sequence's valid steps."""

    def _forward(self, h, lengths):
        return max_forward(h, lengths)

    def _backward(self, dy, cache):
        return gather_backward(dy, cache)


class MeanPool(SequencePool):
    """Mean over each sequence's valid steps (padding counts neither in the sum nor in the count)."""

    def _forward(self, h, lengths):
        return mean_forward(h, lengths)

    def _backward(self, dy, cache):
        return mean_backward(dy, cache)
