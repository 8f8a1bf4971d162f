"""What every compiled loop shares: the decorator and the scalar gate functions."""

from __future__ import annotations

import math

import numba

# Sums may be reassociated (so dot products vectorise) and a·b + c fused; inf and NaN keep their
# IEEE meaning, which σ(a) = 1 / (1 + exp(−a)) relies on for large |a|.
FASTMATH = {"reassoc", "contract", "nsz"}


def jit(fn):
    """Compile in nopython mode, cached on disk beside the source (compiled once per install)."""
    return numba.njit(cache=True, fastmath=FASTMATH, nogil=True)(fn)


@jit
def sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


@jit
def tanh(a):
    """tanh through expm1 of −2|a|: exact near 0 and never overflows (libm's tanh is ~5x slower)."""
    e = math.expm1(-2.0 * abs(a))
    t = -e / (2.0 + e)
    return t if a >= 0 else -t


@jit
def matvec_add(out, v, w_t, col0, ncols):
    """out[j] += Σ_k v[k] · w_t[k, col0 + j] for j < ncols: a row times a transposed weight block."""
    for k in range(v.shape[0]):
        vk = v[k]
        row = w_t[k]
        for j in range(ncols):
            out[j] += vk * row[col0 + j]
