"""Low precision: the recurrent layers' matrix products in bfloat16 (:class:`autocast`, as
``torch.autocast("cpu")``) or in int8 for inference (:func:`quantize_dynamic`, as
``torch.ao.quantization.quantize_dynamic``).

Inside ``with rnnkit.autocast():`` the float32 layers (``RNN``, ``LSTM``, ``GRU`` and their cells
in a sequence call) run their products with bfloat16 operands and float32 sums, on the engine's
bfloat16 units (AMX's tiles, or AVX512_BF16's dot products; :mod:`rnnkit.engine.bf16`):

- forward: the input projection ``X W_ihᵀ`` and every step's recurrent product ``h_{t-1} W_hhᵀ``
  (X, h_{t-1} and the weights rounded to bfloat16 where they enter a product);
- backward: every tick's product ``da_t W_hh``, the parameter gradients ``DAᵀ [X | H]`` and
  ``dX = DA W_ih`` (da_t rounded where a tick writes it).

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

``quantize_dynamic(model)`` returns a copy of ``model`` whose float32 RNN/LSTM/GRU layers run
inference with dynamically quantised int8 products (rnnkit.engine.quantize: weights per output
column, x_t per row at every call, h_{t-1} with one fixed step per sequence; the sums exact in
int32), on VNNI (docs/engine.md §13). Such a layer keeps no tape: it has no backward. The cells
whose state has no bound (the ReLU RNN, an LSTM with a projection, Cho's GRU) quantise only
their input projection; the layer-normalised cells and one-step calls run in float32, as on a CPU
without VNNI (which warns once).
"""

from __future__ import annotations

import contextvars
import warnings

from rnnkit.checks import check_choice

DTYPES = ("bfloat16",)          # the products' low precisions autocast offers
QUANTIZED = ("qint8",)          # quantize_dynamic's (PyTorch's name for int8 weights)

# A context variable, as no_grad's: each thread and async task has its own precision.
_PRODUCTS: contextvars.ContextVar[str | None] = contextvars.ContextVar("rnnkit_autocast", default=None)
_WARNED: set[tuple[str, str]] = set()


class PrecisionWarning(RuntimeWarning):
    """autocast asked for a precision this machine or backend cannot give: float32 is used."""


def product_precision() -> str | None:
    """The products' precision in force ("bfloat16"), or None outside :class:`autocast`."""
    return _PRODUCTS.get()


def _engine_has(unit: str) -> bool:
    """Whether the backend in use is the engine and its ``unit`` module ("bf16", "int8") runs here."""
    from rnnkit.backend import current
    if current().name != "engine":
        return False
    import importlib
    return importlib.import_module(f"rnnkit.engine.{unit}").available()


def int8_usable() -> bool:
    """Whether the backend in use can run int8 products here (the engine, on a CPU with VNNI)."""
    return _engine_has("int8")


def bfloat16_usable() -> bool:
    """Whether the backend in use can run products in bfloat16 here (the engine, on a CPU with a
    bfloat16 unit)."""
    return _engine_has("bf16")


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


class quantized:  # noqa: N801 - a context manager, as autocast
    """The int8 products of a layer of :func:`quantize_dynamic` for the duration of its call."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        usable = int8_usable()
        if not usable:
            _warn_once("int8")
        self._token = _PRODUCTS.set("int8" if usable else None)

    def __exit__(self, *exc) -> None:
        _PRODUCTS.reset(self._token)


def quantize_dynamic(model, qconfig_spec=None, dtype: str = "qint8", *, inplace: bool = False):
    """``model`` (any :class:`rnnkit.Module`) with its RNN/LSTM/GRU layers quantised for inference.

    As ``torch.ao.quantization.quantize_dynamic``: ``qconfig_spec`` the layer classes to quantise
    (a set of ``rnnkit.RNN/LSTM/GRU``; None: all three), ``dtype`` "qint8" (``torch.qint8``), a
    copy unless ``inplace``. The weights stay float32 in the module (state_dict, export and
    loading are unchanged); their int8 form is made at the first call and kept while they are
    unchanged. Returns the quantised model."""
    import copy

    from rnnkit.recurrent import RecurrentBase
    check_choice("dtype", str(dtype).removeprefix("torch."), QUANTIZED)
    kinds = tuple(qconfig_spec) if qconfig_spec is not None else (RecurrentBase,)
    model = model if inplace else copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, RecurrentBase) and isinstance(module, kinds) and module.dtype == "float32":
            module.quantized = "int8"
    return model


def _warn_once(precision: str) -> None:
    from rnnkit.backend import current
    needs = "neither AVX512_BF16 nor AMX" if precision == "bfloat16" else "no VNNI (AVX512_VNNI or AVX-VNNI)"
    why = ("the NumPy reference backend is in use" if current().name != "engine" else
           f"this CPU has {needs} (or NUMBA_CPU_FEATURES hides them)")
    if (precision, why) not in _WARNED:
        _WARNED.add((precision, why))
        warnings.warn(f"rnnkit {precision} products: {why}, so the layers' products run in float32",
                      PrecisionWarning, stacklevel=3)
