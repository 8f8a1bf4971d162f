"""One layer's directions through the engine: input projection, recurrences, gradients.

The engine's ``layer_forward`` / ``layer_backward`` (:class:`rnnkit.backend.Backend`; they return
the same :class:`~rnnkit.kernels.base.Tape` as the reference), for all the directions of a layer at
once, so that their recurrences can run side by side. ``jobs`` is the cell's job builder
(a :class:`Jobs`: ``LSTMJobs``, ...; :func:`rnnkit.kinds.jobs_for`):

- forward: ``gates = X W_ihᵀ`` for all T·B rows in one product per direction, then one launch of
  the directions' recurrences (:mod:`rnnkit.engine.schedule`), each of which adds the biases and
  the recurrent term and applies the cell step by step;
- backward: one launch of the directions' backward recurrences, which leave ``DA`` (T, B, G·H),
  then per direction the parameter gradients as products over all T·B rows that read DA once:
  ``[dW_ih | dW_hh | db] += DAᵀ [X | H_prev | 1]`` for the LSTM and RNN (the GRU's recurrent
  gradients use another operand: two or three such products), and ``dX = DA W_ih`` (DA, or for a
  layer-normalised cell DA back through LN(x W_ihᵀ): the jobs' ``input_side_da``).

Every product runs on the engine's micro-kernel (:mod:`rnnkit.engine.gemm`).

Under :class:`rnnkit.autocast` a float32 layer's products run in bfloat16 with float32 sums, in
a layer of :func:`rnnkit.quantize_dynamic` in int8 (:mod:`rnnkit.engine.mixed`): the input
projection, the steps' recurrent products (the cells whose records carry
:class:`~rnnkit.engine.mixed.LowOperands`) and, in bfloat16, the parameter gradients and dX.

Dropout inside the recurrence (:mod:`rnnkit.inner_dropout`) enters the fused steps as arrays
(:class:`InnerArrays`): each step writes ``h_in = m_h ⊙ h_t`` beside h_t for the next step's
product to read, and blends its new states with the zoneout masks, in the same pass over the units.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from rnnkit.engine import mixed, workspace
from rnnkit.engine.gemm import SHAPE as GEMM_TILE
from rnnkit.engine.gemm import add_products, gemm, gemm_packed, pack
from rnnkit.engine.pack import gate_tile, pack_gates, units_per_panel
from rnnkit.engine.prepack import PACKED, owned
from rnnkit.engine.schedule import Plan, launch, plan, recurrence_scratch
from rnnkit.kernels.base import Tape, Weights, flat

NO_MASK, NO_KEEP = (0, 0), (0, 0, 0)      # the shapes of an absent m_h and an absent keep mask


class InnerArrays(NamedTuple):
    """One direction's masks as the compiled loops read them (absent ones empty)."""

    hin: np.ndarray             # (T+1, B, H_out) m_h ⊙ h_t, the products' operand; the states' h without m_h
    rec: np.ndarray             # (B, H_out) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H_out) zoneout's k_t on h, or (0, 0, 0)
    keep_c: np.ndarray          # (T, B, H) on the LSTM's c, or (0, 0, 0)


@functools.lru_cache(maxsize=None)
def absent(shape: tuple, dtype) -> np.ndarray:
    """An absent array (a 0 in its ``shape``): one constant per shape and dtype, as nothing can
    be written into it, instead of a fresh np.zeros per call."""
    return np.zeros(shape, dtype)


def inner_arrays(masks, states: tuple, dtype, hin: np.ndarray | None = None) -> InnerArrays:
    """The arrays of ``masks`` (a :class:`rnnkit.inner_dropout.Masks` or None) for states (T+1, B, n);
    ``hin``: the forward pass's h_in (backward), else a new one is started from states[0][0]."""
    def c_array(a, empty):
        return absent(empty, dtype) if a is None else np.ascontiguousarray(a, dtype)
    rec = None if masks is None else masks.recurrent
    keep = () if masks is None or masks.keep is None else masks.keep
    if hin is None:
        hin = states[0]
    if rec is not None and hin is states[0]:
        hin = workspace.empty(states[0].shape, dtype)
        np.multiply(states[0][0], rec, out=hin[0])
    return InnerArrays(hin, c_array(rec, NO_MASK), c_array(keep[0] if keep else None, NO_KEEP),
                       c_array(keep[1] if len(keep) > 1 else None, NO_KEEP))


def input_panels(w_ih: np.ndarray) -> np.ndarray:
    """W_ihᵀ as the panels of the input product X W_ihᵀ (kept by :data:`PACKED` when small)."""
    return pack(w_ih, trans_b=True, own=owned(w_ih))


