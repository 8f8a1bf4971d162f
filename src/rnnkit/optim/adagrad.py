"""Adagrad (Duchi et al. 2011), as torch.optim.Adagrad computes it.

    g ← g + λ p,    S ← S + g²,    p ← p − lr / (1 + (t − 1) δ) · g / (√S + ε)
"""

from __future__ import annotations

import numpy as np

from rnnkit.optim.base import Optimizer


class Adagrad(Optimizer):
    state_names = ("sum",)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(params, lr, weight_decay)
        self.lr_decay, self.eps = float(lr_decay), float(eps)

    def update(self, p, g, state) -> None:
        g = self.decayed(p, g)
        s = state["sum"]
        s += g * g
        clr = self.lr / (1 + (self.steps - 1) * self.lr_decay)
        p.data -= clr * g / (np.sqrt(s) + self.eps)
