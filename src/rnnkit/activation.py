"""Rectified linear unit, PyTorch's ``nn.ReLU``: ``y = max(x, 0)``, backward ``dx = dy ⊙ [x > 0]``.

The derivative at exactly 0 is taken as 0, as PyTorch does.
"""

from __future__ import annotations

import numpy as np

from rnnkit.grad_mode import is_grad_enabled
from rnnkit.checks import as_float_array
from rnnkit.module import Module


class ReLU(Module):
    """Element-wise max(x, 0) on any shape. ``inplace=True`` writes the result into x itself when x
    already is a C-contiguous array of the module's dtype (otherwise x is converted, as every layer
    converts its input, and the copy is overwritten)."""

    def __init__(self, inplace: bool = False, *, dtype=np.float32) -> None:
        super().__init__(dtype=dtype)
        self.inplace = bool(inplace)
        self._positive: np.ndarray | None = None      # [x > 0] of the last call

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        return "ReLU(inplace=True)" if self.inplace else "ReLU()"

    def forward(self, x) -> np.ndarray:
        x = as_float_array("x", x, self.dtype)
        positive = x > 0
        self._positive = positive if is_grad_enabled() else None
        return np.maximum(x, 0, out=x if self.inplace else None)

    def backward(self, dout) -> np.ndarray:
        if self._positive is None:
            raise RuntimeError("ReLU.backward: no forward call with gradients enabled")
        dy = as_float_array("dout", dout, self.dtype)
        if dy.shape != self._positive.shape:
            raise ValueError(f"ReLU.backward: dout must have shape {self._positive.shape} (the forward output), "
                             f"got {dy.shape}")
        return dy * self._positive
