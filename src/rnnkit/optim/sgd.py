"""Stochastic gradient descent with momentum and Nesterov momentum (torch.optim.SGD's rule).

    g ← g + λ p                         (weight decay)
    b ← μ b + (1 − τ) g                 (b = g on the first step)
    g ← g + μ b  (Nesterov)   or   g ← b
    p ← p − lr · g
"""

from __future__ import annotations

from rnnkit.optim.base import Optimizer


class SGD(Optimizer):
    state_names = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        super().__init__(params, lr, weight_decay)
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)

    def update(self, p, g, state) -> None:
        g = self.decayed(p, g)
        if self.momentum:
            b = state["momentum_buffer"]
            if self.steps == 1:
                b[...] = g
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p.data -= self.lr * g
