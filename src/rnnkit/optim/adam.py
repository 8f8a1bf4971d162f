"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as torch.optim computes them.

    Adam:   g ← g + λ p            AdamW:  p ← p (1 − lr λ)          (the only difference)
    m ← β1 m + (1 − β1) g          v ← β2 v + (1 − β2) g²
    p ← p − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit import backend
from rnnkit.optim.base import Optimizer
from rnnkit.ranges import PROBABILITY_BELOW_1


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, beta1: float,
                beta2: float, eps: float, weight_decay: float, decoupled: bool, bias1: float, bias2: float) -> None:
    """The equations above in NumPy, in place on one parameter's arrays (the reference backend's
    update; :mod:`rnnkit.engine.optim` is the engine's). ``bias1``, ``bias2`` = 1 − β1ᵗ, 1 − β2ᵗ."""
    if decoupled:
        p *= 1 - lr * weight_decay
    elif weight_decay:
        g = g + weight_decay * p
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    denom = np.sqrt(v) / math.sqrt(bias2) + eps
    p -= (lr / bias1) * m / denom


class Adam(Optimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = (PROBABILITY_BELOW_1.check(f"betas[{i}]", b, ValueError) for i, b in enumerate(betas))
        self.eps = float(eps)

    def update(self, p, g, state) -> None:
        m, v = state["exp_avg"], state["exp_avg_sq"]
        bias1, bias2 = 1 - self.beta1 ** self.steps, 1 - self.beta2 ** self.steps
        backend.current().adam_update(p.data, g, m, v, self.lr, self.beta1, self.beta2, self.eps,
                                      self.weight_decay, self.decoupled, bias1, bias2)


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
