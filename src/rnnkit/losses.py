"""Fused softmax cross-entropy: loss and its gradient with respect to the logits in one pass.

    p = softmax(z) along the last axis,   loss = −(1/N) Σ log p[target] over the N counted positions
    dz = (p − onehot(target)) / N          (zero at masked positions)

Computed stably with z − max(z) so no exp overflows.
"""

from __future__ import annotations

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, targets, mask=None, *, grad: bool = True):
    """logits (..., V), integer targets (...), optional mask (...) of 0/1 or bools.

    Returns (mean negative log-likelihood in nats over the counted positions, dlogits), or with
    ``grad=False`` (scoring only) (loss, None).
    """
    targets = np.asarray(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"targets must have shape {logits.shape[:-1]} (logits without the class "
                         f"axis), got {targets.shape}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integers, got dtype {targets.dtype}")
    V = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"targets must lie in [0, {V}), got min {targets.min()} and max {targets.max()}")
    z = logits.reshape(-1, V)
    t = targets.reshape(-1)
    w = np.ones(t.shape, logits.dtype) if mask is None else np.asarray(mask, logits.dtype).reshape(-1)
    if w.shape != t.shape:
        raise ValueError(f"mask must have shape {targets.shape}, got {np.shape(mask)}")
    n = max(float(w.sum()), 1.0)
    rows = np.arange(t.size)
    zmax = z.max(axis=-1, keepdims=True)
    p = z - zmax                                                         # (N, V), in place below
    z_t = p[rows, t]                                                     # target logit − max
    np.exp(p, out=p)
    total = p.sum(axis=-1, keepdims=True)
    nll = np.log(total[:, 0]) - z_t
    loss = float(np.dot(nll.astype(np.float64), w.astype(np.float64)) / n)
    if not grad:
        return loss, None
    p /= total
    p[rows, t] -= 1.0
    p *= (w / n)[:, None]
    return loss, p.reshape(logits.shape)
