r"""Batch normalisation (Ioffe & Szegedy 2015), PyTorch's ``nn.BatchNorm1d``, with optional lengths.

Per channel c, over the batch (and the length) — S_c = every (n, t), or with lengths only the valid
positions t < lengths[n], M = |S_c|:

    training, or track_running_stats=False:   μ, σ² = the batch's mean and biased variance over S_c
    eval with running statistics:             μ, σ² = running_mean, running_var
    x̂ = (x − μ) / √(σ² + ε)        y = γ ⊙ x̂ + β        (γ = weight, β = bias; 1 and 0 when absent)
    with lengths: y[n, :, t] = 0 for t ≥ lengths[n]

In training with track_running_stats, after the forward (f = momentum, or 1 / num_batches_tracked
when momentum is None: the cumulative average):

    num_batches_tracked += 1
    running_mean = (1 − f) · running_mean + f · μ
    running_var  = (1 − f) · running_var  + f · σ² · M / (M − 1)     (the unbiased variance)

Backward, from dy: dβ = Σ_S dy, dγ = Σ_S dy ⊙ x̂, dx̂ = γ ⊙ dy, and dx from dx̂ through the batch
statistics or the fixed ones (:mod:`rnnkit.norm.moments`); dx = 0 at padded positions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit.checks import as_float_array, check_lengths
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.module import Module
from rnnkit.norm.moments import check_eps, inverse_std, moments, standardize_backward
from rnnkit.ranges import COUNT, Range

AXES = (0, 2)                   # the batch and length axes of (N, C, L): statistics per channel
MOMENTUM = Range(float, low=0, high=1, also=(None,))   # the running statistics' update weight;
                                                       # None: their cumulative average, as in PyTorch


class BatchNormCache(NamedTuple):
    xhat: np.ndarray            # (N, C, L)
    inv_std: np.ndarray         # (1, C, 1)
    mask: np.ndarray | None     # (N, 1, L) True at valid positions, or None: all valid
    count: int                  # M
    batch_stats: bool           # whether μ, σ² were the batch's (backward goes through them)


def valid_positions(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(N, 1, L) booleans: True where t < lengths[n]."""
    return (np.arange(steps)[None, :] < lengths[:, None])[:, None, :]


def batch_norm_forward(x: np.ndarray, weight, bias, mean, var, eps: float, mask: np.ndarray | None):
    """(y (N, C, L), cache, batch statistics); ``mean``/``var`` (C,) fixed statistics, or None to
    take the batch's — returned then as (μ (C,), σ² (C,), M) for the running statistics."""
    batch_stats = mean is None
    count = None
    if batch_stats:
        mean, var, count = moments(x, AXES, mask)
    else:
        mean, var = mean[None, :, None], var[None, :, None]
    inv_std = inverse_std(var, eps)
    xhat = (x - mean) * inv_std
    if mask is not None:
        xhat = np.where(mask, xhat, xhat.dtype.type(0))      # whatever the padding held (even NaN)
    y = xhat if weight is None else xhat * weight[None, :, None]
    y = y if bias is None else y + bias[None, :, None]
    if mask is not None:
        y = np.where(mask, y, y.dtype.type(0))
    stats = (mean.ravel(), var.ravel(), count) if batch_stats else None
    return y, BatchNormCache(xhat, inv_std, mask, count or 0, batch_stats), stats


def batch_norm_backward(dy: np.ndarray, weight, cache: BatchNormCache):
    """(dx, dγ or None, dβ) from dy (N, C, L) — dβ is summed whether or not there is a bias."""
    xhat, inv_std, mask, count, batch_stats = cache
    dy = dy if mask is None else np.where(mask, dy, dy.dtype.type(0))    # padded outputs are constants
    dweight = None if weight is None else (dy * xhat).sum(axis=AXES)
    dxhat = dy if weight is None else dy * weight[None, :, None]
    if batch_stats:
        dx = standardize_backward(dxhat, xhat, inv_std, AXES, mask, count)
    else:
        dx = dxhat * inv_std                                   # zero where dy was zeroed
    return dx, dweight, dy.sum(axis=AXES)


