"""The decorator every compiled function of the engine uses."""

from __future__ import annotations

import numba

# Sums may be reassociated (so loops vectorise) and a·b + c fused into one instruction; inf and
# NaN keep their IEEE meaning, which the gate functions rely on for large |a|.
FASTMATH = frozenset({"reassoc", "contract", "nsz"})


def jit(fn=None, *, inline: bool = False, refcount: bool = True):
    """Compile in nopython mode without the GIL, cached on disk beside the source.

    ``inline=True`` pastes the function into its callers (Numba's IR inlining) instead of calling
    it: for the per-unit steps of the cells, which take a whole job record — passing one costs
    more than the arithmetic — and whose array accesses the caller can then simplify.
    """
    def wrap(f):
        return numba.njit(cache=not inline, fastmath=set(FASTMATH), nogil=True, error_model="numpy",
                          boundscheck=False, inline="always" if inline else "never", _nrt=refcount)(f)
    return wrap if fn is None else wrap(fn)
