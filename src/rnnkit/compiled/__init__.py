"""Compiled time loops (Numba) for layers small enough that Python's per-step cost dominates.

A recurrent layer's step is a small matrix product plus a few gate functions. When the product is
small (a batch of a few sequences, a few dozen units), calling BLAS and a dozen NumPy functions per
step costs far more than the arithmetic. These loops run the whole sequence, forward or backward,
in one compiled call, writing exactly the tape the NumPy kernels write (gate activations, states,
the kernel's aux arrays, ``da`` and ``dnew``), so that everything after the loop — the weight
gradients as single matrix products — is shared. Each loop transcribes its kernel's equations
(``rnnkit.kernels.lstm`` / ``gru`` / ``rnn``) with the same symbols.

Numba is imported on first use. Set ``RNNKIT_JIT=0`` to use only the NumPy loops; without Numba
installed that is what happens.
"""

from __future__ import annotations

import functools
import os

# Above this many multiply-adds per step (B · G·H · H_out) BLAS's blocked product beats the plain
# compiled loop even with Python's overhead around it. Measured here (LSTM, T=50, training), NumPy
# time / compiled time: B=8, H=64 (2^17) 1.4-1.6; B=16, H=64 (2^18) 1.1; B=32, H=64 (2^19) 0.64.
MAX_STEP_MACS = 1 << 18


@functools.cache
def enabled() -> bool:
    """True if the compiled loops may be used: Numba importable and ``RNNKIT_JIT`` not "0" (read once)."""
    if os.environ.get("RNNKIT_JIT", "1") == "0":
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def worth_it(steps: int, batch: int, gates_width: int, h_out: int) -> bool:
    """Whether a sequence of this size runs faster in the compiled loop than through BLAS.

    A single step (a cell call while streaming) stays in NumPy: the loop needs a contiguous copy
    of weight_hhᵀ, which only pays off over several steps.
    """
    return steps > 1 and batch * gates_width * h_out <= MAX_STEP_MACS and enabled()
