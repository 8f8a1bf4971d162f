"""Affine map ``y = x Wᵀ + b`` over the last axis; backward ``dx = dy W``, ``dW = dyᵀ x``, ``db = Σ dy``."""

from __future__ import annotations

import math

import numpy as np

from rnnkit.checks import as_float_array, make_rng
from rnnkit.engine import matmul
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.module import Module
from rnnkit.ranges import COUNT


class Linear(Module):
    """PyTorch's ``nn.Linear``: weight (out, in) and bias (out,) start U(−1/√in, 1/√in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.in_features = COUNT.check("in_features", in_features)
        self.out_features = COUNT.check("out_features", out_features)
        rng, k = make_rng(rng), 1.0 / math.sqrt(in_features)
        self.weight = self.register_parameter("weight", rng.uniform(-k, k, (out_features, in_features)))
        self.bias = self.register_parameter("bias", rng.uniform(-k, k, out_features)) if bias else None
        self._x: np.ndarray | None = None

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x) -> np.ndarray:
        x = as_float_array("x", x, self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: x must have in_features={self.in_features} on its last axis, "
                             f"got shape {x.shape}")
        self._x = x if is_grad_enabled() else None
        # One (N, in) x (in, out) product: NumPy runs a 3-D @ 2-D matmul as a loop of small ones.
        y = matmul(np.ascontiguousarray(x).reshape(-1, self.in_features), self.weight.data, trans_b=True)
        if self.bias is not None:
            y += self.bias.data
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("Linear.backward: no forward call with gradients enabled")
        d2 = np.ascontiguousarray(dout).reshape(-1, self.out_features)   # (N, out)
        matmul(d2, np.ascontiguousarray(self._x).reshape(-1, self.in_features), trans_a=True,
               out=self.weight.grad, accumulate=True)
        if self.bias is not None:
            self.bias.grad += d2.sum(axis=0)
        return matmul(d2, self.weight.data).reshape(dout.shape[:-1] + (self.in_features,))
