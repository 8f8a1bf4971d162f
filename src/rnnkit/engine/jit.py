"""The decorator every compiled function of the engine uses."""

from __future__ import annotations

import numba

from rnnkit.engine import cache

cache.install()          # every engine module imports this one before it decorates a function

# No fast-math flags: every +, − and × is rounded as written, and a fused multiply-add happens only
# where the code asks for one (``vector.fma``, the micro-kernel's ``llvm.fma``). Flags that let LLVM
# reassociate sums or contract a·b + c make the result depend on the context a function is
# optimised in, and Numba runs two differently optimised copies of the same function: a caller's
# module links in its own copy of every callee, while a callee compiled in this process is called
# through its own library instead. Measured with "reassoc, contract, nsz": the LSTM's streaming step
# gave results 2.4e-7 apart on a cold and on a warm compile cache (docs/engine.md, section 9).
FASTMATH = False


def jit(fn=None, *, inline: bool = False, refcount: bool = True):
    """Compile in nopython mode without the GIL, cached on disk beside the source (under a stamp of
    the whole engine's source, :mod:`rnnkit.engine.cache`).

    ``inline=True`` pastes the function into its callers (Numba's IR inlining) instead of calling
    it: for the per-unit steps of the cells, which take a whole job record — passing one costs
    more than the arithmetic — and whose array accesses the caller can then simplify.
    """
    def wrap(f):
        return numba.njit(cache=not inline, fastmath=FASTMATH, nogil=True, error_model="numpy",
                          boundscheck=False, inline="always" if inline else "never", _nrt=refcount)(f)
    return wrap if fn is None else wrap(fn)
