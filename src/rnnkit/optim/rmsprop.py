"""RMSprop (Tieleman & Hinton 2012), as torch.optim.RMSprop computes it.

    g ← g + λ p
    s ← α s + (1 − α) g²
    centered:  a ← α a + (1 − α) g,   r = √(s − a²) + ε        otherwise r = √s + ε
    momentum:  b ← μ b + g / r,  p ← p − lr · b                otherwise p ← p − lr · g / r
"""

from __future__ import annotations

import numpy as np

from rnnkit.optim.base import Optimizer


class RMSprop(Optimizer):
    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, lr, weight_decay)
        self.alpha, self.eps, self.momentum, self.centered = float(alpha), float(eps), float(momentum), bool(centered)

    def update(self, p, g, state) -> None:
        g = self.decayed(p, g)
        s = state["square_avg"]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        if self.centered:
            a = state["grad_avg"]
            a *= self.alpha
            a += (1 - self.alpha) * g
            r = np.sqrt(s - a * a) + self.eps
        else:
            r = np.sqrt(s) + self.eps
        if self.momentum:
            b = state["momentum_buffer"]
            b *= self.momentum
            b += g / r
            p.data -= self.lr * b
        else:
            p.data -= self.lr * g / r
