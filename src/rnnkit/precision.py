"""Mixed precision: the recurrent layers' matrix products in bfloat16, as ``torch.autocast("cpu")``.

Inside ``with rnnkit.autocast():`` the float32 layers (``RNN``, ``LSTM``, ``GRU`` and their cells
in a sequence call) run their products with bfloat16 operands and float32 sums, on the engine's
bfloat16 units (AMX's tiles, or AVX512_BF16's dot products; :mod:`rnnkit.engine.bf16`):

- forward: the input projection ``X W_ihᵀ`` and every step's recurrent product ``h_{t-1} W_hhᵀ``
  (X, h_{t-1} and the weights rounded to bfloat16 where they enter a product);
- backward: the parameter gradients ``DAᵀ [X | H]`` and ``dX = DA W_ih``; the backward
  recurrence ``da_t W_hh`` stays float32.

Everything else stays float32: the weights themselves (the "master weights" an optimizer
updates; only their packed copies are bfloat16), the gates, the cell's element-wise step, the
states and every returned array. So a model trains and infers with its usual code, the only
difference being the products' rounding: each operand carries 8 significant bits, so an output
moves by about 2⁻⁸ of the size of its terms (docs/engine.md §10, and what is promised:
tests/test_autocast.py).

What runs in float32 even inside the context: float64 layers (as in PyTorch, autocast touches
float32 work only), a layer-normalised cell's recurrences, Cho's GRU (``reset_after=False``)
recurrence and an LSTM's projection ``h_t = m_t W_hrᵀ``, and the streaming step (one step of
a cell; it is bound by reading the weights, not by their products). Where the CPU has no
bfloat16 unit, or the NumPy reference backend is in use, the layers run in float32 and
entering the context warns once (:class:`PrecisionWarning`).
"""

from __future__ import annotations

import contextvars
import warnings

from rnnkit.checks import check_choice

DTYPES = ("bfloat16",)          # the products' low precisions autocast offers

# A context variable, as no_grad's: each thread and async task has its own precision.
_PRODUCTS: contextvars.ContextVar[str | None] = contextvars.ContextVar("rnnkit_autocast", default=None)
_WARNED: set[str] = set()


class PrecisionWarning(RuntimeWarning):
    """autocast asked for a precision this machine or backend cannot give: float32 is used."""


def product_precision() -> str | None:
    """The products' precision in force ("bfloat16"), or None outside :class:`autocast`."""
    return _PRODUCTS.get()


def bfloat16_usable() -> bool:
    """Whether the backend in use can run products in bfloat16 here (the engine, on a CPU with a
    bfloat16 unit)."""
    from rnnkit.backend import current
    if current().name != "engine":
        return False
    from rnnkit.engine import bf16
    return bf16.available()


class autocast:  # noqa: N801 - named like torch.autocast, a context manager used as a function
    """``with rnnkit.autocast():`` — the float32 layers' products in bfloat16 with float32 sums.

    ``dtype``: the products' precision ("bfloat16", the one offered; ``torch.bfloat16``'s name).
    ``enabled=False`` makes the context do nothing (as in PyTorch), so one code path serves both.
    Contexts nest; leaving one restores what was in force.
    """

    __slots__ = ("dtype", "enabled", "_token")

    def __init__(self, dtype: str = "bfloat16", enabled: bool = True) -> None:
        self.dtype = check_choice("dtype", str(dtype).removeprefix("torch."), DTYPES)
        self.enabled = bool(enabled)

    def __enter__(self) -> autocast:
        precision = self.dtype if self.enabled else None
        if precision == "bfloat16" and not bfloat16_usable():
            _warn_once(precision)
            precision = None
        self._token = _PRODUCTS.set(precision)
        return self

    def __exit__(self, *exc) -> None:
        _PRODUCTS.reset(self._token)


def _warn_once(precision: str) -> None:
    from rnnkit.backend import current
    why = ("the NumPy reference backend is in use" if current().name != "engine" else
           "this CPU has neither AVX512_BF16 nor AMX (or NUMBA_CPU_FEATURES hides them)")
    if why not in _WARNED:
        _WARNED.add(why)
        warnings.warn(f"rnnkit.autocast({precision!r}): {why}, so the layers' products run in float32",
                      PrecisionWarning, stacklevel=3)
