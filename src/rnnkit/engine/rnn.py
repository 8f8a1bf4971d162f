"""The Elman RNN's recurrences, compiled: the equations of :mod:`rnnkit.kernels.rnn`.

Forward, one task = one panel of U units at step t (``gates`` holds ``x_t W_ihᵀ`` on entry and
h_t on exit; ``bias`` is b_ih + b_hh)::

    h̃_t = φ(gates[t] + bias + h_in W_hhᵀ),     φ = tanh or relu
    h_t = h̃_t + k_t ⊙ (h_{t-1} − h̃_t)          (zoneout; else h_t = h̃_t),  h_in' = m_h ⊙ h_t

Backward, one task = one panel of units at tick s (t = T − 1 − s)::

    dh_t = m_h ⊙ (da_{t+1} W_hh) + k_{t+1} ⊙ dh̄_{t+1}    (the tile; at t = T − 1 the carried dL/dh_T)
    dh̄_t = dh_t + dout_t,    da_t = (1 − k_t) ⊙ dh̄_t ⊙ φ'(h̃_t),    φ' = 1 − h̃² (tanh) or [h̃ > 0] (relu)

(m_h = 1 and k = 0 without recurrent dropout and zoneout: :mod:`rnnkit.inner_dropout`.)
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine.activations import tanh
from rnnkit.engine.jit import jit
from rnnkit.engine.layer import Jobs, zoneout_share
from rnnkit.engine.mixed import ABSENT, LowOperands, backward_product, recurrent_product, store_low
from rnnkit.engine.schedule import job_record, register_tasks
from rnnkit.engine.vector import lanes_of, positive, vload, vstore
from rnnkit.kernels.rnn import RNNKernel
from rnnkit.kinds import register_jobs


@job_record(extra=(LowOperands,))
class RNNForward:
    panels: np.ndarray          # (P, H, NR) W_hhᵀ, NR units per panel (pack_gates)
    bias: np.ndarray            # (H,) b_ih + b_hh
    relu: bool                  # φ = relu (else tanh)
    gates: np.ndarray           # (T, B, H) in: x_t W_ihᵀ; out: h_t
    h: np.ndarray               # (T+1, B, H) h[0] given
    hin: np.ndarray             # (T+1, B, H) m_h ⊙ h_t, the product's operand (h itself without m_h)
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) zoneout's k_t, or (0, 0, 0)
    tape: bool                  # store h̃_t in gates too, for backward (not in inference)
    mask: np.ndarray            # (T, B) bool


@job_record(extra=(LowOperands,))
class RNNBackward:
    panels: np.ndarray          # (P, H, NR) W_hh in column panels
    relu: bool
    gates: np.ndarray           # (T, B, H) h_t (before masking)
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, H) out
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) k_t, or (0, 0, 0)
    zone_h: np.ndarray          # (B, H) k_t ⊙ dh̄_t of the step in hand (zoneout), or (0, 0)
    mask: np.ndarray            # (T, B) bool; the plan: T + 1 ticks


@jit(inline=True)
def forward_units(job, t, b, j, n, acc, aj):
    """h_t = φ(a) for row b, the n ≤ L units from j (their recurrent terms at acc[aj])."""
    T, B, H = job.gates.shape
    row, new = (t * B + b) * H, ((t + 1) * B + b) * H
    a = vload(job.gates, row + j, n) + vload(job.bias, j, n) + vload(acc, aj, n)
    h = max(a, 0.0) if job.relu else tanh(a)
    if job.tape:
        vstore(job.gates, row + j, h, n)
    if job.keep_h.shape[0] > 0:                      # zoneout: h_t = h̃ + k (h_{t-1} − h̃)
        h_prev = vload(job.h, row + j, n)
        h = h + vload(job.keep_h, row + j, n) * (h_prev - h)
        h = h if job.mask[t, b] else h_prev
    elif not job.mask[t, b]:
        h = vload(job.h, row + j, n)
    vstore(job.h, new + j, h, n)
    if job.rec.shape[0] > 0:
        vstore(job.hin, new + j, h * vload(job.rec, b * H + j, n), n)


@jit(inline=True)
def backward_units(job, t, b, j, n):
    """da_t = dh ⊙ φ'(h_t) for row b, the n ≤ L units from j (dh = 0 at a padded step)."""
    T, B, H = job.gates.shape
    row = (t * B + b) * H
    dh = vload(job.carry_h, b * H + j, n) + vload(job.dout, row + j, n)
    if not job.mask[t, b]:
        dh = dh * 0.0
    if job.keep_h.shape[0] > 0:                      # zoneout: k ⊙ dh̄ straight to h_{t-1}
        k = vload(job.keep_h, row + j, n)
        vstore(job.zone_h, b * H + j, k * dh, n)
        dh = dh * (1.0 - k)
    h = vload(job.gates, row + j, n)
    da = dh * positive(h) if job.relu else dh * (1.0 - h * h)
    vstore(job.da, row + j, da, n)