def mask_2d(mask: np.ndarray | None, steps: int, batch: int) -> np.ndarray:
    """(T, B) bool as the compiled loops take it: all True when every step is valid."""
    return np.ones((steps, batch), bool) if mask is None else np.ascontiguousarray(mask[..., 0])


def zoneout_share(inner: InnerArrays, shape: tuple, dtype) -> np.ndarray:
    """``zone_h`` (B, H_out): k_t ⊙ dh̄_t of the step in hand, kept for h_{t-1}; (0, 0) without zoneout."""
    return np.zeros(shape, dtype) if inner.keep_h.shape[0] else absent((0, 0), dtype)


class Jobs:
    """A cell's job builder: its records for the scheduler, and what follows its backward recurrence.

    A subclass per cell (registered against the cell's reference kernel,
    :func:`rnnkit.kinds.register_jobs`) builds its records — ``forward_job(w, gates, states, aux,
    mask, workers, keep_tape, inner=None)`` and ``backward_job(w, tape, dout, da, carry, mask,
    workers, inner=None)`` — and overrides what differs from the plain cell's defaults here.
    """

    # The gates of W_hh's panels a step's product reads in low precision (mixed.LowOperands);
    # None: the cell's recurrence stays in the layer's precision.
    product_gates: int | None = None

    def __init__(self, kernel) -> None:
        self.kernel = kernel

    def low_gates(self, precision: str) -> int | None:
        """:attr:`product_gates` for ``precision`` ("bfloat16", "int8"): int8's fixed step of h
        needs a bounded state (:mod:`rnnkit.engine.quantized`), which a subclass may lack."""
        return self.product_gates

    @staticmethod
    def backward_operands(w: Weights, d: np.ndarray, low: bool) -> mixed.LowOperands:
        """The backward recurrence's bfloat16 operands (``low``: under autocast) for products that
        read rows of d (T, B, G), else none."""
        return mixed.backward_operands(w.weight_hh, d) if low else mixed.ABSENT

    @staticmethod
    def column_panels(w_hh: np.ndarray, operands) -> np.ndarray:
        """W_hh's float32 column panels (:func:`rnnkit.engine.gemm.pack`) for the backward product,
        or with low-precision operands only their shape (P, 0, NR)."""
        if operands.lp_h.shape[0] == 0:
            return pack(w_hh)
        nr = GEMM_TILE.width(w_hh.dtype)
        return np.empty((-(-w_hh.shape[1] // nr), 0, nr), w_hh.dtype)

    @staticmethod
    def recurrent_panels(w_hh: np.ndarray, gates: int, operands) -> np.ndarray:
        """W_hhᵀ's float32 gate panels (:func:`rnnkit.engine.pack.pack_gates`); with low-precision
        operands only their shape (P, 0, W): the products read the operands' panels."""
        if operands.lp_h.shape[0] == 0:
            return pack_gates(w_hh, gates)
        H = w_hh.shape[0] // gates
        return np.empty((-(-H // units_per_panel(gates, w_hh.dtype)), 0, gate_tile(gates).width(w_hh.dtype)), w_hh.dtype)

    def step_kind(self) -> int | None:
        """The compiled streaming step's code for the cell (:mod:`rnnkit.engine.step`); None: a
        step is a sequence of one (:class:`rnnkit.backend.SequenceStepper`)."""
        return None

    def new_aux(self, steps: int, batch: int, dtype):
        return self.kernel.new_aux(steps, batch, dtype)

    def input_side_bias(self, w: Weights, dtype, width: int) -> np.ndarray:
        """The biases the cell adds to x_t W_ihᵀ (:meth:`input_side_bias` of the kernel); zeros without."""
        bias = self.kernel.input_side_bias(w)
        return np.zeros(width, dtype) if bias is None else bias

    @staticmethod
    def plain(inner: InnerArrays | None, states: tuple, dtype) -> InnerArrays:
        """``inner``, or without masks the arrays of the plain cell."""
        return inner or inner_arrays(None, states, dtype)

    @staticmethod
    def plan(steps: int, chunks: list, workers: int, like: np.ndarray, rows: int = 0) -> Plan:
        """A recurrence's plan over the B rows of ``like`` (T, B, ·): each worker's scratch holds
        its panel's tile (:func:`rnnkit.engine.schedule.recurrence_scratch`) of B rows, or of
        ``rows`` if more (the bfloat16 tiles' whole blocks of rows)."""
        return plan(steps, chunks, workers, recurrence_scratch(workers, max(rows, like.shape[1]), like.dtype))

    def weight_products(self, dw, tape, da, job) -> list:
        """[dW_ih | dW_hh | db_ih = db_hh] += DAᵀ [X | H_in | 1] (docs/bptt.md)."""
        return [(flat(da), [flat(tape.x), flat(tape.h_in()[:-1])], [dw.weight_ih, dw.weight_hh],
                 [dw.bias_ih, dw.bias_hh])]

    def input_side_da(self, da, job) -> np.ndarray:
        """The gradient reaching x_t W_ihᵀ (dx = it · W_ih): DA itself."""
        return da

    def other_grads(self, dw, tape, da, job) -> None:
        """Gradients of parameters outside the products (none for the plain cell)."""


def forward_directions(jobs, ws: list[Weights], xs: list[np.ndarray], states0: list[tuple], mask,
                       workers: int, keep_tape: bool = True, masks: list | None = None, start=launch) -> list[Tape]:
    """Each direction d runs over xs[d] (T, B, I) from states0[d] (masks[d]: its dropout inside
    the recurrence, or None); returns their tapes. ``start(records, workers)`` runs the records
    (:func:`~rnnkit.engine.schedule.launch`; a call plan's keeps them, :mod:`.callplan`)."""
    kernel = jobs.kernel
    records, tapes = [], []
    low = mixed.precision_of(xs[0].dtype)             # bfloat16 or int8 products, or None
    for w, x, state0, m in zip(ws, xs, states0, masks or [None] * len(ws)):
        x = np.ascontiguousarray(x)                   # the products read rows through raw pointers
        T, B, _ = x.shape
        gates = workspace.empty((T, B, w.weight_ih.shape[0]), x.dtype)             # (T, B, G·H)
        if low:
            mixed.input_product(low, x, w.weight_ih, gates, inference=not keep_tape)
        else:
            gemm_packed(flat(x), PACKED.get(w.weight_ih, "input", input_panels), flat(gates))
        states = tuple(workspace.empty((T + 1, B, n), x.dtype) for n in kernel.state_sizes())
        for s, s0 in zip(states, state0):
            s[0] = s0
        aux = jobs.new_aux(T, B, x.dtype)
        inner = None if m is None else inner_arrays(m, states, x.dtype)
        extra = {} if inner is None else {"inner": inner}           # jobs without masks take none
        gates_of_product = jobs.low_gates(low) if low else None
        if gates_of_product is not None:                             # ... nor low-precision operands
            hin = states[0] if inner is None else inner.hin
            extra["operands"] = mixed.recurrent_operands(low, w.weight_hh, gates_of_product, hin, not keep_tape)
        records.append(jobs.forward_job(w, gates, states, aux, mask_2d(mask, T, B), workers, keep_tape, **extra))
        tapes.append(Tape(x, gates, states, aux, mask, m, None if m is None or m.recurrent is None else inner.hin))
    start(tuple(records), workers)
    return tapes


def backward_directions(jobs, ws: list[Weights], dws: list[Weights], tapes: list[Tape], douts, dfinals,
                        workers: int, build=None) -> list[tuple]:
    """Back through each direction; adds parameter gradients into dws; returns [(dx, dstate0)].
    ``build``: makes each direction's record in place of ``jobs.backward_job`` (a call plan's, :mod:`.backplan`)."""
    build = build or jobs.backward_job
    records, das, carries = [], [], []
    low = mixed.precision_of(tapes[0].gates.dtype) == "bfloat16"  # under autocast: bfloat16 products
    for w, tape, dout, dfinal in zip(ws, tapes, douts, dfinals):
        T, B, _ = tape.x.shape
        da = workspace.empty(tape.gates.shape, tape.gates.dtype)                     # (T, B, G·H)
        carry = tuple(np.array(d, da.dtype).reshape(B, -1) for d in dfinal)         # copies: updated
        dout = np.ascontiguousarray(dout, da.dtype)
        extra = {} if tape.masks is None else {"inner": inner_arrays(tape.masks, tape.states, da.dtype, tape.h_in())}
        if low and jobs.low_gates("bfloat16") is not None:          # ... nor bfloat16 operands
            extra["low"] = True
        records.append(build(w, tape, dout, da, carry, mask_2d(tape.mask, T, B), workers, **extra))
        das.append(da)
        carries.append(carry)
    launch(tuple(records), workers)
    low = mixed.precision_of(das[0].dtype) == "bfloat16"         # under autocast: bfloat16 products
    results = []
    for w, dw, tape, da, carry, record in zip(ws, dws, tapes, das, carries, records):
        for a, blocks, grads, bias_grads in jobs.weight_products(dw, tape, da, record):
            (mixed.weight_gradients if low else add_products)(a, blocks, grads, [b for b in bias_grads if b is not None])
        jobs.other_grads(dw, tape, da, record)
        dx = np.empty(tape.x.shape, da.dtype)                      # returned: the caller's to keep
        (mixed.input_gradient if low else gemm)(flat(jobs.input_side_da(da, record)), w.weight_ih, flat(dx))
        results.append((dx, carry))
    return results
