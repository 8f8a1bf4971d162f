r"""The fully convolutional branch of the estimators' network (FCN: Wang, Yan & Oates 2017; the
convolutional half of Karim et al. 2018's LSTM-FCN):

    a₀ = x                                   (B, F, T)     the input, channels first
    aₗ = ReLU(BNₗ(Convₗ(aₗ₋₁)))              (B, Cₗ, T)    'same' padding, kernel kₗ, l = 1..n
    p_b = (1 / L_b) Σ_{t < L_b} aₙ[b, :, t]   (B, Cₙ)       global average pooling over valid steps

Padded steps (t ≥ L_b) are zeros in every aₗ, a₀ included: batch normalisation takes its statistics over the
valid steps only and writes 0 at the padded ones (ReLU keeps 0), so each convolution sees the
zero padding it would see at the end of a sequence standing alone, and a sequence's output does
not depend on how much padding its batch adds. Backward runs the blocks in reverse, each
module's own backward (``rnnkit.Conv1d``, ``rnnkit.BatchNorm1d``, ``rnnkit.ReLU``, and
``rnnkit.pooling.MeanPool`` for the average).
"""

from __future__ import annotations

import numpy as np

from rnnkit.activation import ReLU
from rnnkit.conv import Conv1d
from rnnkit.module import Module
from rnnkit.norm import BatchNorm1d
from rnnkit.pooling import MeanPool


class ConvBranch(Module):
    """Blocks Conv1d → BatchNorm1d → ReLU of ``filters[l]`` channels and kernel ``kernels[l]``,
    then the mean over valid steps; time-major input (T, B, F) like the recurrent layers'."""

    def __init__(self, in_channels: int, filters: tuple[int, ...], kernels: tuple[int, ...], *,
                 dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        if len(filters) != len(kernels) or not filters:
            raise ValueError(f"ConvBranch: filters and kernels must be non-empty and of one length, "
                             f"got {len(filters)} filters and {len(kernels)} kernels")
        self.blocks: list[tuple[Conv1d, BatchNorm1d, ReLU]] = []
        channels = in_channels
        for l, (c, k) in enumerate(zip(filters, kernels)):
            block = (Conv1d(channels, c, k, padding="same", dtype=dtype, rng=rng),
                     BatchNorm1d(c, dtype=dtype), ReLU(dtype=dtype))
            for part, module in zip(("conv", "bn", "relu"), block):
                self.register_module(f"{part}{l}", module)
            self.blocks.append(block)
            channels = c
        self.pool = self.register_module("pool", MeanPool(batch_first=True, dtype=dtype))
        self.out_features = channels

    def __call__(self, x, lengths=None) -> np.ndarray:
        return self.forward(x, lengths)

    def forward(self, x: np.ndarray, lengths=None) -> np.ndarray:
        """x (T, B, F) time-major, lengths (B,) or None → (B, Cₙ)."""
        a = np.ascontiguousarray(x.transpose(1, 2, 0))                 # (B, F, T)
        if lengths is not None:                                        # whatever the padding held
            padded = np.arange(a.shape[2])[None, :] >= np.asarray(lengths)[:, None]     # (B, T)
            a *= ~padded[:, None, :]
        for conv, bn, relu in self.blocks:
            a = relu(bn(conv(a), lengths=lengths))                     # (B, Cₗ, T), 0 at padding
        return self.pool(a.transpose(0, 2, 1), lengths)                # (B, Cₙ)

    def backward(self, dp: np.ndarray) -> np.ndarray:
        """Parameter gradients of the last forward call; returns dx (T, B, F)."""
        da = np.ascontiguousarray(self.pool.backward(dp).transpose(0, 2, 1))   # (B, Cₙ, T)
        for conv, bn, relu in reversed(self.blocks):
            da = conv.backward(bn.backward(relu.backward(da)))
        return da.transpose(2, 0, 1)                                   # (T, B, F)
