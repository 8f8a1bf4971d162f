"""The two implementations of what rnnkit computes, behind one interface, and the one place that
chooses between them.

A :class:`Backend` does the work of the layers, cells, products and optimizers:

- ``layer_forward`` / ``layer_backward``: the directions of one layer over whole sequences, with
  the :class:`~rnnkit.kernels.base.Tape` between them (the contract :mod:`rnnkit.stack` drives);
- ``stepper``: one step of a cell that keeps no tape (streaming inference and generation);
- ``matmul``: ``op(a) · op(b)``, the products of every other layer (:func:`rnnkit.engine.matmul`);
- ``adam_update``: Adam's and AdamW's step on one parameter (:mod:`rnnkit.optim.adam`);
- ``num_threads`` / ``set_num_threads``: the threads it computes on.

``numpy`` (:data:`NUMPY`) is the reference: the kernels of :mod:`rnnkit.kernels` driven by
:mod:`rnnkit.scan` (what docs/bptt.md derives), NumPy's products and the optimizers' equations in
NumPy. ``engine`` (:class:`rnnkit.engine.EngineBackend`) computes the same compiled, on the
machine's full vector width and all its cores, and is tested against the reference.

:func:`current` is the only place that chooses: the engine when it is enabled (Numba importable,
``RNNKIT_ENGINE`` not ``0``), else the reference; :func:`use` picks one for a block of code::

    with rnnkit.backend.use("numpy"):         # the layers, Linear, Adam ... on the reference
        out, h = gru(x)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from rnnkit.kernels.base import Kernel, Tape, Weights
from rnnkit.ranges import THREAD_COUNT


class Stepper(Protocol):
    """One step of a cell on a few rows, no tape: built once per cell, called at every step."""

    def weights(self, w: Weights) -> object:
        """The cell's arrays as this stepper reads them (prepared once while they stay the same)."""

    def __call__(self, arrays: object, x: np.ndarray, states: tuple) -> tuple[np.ndarray, ...]:
        """The new states ((B, n), ...) after one step on x (B, I) from ``states`` (C-ordered
        arrays of the cell's dtype)."""


class Backend(Protocol):
    name: str

    def layer_forward(self, kernel: Kernel, ws: list[Weights], xs: list[np.ndarray], states0: list[tuple],
                      mask: np.ndarray | None, keep_tape: bool = True, masks: list | None = None) -> list[Tape]:
        """Each direction d of one layer over xs[d] (T, B, I) from states0[d]; ``mask`` (T, B, 1)
        marks the valid steps; ``masks[d]``: direction d's :class:`rnnkit.inner_dropout.Masks`
        or None (``masks`` None: none at all). The tapes' states are always complete; with
        ``keep_tape=False`` (inference: no backward follows) the gates and aux need not be."""

    def layer_backward(self, kernel: Kernel, ws: list[Weights], dws: list[Weights], tapes: list[Tape],
                       douts: list[np.ndarray], dfinals: list[tuple]) -> list[tuple]:
        """Back through each direction of tapes this backend made; parameter gradients are added
        into the gradient records ``dws``. Returns [(dx (T, B, I), gradients reaching the initial states)]."""

    def stepper(self, kernel: Kernel, dtype: np.dtype) -> Stepper: ...

    def matmul(self, a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray,
               accumulate: bool) -> np.ndarray:
        """op(a) · op(b) into ``out`` (added to it with ``accumulate``); returns ``out``."""

    def adam_update(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
                    beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool,
                    bias1: float, bias2: float) -> None:
        """Adam's step on one parameter, in place (the equations of :mod:`rnnkit.optim.adam`)."""

    def num_threads(self) -> int: ...

    def set_num_threads(self, count: int | None) -> None: ...


class SequenceStepper:
    """A step as a sequence of one step, through ``backend.layer_forward`` without a tape: the
    reference's stepper, and the engine's for cells its compiled step does not cover."""

    def __init__(self, backend: Backend, kernel: Kernel) -> None:
        self.backend, self.kernel = backend, kernel

    def weights(self, w: Weights) -> Weights:
        return w

    def __call__(self, w: Weights, x: np.ndarray, states: tuple) -> tuple[np.ndarray, ...]:
        tape, = self.backend.layer_forward(self.kernel, [w], [x[None]], [tuple(s[None] for s in states)], None,
                                           keep_tape=False)
        return tuple(s[-1] for s in tape.states)


class NumpyBackend:
    """The reference: NumPy, one step at a time, as docs/bptt.md derives it."""

    name = "numpy"

    def layer_forward(self, kernel, ws, xs, states0, mask, keep_tape=True, masks=None) -> list[Tape]:
        from rnnkit.scan import scan_forward
        masks = masks or [None] * len(ws)
        return [scan_forward(kernel, w, x, s0, mask, m) for w, x, s0, m in zip(ws, xs, states0, masks)]

    def layer_backward(self, kernel, ws, dws, tapes, douts, dfinals) -> list[tuple]:
        from rnnkit.scan import scan_backward
        return [scan_backward(kernel, w, dw, t, d, f) for w, dw, t, d, f in zip(ws, dws, tapes, douts, dfinals)]

    def stepper(self, kernel, dtype) -> Stepper:
        return SequenceStepper(self, kernel)

    def matmul(self, a, b, trans_a, trans_b, out, accumulate) -> np.ndarray:
        product = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if accumulate:
            out += product
        else:
            out[...] = product
        return out

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bias1, bias2) -> None:
        from rnnkit.optim.adam import adam_update
        adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bias1, bias2)

    def num_threads(self) -> int:
        return 1

    def set_num_threads(self, count: int | None) -> None:
        """The reference runs on the calling thread (and NumPy's BLAS on its own): ``count`` is
        checked as the engine checks it, and has no effect."""
        THREAD_COUNT.check("count", count)


NUMPY = NumpyBackend()
_chosen: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("rnnkit_backend", default=None)


def current() -> Backend:
    """The backend in use: the one :func:`use` chose, else the engine if it is enabled, else numpy."""
    chosen = _chosen.get()
    if chosen is not None:
        return chosen
    from rnnkit import engine
    return engine.BACKEND if engine.enabled() else NUMPY


def by_name(name: str) -> Backend:
    """``"engine"`` or ``"numpy"``; the engine only where it is enabled."""
    if name == "numpy":
        return NUMPY
    if name == "engine":
        from rnnkit import engine
        if not engine.enabled():
            raise RuntimeError("the engine is unavailable (Numba missing or RNNKIT_ENGINE=0)")
        return engine.BACKEND
    raise ValueError(f"backend must be 'engine' or 'numpy', got {name!r}")


@contextlib.contextmanager
def use(name: str) -> Iterator[Backend]:
    """Within the block, everything computes on the backend ``name`` ("engine" or "numpy")."""
    token = _chosen.set(by_name(name))
    try:
        yield _chosen.get()
    finally:
        _chosen.reset(token)
