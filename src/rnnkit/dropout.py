"""Inverted dropout: in training mode ``y = x ⊙ m / (1 − p)`` with ``m ~ Bernoulli(1 − p)``."""

from __future__ import annotations

import numpy as np

from rnnkit.checks import make_rng
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.module import Module
from rnnkit.ranges import PROBABILITY_BELOW_1


class Dropout(Module):
    """Identity in eval mode or with p = 0; the backward pass reuses the forward call's mask."""

    def __init__(self, p: float = 0.5, *, dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.p = PROBABILITY_BELOW_1.check("p", p)
        self.rng = make_rng(rng)
        self._mask: np.ndarray | None = None     # scaled keep-mask of the last call; None: identity

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0:
            self._mask = None
            return x
        mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype) / x.dtype.type(1 - self.p)
        self._mask = mask if is_grad_enabled() else None
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._mask is None else dout * self._mask

    def use_rng(self, rng) -> None:
        """Draw the masks from ``rng`` from now on (anything with ``random(shape)``)."""
        self.rng = rng
