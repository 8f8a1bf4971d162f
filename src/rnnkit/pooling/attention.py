r"""Feed-forward attention pooling (Raffel & Ellis 2015; Yang et al. 2016's word attention).

For each sequence b, over its valid steps t < L_b (W of shape (A, F), b and v of shape (A,)):

    u_t = tanh(W h_t + b)                     (T, B, A)
    e_t = u_t · v                             (T, B)   scores
    α_t = exp(e_t) / Σ_{s < L_b} exp(e_s)     (T, B)   α_t = 0 exactly at padded steps
    y   = Σ_t α_t h_t                         (B, F)

Backward, from dy (B, F):

    dα_t = dy · h_t
    de_t = α_t (dα_t − Σ_s α_s dα_s)          (softmax; zero at padded steps since α_t = 0)
    dv   = Σ_{t,b} de_t u_t                   du_t = de_t v
    da_t = du_t ⊙ (1 − u_t²)                  dW = Σ_{t,b} da_tᵀ h_t,   db = Σ_{t,b} da_t
    dh_t = α_t dy + da_t W

The weights α of the last call, (B, T) with rows summing to 1, stay readable as ``pool.alpha``
(also after calls under ``rnnkit.no_grad()``: inspection is what they are for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnnkit.checks import make_rng
from rnnkit.pooling.base import SequencePool, valid_mask
from rnnkit.ranges import COUNT


@dataclass(frozen=True)
class AttentionCache:
    h: np.ndarray           # (T, B, F) input
    u: np.ndarray           # (T, B, A) tanh(W h + b)
    alpha: np.ndarray       # (T, B) attention weights


def attention_forward(W: np.ndarray, b: np.ndarray, v: np.ndarray, h: np.ndarray, lengths: np.ndarray):
    T, B, F = h.shape
    u = np.tanh(h.reshape(T * B, F) @ W.T + b).reshape(T, B, -1)
    e = u @ v                                                         # (T, B)
    e = np.where(valid_mask(T, lengths), e, -np.inf)
    e -= e.max(axis=0, keepdims=True)                                 # step 0 is always valid
    a = np.exp(e)                                                     # exactly 0 where e = −∞
    alpha = a / a.sum(axis=0, keepdims=True)
    y = np.einsum("tb,tbf->bf", alpha, h)
    return y, AttentionCache(h, u, alpha)


def attention_backward(W: np.ndarray, v: np.ndarray, dy: np.ndarray, cache: AttentionCache):
    """Returns (dh, dW, db, dv)."""
    h, u, alpha = cache.h, cache.u, cache.alpha
    T, B, F = h.shape
    dalpha = np.einsum("bf,tbf->tb", dy, h)
    de = alpha * (dalpha - (alpha * dalpha).sum(axis=0, keepdims=True))
    A = u.shape[2]
    u2, de1 = u.reshape(T * B, A), de.reshape(T * B)
    dv = de1 @ u2
    da = (de1[:, None] * v[None, :]) * (1.0 - u2 * u2)               # (T·B, A)
    dW = da.T @ h.reshape(T * B, F)
    db = da.sum(axis=0)
    dh = alpha[:, :, None] * dy[None] + (da @ W).reshape(T, B, F)
    return dh, dW, db, dv


class AttentionPool(SequencePool):
    """Attention-weighted mean of the valid steps, with parameters ``W`` (A, F), ``b`` (A,), ``v`` (A,).

    ``attention_size`` A defaults to ``features``. Initialisation as PyTorch's ``nn.Linear`` for
    W and b (U(±1/√F)) and U(±1/√A) for v.
    """

    def __init__(self, features: int, attention_size: int | None = None, *, batch_first: bool = False,
                 dtype=np.float32, rng=None) -> None:
        super().__init__(batch_first=batch_first, dtype=dtype)
        self.features = COUNT.check("features", features)
        self.attention_size = COUNT.check("attention_size", features if attention_size is None else attention_size)
        rng = make_rng(rng)
        F, A = self.features, self.attention_size
        k, kv = 1.0 / math.sqrt(F), 1.0 / math.sqrt(A)
        self.W = self.register_parameter("W", rng.uniform(-k, k, (A, F)))
        self.b = self.register_parameter("b", rng.uniform(-k, k, A))
        self.v = self.register_parameter("v", rng.uniform(-kv, kv, A))
        self.alpha: np.ndarray | None = None          # (B, T) weights of the last call

    def _forward(self, h, lengths):
        if h.shape[2] != self.features:
            raise ValueError(f"AttentionPool: h must have features={self.features} on its last axis, "
                             f"got shape {h.shape} (time-major)")
        y, cache = attention_forward(self.W.data, self.b.data, self.v.data, h, lengths)
        self.alpha = np.ascontiguousarray(cache.alpha.T)
        return y, cache

    def _backward(self, dy, cache):
        dh, dW, db, dv = attention_backward(self.W.data, self.v.data, dy, cache)
        self.W.grad += dW
        self.b.grad += db
        self.v.grad += dv
        return dh
