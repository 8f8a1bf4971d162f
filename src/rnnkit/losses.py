"""Losses with their gradient with respect to the network's outputs, each in one pass.

Fused softmax cross-entropy:

    p = softmax(z) along the last axis,   loss = −(1/N) Σ log p[target] over the N counted positions
    dz = (p − onehot(target)) / N          (zero at masked positions)

computed stably with z − max(z) so no exp overflows. Mean squared error over the M entries:

    loss = (1/M) Σ (z − y)²,               dz = 2 (z − y) / M

Both take ``grad=False`` to score only (a validation pass), returning (loss, None).
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """exp(z) / Σ exp(z) along the last axis (computed from z − max(z))."""
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


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


def mean_squared_error(z: np.ndarray, y, *, grad: bool = True):
    """z (...) and real targets y of the same shape → (mean of (z − y)² over every entry, dz),
    or with ``grad=False`` (loss, None)."""
    r = z - np.asarray(y, z.dtype)
    if r.shape != z.shape:
        raise ValueError(f"targets must have shape {z.shape} (the outputs'), got {np.shape(y)}")
    loss = float(np.mean(r * r))
    return (loss, (2.0 / r.size) * r) if grad else (loss, None)