class BatchNorm1d(Module):
    """PyTorch's ``nn.BatchNorm1d``: input (N, C) or (N, C, L), statistics per channel.

    Parameters ``weight`` (ones) and ``bias`` (zeros; none with PyTorch 2.13's ``bias=False``) when
    ``affine``; buffers ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked``
    (int64, shape ()) when ``track_running_stats`` — in the state dict, in PyTorch's order.

    Beyond PyTorch: ``forward(x, lengths=None)`` with x (N, C, L) and lengths (N,) integers in
    [1, L] takes the statistics over the valid positions t < lengths[n] only and sets the output
    at the padded ones to 0 (so a following zero-padded convolution sees zeros there, as it would
    past the end of a shorter sequence); padded entries of x are never read (NaN is fine). The result equals PyTorch's module applied to the valid
    positions gathered into (M, C) — running statistics included. With lengths=None it is
    PyTorch's module. A sequence (T, B, F) normalised per feature over T·B is ``x.reshape(T·B, F)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True, dtype=np.float32) -> None:
        super().__init__(dtype=dtype)
        self.num_features = COUNT.check("num_features", num_features)
        self.eps = check_eps(eps)
        self.momentum = MOMENTUM.check("momentum", momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        C = num_features
        self.weight = self.register_parameter("weight", np.ones(C)) if affine else None
        self.bias = self.register_parameter("bias", np.zeros(C)) if affine and bias else None
        self.running_mean = self.running_var = self.num_batches_tracked = None
        if track_running_stats:
            self.running_mean = self.register_buffer("running_mean", np.zeros(C, self.dtype))
            self.running_var = self.register_buffer("running_var", np.ones(C, self.dtype))
            self.num_batches_tracked = self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        self._cache: BatchNormCache | None = None
        self._ndim = 3

    def __call__(self, x, lengths=None):
        return self.forward(x, lengths)

    def __repr__(self) -> str:
        return (f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats})")

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x, lengths=None) -> np.ndarray:
        """x (N, C) or (N, C, L), lengths (N,) or None (3-D input only) → y shaped like x."""
        x = as_float_array("x", x, self.dtype)
        x3, mask = self._check_input(x, lengths)
        batch_stats = self.training or not self.track_running_stats
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        if batch_stats:
            count = x3.shape[0] * x3.shape[2] if mask is None else int(mask.sum())
            if count < 2:
                raise ValueError(f"BatchNorm1d: expected more than 1 value per channel when using batch "
                                 f"statistics (training), got x of shape {x.shape} with {count} valid")
        fixed = (None, None) if batch_stats else (self.running_mean, self.running_var)
        y, cache, stats = batch_norm_forward(x3, w, b, *fixed, self.eps, mask)
        if self.training and self.track_running_stats:
            self._update_running_stats(*stats)
        self._cache, self._ndim = (cache if is_grad_enabled() else None), x.ndim
        return y if x.ndim == 3 else y[:, :, 0]

    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        self.num_batches_tracked += 1
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean[...] = (1 - f) * self.running_mean + f * mean
        self.running_var[...] = (1 - f) * self.running_var + f * var * (count / (count - 1))

    def backward(self, dout) -> np.ndarray:
        """dx shaped like the last input; adds into ``weight.grad`` and ``bias.grad`` (those it has)."""
        if self._cache is None:
            raise RuntimeError("BatchNorm1d.backward: no forward call with gradients enabled")
        shape = self._cache.xhat.shape if self._ndim == 3 else self._cache.xhat.shape[:2]
        dy = as_float_array("dout", dout, self.dtype)
        if dy.shape != shape:
            raise ValueError(f"BatchNorm1d.backward: dout must have shape {shape} (the forward output), got {dy.shape}")
        dx, dw, db = batch_norm_backward(dy.reshape(self._cache.xhat.shape),
                                         None if self.weight is None else self.weight.data, self._cache)
        if self.weight is not None:
            self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx.reshape(shape)

    def _check_input(self, x: np.ndarray, lengths):
        """(x as (N, C, L), the valid-position mask (N, 1, L) or None)."""
        C = self.num_features
        if x.ndim not in (2, 3) or x.shape[1] != C:
            raise ValueError(f"BatchNorm1d: x must have shape (N, num_features={C}) or (N, {C}, L), got {x.shape}")
        if lengths is not None and x.ndim != 3:
            raise ValueError(f"BatchNorm1d: lengths needs x of shape (N, {C}, L) (positions to mask), got {x.shape}")
        x3 = x if x.ndim == 3 else x[:, :, None]
        lengths = check_lengths(lengths, x3.shape[0], x3.shape[2])
        if lengths is None or lengths.min() == x3.shape[2]:      # no padding: nothing to mask
            return x3, None
        return x3, valid_positions(lengths, x3.shape[2])
