r"""Layer normalisation (Ba, Kiros & Hinton 2016), PyTorch's ``nn.LayerNorm``.

Over the trailing axes D = normalized_shape of x (..., *D), for each leading index separately:

    μ, σ² = mean and biased variance over D        x̂ = (x − μ) / √(σ² + ε)
    y = γ ⊙ x̂ + β                                  (γ = weight, β = bias, both of shape D)

Backward, from dy: dβ = Σ_lead dy, dγ = Σ_lead dy ⊙ x̂, dx̂ = γ ⊙ dy and
dx = r (dx̂ − mean_D dx̂ − x̂ mean_D(dx̂ ⊙ x̂)) (:mod:`rnnkit.norm.moments`).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from rnnkit.checks import as_float_array
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.module import Module
from rnnkit.norm.moments import check_eps, inverse_std, moments, standardize_backward
from rnnkit.ranges import COUNT


class LayerNormCache(NamedTuple):
    xhat: np.ndarray            # like x
    inv_std: np.ndarray         # (..., 1, …, 1): one per leading index


def layer_norm_forward(x: np.ndarray, weight, bias, eps: float, axes: tuple[int, ...]):
    mean, var, _ = moments(x, axes)
    inv_std = inverse_std(var, eps)
    xhat = (x - mean) * inv_std
    y = xhat if weight is None else xhat * weight
    return (y if bias is None else y + bias), LayerNormCache(xhat, inv_std)


def layer_norm_backward(dy: np.ndarray, weight, cache: LayerNormCache, axes: tuple[int, ...]):
    """(dx, dγ or None, dβ) — dβ is summed whether or not the layer has a bias."""
    lead = tuple(range(dy.ndim - len(axes)))
    dweight = None if weight is None else (dy * cache.xhat).sum(axis=lead)
    dxhat = dy if weight is None else dy * weight
    count = int(np.prod([dy.shape[a] for a in axes]))
    return standardize_backward(dxhat, cache.xhat, cache.inv_std, axes, None, count), dweight, dy.sum(axis=lead)


def _shape(normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
        raise TypeError(f"normalized_shape must be an int or a non-empty sequence of ints, got {normalized_shape!r}")
    return tuple(COUNT.check("normalized_shape", n) for n in normalized_shape)


class LayerNorm(Module):
    """PyTorch's ``nn.LayerNorm``: normalises x (..., *normalized_shape) over its trailing axes.

    With ``elementwise_affine``: ``weight`` (ones) and, with ``bias``, ``bias`` (zeros), both of
    shape ``normalized_shape`` (stored as a tuple, as PyTorch does).
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 *, dtype=np.float32) -> None:
        super().__init__(dtype=dtype)
        self.normalized_shape = _shape(normalized_shape)
        self.eps = check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        affine = self.elementwise_affine
        self.weight = self.register_parameter("weight", np.ones(self.normalized_shape)) if affine else None
        self.bias = self.register_parameter("bias", np.zeros(self.normalized_shape)) if affine and bias else None
        self._cache: LayerNormCache | None = None

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None})")

    @property
    def axes(self) -> tuple[int, ...]:
        """The normalised axes, counted from the end."""
        return tuple(range(-len(self.normalized_shape), 0))

    def forward(self, x) -> np.ndarray:
        x = as_float_array("x", x, self.dtype)
        D = self.normalized_shape
        if x.ndim < len(D) or x.shape[x.ndim - len(D):] != D:
            raise ValueError(f"LayerNorm: x must have shape (..., {', '.join(map(str, D))}) (trailing axes = "
                             f"normalized_shape {D}), got {x.shape}")
        y, cache = layer_norm_forward(x, None if self.weight is None else self.weight.data,
                                      None if self.bias is None else self.bias.data, self.eps, self.axes)
        self._cache = cache if is_grad_enabled() else None
        return y

    def backward(self, dout) -> np.ndarray:
        """dx shaped like the last input; adds into ``weight.grad`` and ``bias.grad``."""
        if self._cache is None:
            raise RuntimeError("LayerNorm.backward: no forward call with gradients enabled")
        dy = as_float_array("dout", dout, self.dtype)
        if dy.shape != self._cache.xhat.shape:
            raise ValueError(f"LayerNorm.backward: dout must have shape {self._cache.xhat.shape} (the forward "
                             f"output), got {dy.shape}")
        dx, dw, db = layer_norm_backward(dy, None if self.weight is None else self.weight.data, self._cache,
                                         self.axes)
        if self.weight is not None:
            self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx
