"""Gradient clipping, separate from the optimizers (call it between backward and step).

``clip_grad_norm_`` rescales all gradients together when their global L2 norm exceeds
``max_norm`` (the exploding-gradient remedy of Pascanu et al. 2013) and returns the norm before
clipping; ``clip_grad_value_`` clamps each entry to [−v, v].
"""

from __future__ import annotations

import math

import numpy as np


def clip_grad_norm_(params, max_norm: float) -> float:
    params = list(params)
    # Σ g² by einsum's own loop, not BLAS's dot: a BLAS call would leave threads spinning after it.
    total = math.sqrt(sum(float(np.einsum("i,i->", g, g)) for g in (p.grad.ravel() for p in params)))
    coef = max_norm / (total + 1e-6)                       # the 1e-6 is PyTorch's, for parity
    if coef < 1.0:
        for p in params:
            p.grad *= p.grad.dtype.type(coef)
    return total


def clip_grad_value_(params, clip_value: float) -> None:
    for p in params:
        np.clip(p.grad, -clip_value, clip_value, out=p.grad)
