"""Buffers aligned to cache lines, so that vector loads of packed panels never straddle two lines."""

from __future__ import annotations

import numpy as np

ALIGN = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.empty(count * dtype.itemsize + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype) -> np.ndarray:
    a = aligned_empty(shape, dtype)
    a.fill(0)
    return a