@jit(refcount=False)
def forward_panel(job, t, phase, p, worker):
    """Step t for the U units of panel p, all B rows: the tile, then the cell."""
    acc = job.scratch[worker]
    T, B, H = job.gates.shape
    U = job.panels.shape[2]
    u0, n = p * U, min(U, H - p * U)
    recurrent_product(job, t, p, acc)
    for b in range(B):
        forward_row(job, t, b, u0, n, acc, b * acc.shape[1])
    store_low(job, job.hin, t + 1, u0, n)                          # h_t: step t + 1's operand


@jit(refcount=False)
def backward_panel(job, s, phase, p, worker):
    """Tick s (t = T − 1 − s) for the NR units of panel p: dh_t from step t + 1's tile, then step t."""
    acc = job.scratch[worker]
    T, B, H = job.gates.shape
    NR = job.panels.shape[2]
    u0, n = p * NR, min(NR, H - p * NR)
    t = T - 1 - s
    if s > 0:
        backward_product(job, job.da, t + 1, p, acc)
        for b in range(B):
            if job.mask[t + 1, b]:
                carry_row(job, b, u0, n, acc, b * acc.shape[1])
    if t >= 0:
        for b in range(B):
            backward_row(job, t, b, u0, n)
        store_low(job, job.da, t, u0, n)                           # da_t: the next tick's operand


@jit(inline=True)
def carry_row(job, b, u0, n, acc, aj):
    """dL/dh_{t-1} of row b, the n units from u0, from the product da_t W_hh at acc[aj:]: times m_h,
    plus zoneout's share k_t ⊙ dh̄_t; a vector at a time."""
    H = job.carry_h.shape[1]
    L = lanes_of(job.carry_h)
    for u in range(0, n, L):
        k, j = min(L, n - u), b * H + u0 + u
        d = vload(acc, aj + u, k)
        if job.rec.shape[0] > 0:
            d = d * vload(job.rec, j, k)
        if job.zone_h.shape[0] > 0:
            d = d + vload(job.zone_h, j, k)
        vstore(job.carry_h, j, d, k)


@jit(inline=True)
def forward_row(job, t, b, u0, n, acc, aj):
    """Row b's n units from u0 at step t, a vector at a time."""
    L = lanes_of(job.gates)
    for u in range(0, n, L):
        forward_units(job, t, b, u0 + u, min(L, n - u), acc, aj + u)


@jit(inline=True)
def backward_row(job, t, b, u0, n):
    """Row b's n units from u0, step t's backward, a vector at a time."""
    L = lanes_of(job.gates)
    for u in range(0, n, L):
        backward_units(job, t, b, u0 + u, min(L, n - u))


register_tasks({RNNForward: forward_panel, RNNBackward: backward_panel})


@register_jobs(RNNKernel)
class RNNJobs(Jobs):
    """Builds the RNN's job records from a layer's weights and tape (:mod:`rnnkit.engine.layer`)."""

    product_gates = 1

    def __init__(self, kernel: RNNKernel) -> None:
        super().__init__(kernel)
        self.relu = kernel.nonlinearity == "relu"

    def low_gates(self, precision: str) -> int | None:
        """A ReLU's h_t is unbounded: no int8 recurrence (float32)."""
        return None if precision == "int8" and self.relu else 1

    def step_kind(self) -> int:
        from rnnkit.engine import step
        return step.RNN_RELU if self.relu else step.RNN_TANH

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True, inner=None,
                    operands=ABSENT) -> RNNForward:
        inner = self.plain(inner, states, gates.dtype)
        T = gates.shape[0]
        panels = self.recurrent_panels(w.weight_hh, 1, operands)
        return RNNForward(panels, self.input_side_bias(w, gates.dtype, gates.shape[2]), self.relu, gates, states[0],
                          inner.hin, inner.rec, inner.keep_h, keep_tape, mask,
                          *operands, *self.plan(T, [panels.shape[0]], workers, gates, operands.rows()))

    def backward_job(self, w, tape, dout, da, carry, mask, workers, inner=None, low=False) -> RNNBackward:
        inner = self.plain(inner, tape.states, da.dtype)
        T, B, H = tape.gates.shape
        operands = self.backward_operands(w, da, low)
        panels = self.column_panels(w.weight_hh, operands)
        return RNNBackward(panels, self.relu, tape.gates, dout, da, carry[0], inner.rec, inner.keep_h,
                           zoneout_share(inner, (B, H), da.dtype), mask,
                           *operands, *self.plan(T + 1, [panels.shape[0]], workers, da, operands.rows()))
