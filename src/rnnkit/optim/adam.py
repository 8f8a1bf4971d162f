"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as torch.optim computes them.

    Adam:   g ← g + λ p            AdamW:  p ← p (1 − lr λ)          (the only difference)
    m ← β1 m + (1 − β1) g          v ← β2 v + (1 − β2) g²
    p ← p − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit import engine
from rnnkit.optim.base import Optimizer


class Adam(Optimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = (float(b) for b in betas)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.eps = float(eps)

    def update(self, p, g, state) -> None:
        m, v = state["exp_avg"], state["exp_avg_sq"]
        bias1, bias2 = 1 - self.beta1 ** self.steps, 1 - self.beta2 ** self.steps
        if engine.enabled() and p.data.flags.c_contiguous and g.flags.c_contiguous:
            from rnnkit.engine.optim import adam_update          # the same equations in one pass
            adam_update(p.data.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), self.lr, self.beta1,
                        self.beta2, self.eps, self.weight_decay, self.decoupled, bias1, bias2)
            return
        if self.decoupled:
            p.data *= 1 - self.lr * self.weight_decay
        else:
            g = self.decayed(p, g)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        denom = np.sqrt(v) / math.sqrt(bias2) + self.eps
        p.data -= (self.lr / bias1) * m / denom


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
