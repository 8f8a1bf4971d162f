"""One layer's directions through the engine: input projection, recurrences, gradients.

The engine's ``layer_forward`` / ``layer_backward`` (:class:`rnnkit.backend.Backend`; they return
the same :class:`~rnnkit.kernels.base.Tape` as the reference), for all the directions of a layer at
once, so that their recurrences can run side by side. ``jobs`` is the cell's job builder
(``LSTMJobs``, ...: :func:`rnnkit.kinds.jobs_for`):

- forward: ``gates = X W_ihᵀ`` for all T·B rows in one product per direction, then one launch of
  the directions' recurrences (:mod:`rnnkit.engine.schedule`), each of which adds the biases and
  the recurrent term and applies the cell step by step;
- backward: one launch of the directions' backward recurrences, which leave ``DA`` (T, B, G·H),
  then per direction the parameter gradients as products over all T·B rows that read DA once:
  ``[dW_ih | dW_hh | db] += DAᵀ [X | H_prev | 1]`` for the LSTM and RNN (the GRU's recurrent
  gradients use another operand: two or three such products), and ``dX = DA W_ih`` (DA, or for a
  layer-normalised cell DA back through LN(x W_ihᵀ): the jobs' ``input_side_da``).

Every product runs on the engine's micro-kernel (:mod:`rnnkit.engine.gemm`).
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.gemm import add_products, gemm
from rnnkit.engine.schedule import launch
from rnnkit.kernels.base import Tape, Weights, flat


def mask_2d(mask: np.ndarray | None, steps: int, batch: int) -> np.ndarray:
    """(T, B) bool as the compiled loops take it: all True when every step is valid."""
    return np.ones((steps, batch), bool) if mask is None else np.ascontiguousarray(mask[..., 0])


def forward_directions(jobs, ws: list[Weights], xs: list[np.ndarray], states0: list[tuple], mask,
                       workers: int, keep_tape: bool = True) -> list[Tape]:
    """Each direction d runs over xs[d] (T, B, I) from states0[d]; returns their tapes."""
    kernel = jobs.kernel
    records, tapes = [], []
    for w, x, state0 in zip(ws, xs, states0):
        x = np.ascontiguousarray(x)                   # the products read rows through raw pointers
        T, B, _ = x.shape
        gates = workspace.empty((T, B, w.weight_ih.shape[0]), x.dtype)             # (T, B, G·H)
        gemm(flat(x), w.weight_ih, flat(gates), trans_b=True)
        states = tuple(workspace.empty((T + 1, B, n), x.dtype) for n in kernel.state_sizes())
        for s, s0 in zip(states, state0):
            s[0] = s0
        aux = jobs.new_aux(T, B, x.dtype)
        records.append(jobs.forward_job(w, gates, states, aux, mask_2d(mask, T, B), workers, keep_tape))
        tapes.append(Tape(x, gates, states, aux, mask))
    launch(tuple(records), workers)
    return tapes


def backward_directions(jobs, ws: list[Weights], dws: list[Weights], tapes: list[Tape], douts, dfinals,
                        workers: int) -> list[tuple]:
    """Back through each direction; adds parameter gradients into dws; returns [(dx, dstate0)]."""
    records, das, carries = [], [], []
    for w, tape, dout, dfinal in zip(ws, tapes, douts, dfinals):
        T, B, _ = tape.x.shape
        da = workspace.empty(tape.gates.shape, tape.gates.dtype)                     # (T, B, G·H)
        carry = tuple(np.array(d, da.dtype).reshape(B, -1) for d in dfinal)         # copies: updated
        dout = np.ascontiguousarray(dout, da.dtype)
        records.append(jobs.backward_job(w, tape, dout, da, carry, mask_2d(tape.mask, T, B), workers))
        das.append(da)
        carries.append(carry)
    launch(tuple(records), workers)
    results = []
    for w, dw, tape, da, carry, record in zip(ws, dws, tapes, das, carries, records):
        for a, blocks, grads, bias_grads in jobs.weight_products(dw, tape, da, record):
            add_products(a, blocks, grads, [b for b in bias_grads if b is not None])
        jobs.other_grads(dw, tape, da, record)
        dx = np.empty(tape.x.shape, da.dtype)                      # returned: the caller's to keep
        gemm(flat(jobs.input_side_da(da, record)), w.weight_ih, flat(dx))
        results.append((dx, carry))
    return results
