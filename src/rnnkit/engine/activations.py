"""The gate functions of the compiled kernels: σ and tanh, fast in float32, exact in float64.

float32: tanh(x) ≈ x·P(x²) / Q(x²) on |x| ≤ 7.9711924 (where tanh is within 2⁻²² of 1) and the
value there beyond it; P of degree 6 and Q of degree 3, fitted by ``scripts/fit_tanh.py``. Its
largest error over the float32 range is 3.1e-7 absolute and relative — about 2.6 units in the last
place near ±1 — and it has no branches, so loops over a panel of units compile to vector
instructions (libm's scalar tanh would cost ~40× more). σ(x) = ½ + ½·tanh(x/2) inherits an absolute
error of at most 1.6e-7; far in the negative tail (x < −16) it returns ~1e-7 instead of a smaller
positive number: absolute, not relative, accuracy is what a gate needs.

float64: libm's ``tanh`` and σ(x) = 1 / (1 + exp(−x)), exact to rounding (lane by lane on a
vector), so that float64 results match PyTorch's to 1e-12 as the reference kernels do.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from rnnkit.engine.jit import jit
from rnnkit.engine.vector import VecType, fma, lane, with_lane

CLAMP = np.float32(7.9711924)
P1, P2, P3 = np.float32(0.13126713037490845), np.float32(0.003152021672576666), np.float32(1.1670968888211064e-05)
P4, P5, P6 = np.float32(-2.2437328439650628e-08), np.float32(6.430384696942681e-11), np.float32(-1.17529019827943e-13)
Q1, Q2, Q3 = np.float32(0.46460044384002686), np.float32(0.024685531854629517), np.float32(0.0002616880810819566)
ONE, HALF = np.float32(1.0), np.float32(0.5)


def tanh(x):
    """tanh(x) inside compiled code (see the module docstring for its accuracy)."""
    return math.tanh(x)


def sigmoid(x):
    """σ(x) = 1 / (1 + exp(−x)) inside compiled code."""
    return 1.0 / (1.0 + math.exp(-x))


def _float32(x) -> bool:
    """A float32 scalar or a vector of float32 lanes (:mod:`rnnkit.engine.vector`)."""
    return x == types.float32 or (isinstance(x, VecType) and x.dtype == types.float32)


def _lanewise(scalar_fn, width: int):
    """A float64 vector function applied lane by lane through the exact scalar one."""
    def impl(x):
        out = x
        for k in range(width):
            out = with_lane(out, k, scalar_fn(lane(x, k)))
        return out
    return impl


@jit(inline=True)
def _tanh64(x):
    return math.tanh(x)


@jit(inline=True)
def _sigmoid64(x):
    return 1.0 / (1.0 + math.exp(-x))


@overload(tanh)
def _tanh(x):
    if _float32(x):
        def tanh_f32(x):
            x = min(max(x, -CLAMP), CLAMP)               # as Python's min/max: a NaN stays NaN
            u = x * x                                    # Horner's rule, one rounding per step
            p = fma(fma(fma(fma(fma(fma(P6, u, P5), u, P4), u, P3), u, P2), u, P1), u, ONE) * x
            q = fma(fma(fma(Q3, u, Q2), u, Q1), u, ONE)
            return p / q
        return tanh_f32
    if isinstance(x, VecType):
        return _lanewise(_tanh64, x.width)
    return lambda x: math.tanh(x)


@overload(sigmoid)
def _sigmoid(x):
    if _float32(x):
        return lambda x: fma(HALF, tanh(HALF * x), HALF)
    if isinstance(x, VecType):
        return _lanewise(_sigmoid64, x.width)
    return lambda x: 1.0 / (1.0 + math.exp(-x))
