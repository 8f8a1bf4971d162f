"""The GRU's recurrences, compiled, in both forms: the equations of :mod:`rnnkit.kernels.gru`.

Forward (``gates`` holds ``x_t W_ihᵀ`` on entry and r, z, n on exit; ``bias`` is b_ih plus
[b_hr, b_hz] and, in Cho's form, b_hn)::

    reset_after (GRUForward, one phase; a panel holds [r | z | n] of U units):
        [s_r | s_z | s_n] = h_{t-1} W_hhᵀ                      (the tile)
        r = σ(a_r + s_r)   z = σ(a_z + s_z)   hn = s_n + b_hn   n = tanh(a_n + r ⊙ hn)
    Cho 2014 (ChoGRUForward, two phases: n needs r ⊙ h_{t-1} of every unit):
        phase 0: [s_r | s_z] = h_{t-1} W_h{r,z}ᵀ;  r, z as above;  rh = r ⊙ h_{t-1}
        phase 1: n = tanh(a_n + rh W_hnᵀ)
    h_t = n + z ⊙ (h_{t-1} − n)

with recurrent dropout the products read h_in = m_h ⊙ h_{t-1} (kept as ``hin``, written beside h_t),
Cho's rh = r ⊙ h_in; zoneout then blends h_t ← h_t + k_t ⊙ (h_{t-1} − h_t) (:mod:`rnnkit.inner_dropout`).

Backward (``dh`` = dL/dh_t, the carried gradient plus dout_t; 0 at a padded step)::

    da_n = dh ⊙ (1 − z) ⊙ (1 − n²)        da_z = dh ⊙ (h_{t-1} − n) ⊙ z(1 − z)
    reset_after (GRUBackward):
                  da_r = da_n ⊙ hn ⊙ r(1 − r)
                  dh_{t-1} = dh ⊙ z + m_h ⊙ ([da_r, da_z, da_n ⊙ r] W_hh)    (one phase per tick)
    Cho 2014 (ChoGRUBackward):
                  drh = da_n W_hn,  da_r = drh ⊙ h_in ⊙ r(1 − r)            (phase 1)
                  dh_{t-1} = dh ⊙ z + m_h ⊙ (drh ⊙ r + [da_r, da_z] W_h{r,z})  (phase 0 of the next tick)

Under zoneout ``dh`` above is (1 − k_t) ⊙ dh̄_t (dh̄_t the carried gradient plus dout_t) and
k_t ⊙ dh̄_t is added to dh_{t-1} (``zone_h``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.gemm import pack, panel_product
from rnnkit.engine.jit import jit
from rnnkit.engine.layer import Jobs, zoneout_share
from rnnkit.engine.mixed import ABSENT, LowOperands, backward_product, recurrent_product, store_low
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.schedule import job_record, register_tasks
from rnnkit.engine.vector import lanes_of, vload, vstore
from rnnkit.kernels.base import flat
from rnnkit.kernels.gru import GRUAux, GRUKernel
from rnnkit.kinds import register_jobs


class ChoGRUAux(NamedTuple):
    """What the engine's tape of Cho's GRU keeps besides gates and states (reset_after's: GRUAux)."""

    rh: np.ndarray              # (T, B, H) r ⊙ h_in, the operand of dW_hn


@job_record(extra=(LowOperands,))
class GRUForward:
    panels: np.ndarray          # (P, H, 3U) W_hhᵀ as [r|z|n] panels of U units (pack_gates)
    bias: np.ndarray            # (3H,) b_ih + [b_hr, b_hz, 0]
    b_hn: np.ndarray            # (H,) zeros without biases
    gates: np.ndarray           # (T, B, 3H) in: x_t W_ihᵀ; out: r, z, n
    h: np.ndarray               # (T+1, B, H)
    hin: np.ndarray             # (T+1, B, H) m_h ⊙ h_t, the products' operand (h itself without m_h)
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) zoneout's k_t, or (0, 0, 0)
    hn: np.ndarray              # (T, B, H) h_in W_hnᵀ + b_hn
    tape: bool                  # store r, z, n and hn for backward (not in inference)
    mask: np.ndarray            # (T, B) bool; the plan: T steps of one phase


@job_record(extra=(LowOperands,))
class ChoGRUForward:
    panels: np.ndarray          # (P, H, 2U) W_h{r,z}ᵀ as [r|z] panels of U units (pack_gates)
    panels_n: np.ndarray        # (P', H, NR) W_hnᵀ in panels of NR units
    bias: np.ndarray            # (3H,) b_ih + b_hh
    gates: np.ndarray           # (T, B, 3H) in: x_t W_ihᵀ; out: r, z (always: phase 1 reads z), n
    h: np.ndarray               # (T+1, B, H)
    hin: np.ndarray             # (T+1, B, H) m_h ⊙ h_t (h itself without m_h)
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) zoneout's k_t, or (0, 0, 0)
    rh: np.ndarray              # (T, B, H) r ⊙ h_in, phase 1's operand
    tape: bool                  # store n for backward (not in inference)
    mask: np.ndarray            # (T, B) bool; the plan: T steps of two phases


@job_record(extra=(LowOperands,))
class GRUBackward:
    panels: np.ndarray          # (P, 3H, NR) W_hh in column panels
    gates: np.ndarray           # (T, B, 3H) r, z, n
    h: np.ndarray               # (T+1, B, H)
    hn: np.ndarray              # (T, B, H)
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, 3H) out: [da_r, da_z, da_n]
    da_h: np.ndarray            # (T, B, 3H) out: [da_r, da_z, da_n ⊙ r]
    dh: np.ndarray              # (T, B, H) out: dL/dh_t
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) k_t, or (0, 0, 0)
    zone_h: np.ndarray          # (B, H) k_t ⊙ dh̄_t of the step in hand (zoneout), or (0, 0)
    mask: np.ndarray            # the plan: T + 1 ticks of one phase


@job_record
class ChoGRUBackward:
    panels: np.ndarray          # (P, 2H, NR) W_h{r,z} in column panels
    panels_n: np.ndarray        # (P, H, NR) W_hn in column panels
    gates: np.ndarray           # (T, B, 3H) r, z, n
    h: np.ndarray               # (T+1, B, H)
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, 3H) out: [da_r, da_z, da_n]
    dh: np.ndarray              # (T, B, H) out: dL/dh_t
    part: np.ndarray            # (B, H) dh ⊙ z + drh ⊙ r of the step in hand
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    hin: np.ndarray             # (T+1, B, H) m_h ⊙ h_t (h itself without m_h)
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) k_t, or (0, 0, 0)
    zone_h: np.ndarray          # (B, H) k_t ⊙ dh̄_t of the step in hand (zoneout), or (0, 0)
    mask: np.ndarray            # the plan: T + 1 ticks of two phases


# -- forward ---------------------------------------------------------------------------------------

@jit(inline=True)
def reset_update(job, t, b, j, count, acc, aj, U):
    """r = σ(a_r + s_r), z = σ(a_z + s_z) of row b for the count ≤ L units from j (s_r, s_z at
    acc[aj], acc[aj + U])."""
    T, B, G = job.gates.shape
    H = G // 3
    row = (t * B + b) * G
    r = sigmoid(vload(job.gates, row + j, count) + vload(job.bias, j, count) + vload(acc, aj, count))
    z = sigmoid(vload(job.gates, row + H + j, count) + vload(job.bias, H + j, count)
                + vload(acc, aj + U, count))
    return r, z


@jit(inline=True)
def forward_units(job, t, b, j, count, acc, aj):
    """reset_after: step t of row b for the count ≤ L units from j (s_r, s_z, s_n at acc[aj + k·U])."""
    T, B, G = job.gates.shape
    H, U = G // 3, job.panels.shape[2] // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    r, z = reset_update(job, t, b, j, count, acc, aj, U)
    hn = vload(acc, aj + 2 * U, count) + vload(job.b_hn, j, count)
    n = tanh(vload(job.gates, row + 2 * H + j, count) + vload(job.bias, 2 * H + j, count) + r * hn)
    h_prev = vload(job.h, prev + j, count)
    if job.tape:
        vstore(job.gates, row + j, r, count)
        vstore(job.gates, row + H + j, z, count)
        vstore(job.gates, row + 2 * H + j, n, count)
        vstore(job.hn, prev + j, hn, count)
    new_state(job, t, b, j, count, n + z * (h_prev - n), h_prev)


@jit(inline=True)
def gates_units(job, t, b, j, count, acc, aj):
    """Cho, phase 0: r, z and rh = r ⊙ h_in of row b for the count ≤ L units from j."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    r, z = reset_update(job, t, b, j, count, acc, aj, job.panels.shape[2] // 2)
    vstore(job.gates, row + j, r, count)
    vstore(job.gates, row + H + j, z, count)
    vstore(job.rh, prev + j, r * vload(job.hin, prev + j, count), count)


@jit(inline=True)
def candidate_units(job, t, b, j, count, acc, aj):
    """Cho, phase 1: n = tanh(a_n + rh W_hnᵀ) and h_t of row b for the count ≤ L units from j."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    n = tanh(vload(job.gates, row + 2 * H + j, count) + vload(job.bias, 2 * H + j, count)
             + vload(acc, aj, count))
    z = vload(job.gates, row + H + j, count)
    h_prev = vload(job.h, prev + j, count)
    if job.tape:
        vstore(job.gates, row + 2 * H + j, n, count)
    new_state(job, t, b, j, count, n + z * (h_prev - n), h_prev)


@jit(inline=True)
def new_state(job, t, b, j, count, h, h_prev):
    """h_t of row b, the count ≤ L units from j: the cell's h (zoned out), h_{t-1} at a padded
    step; and m_h ⊙ h_t for the next step's products."""
    T, B, G = job.gates.shape
    H = G // 3
    row, new = (t * B + b) * H, ((t + 1) * B + b) * H
    if job.keep_h.shape[0] > 0:
        h = h + vload(job.keep_h, row + j, count) * (h_prev - h)
    h = h if job.mask[t, b] else h_prev
    vstore(job.h, new + j, h, count)
    if job.rec.shape[0] > 0:
        vstore(job.hin, new + j, h * vload(job.rec, b * H + j, count), count)


@jit(refcount=False)
def forward_panel(job, t, phase, p, worker):
    """reset_after: step t for the U units of panel p, all B rows."""
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, U = G // 3, job.panels.shape[2] // 3
    u0, count = p * U, min(U, H - p * U)
    recurrent_product(job, t, p, acc)
    L = lanes_of(job.gates)
    for b in range(B):
        for u in range(0, count, L):
            forward_units(job, t, b, u0 + u, min(L, count - u), acc, b * acc.shape[1] + u)
    store_low(job, job.hin, t + 1, u0, count)                      # h_t: step t + 1's operand


@jit(refcount=False)
def cho_forward_panel(job, t, phase, p, worker):
    """Cho: step t, phase ``phase`` (0: r, z, rh; 1: n, h_t), for the units of panel p, all B rows."""
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H = G // 3
    L = lanes_of(job.gates)
    if phase == 0:
        U = job.panels.shape[2] // 2
        u0, count = p * U, min(U, H - p * U)
        panel_product(job.hin, t * B * H, H, B, job.panels, p, acc)
        for b in range(B):
            for u in range(0, count, L):
                gates_units(job, t, b, u0 + u, min(L, count - u), acc, b * acc.shape[1] + u)
        return
    U = job.panels_n.shape[2]
    u0, count = p * U, min(U, H - p * U)
    panel_product(job.rh, t * B * H, H, B, job.panels_n, p, acc)
    for b in range(B):
        for u in range(0, count, L):
            candidate_units(job, t, b, u0 + u, min(L, count - u), acc, b * acc.shape[1] + u)


# -- backward --------------------------------------------------------------------------------------

@jit(inline=True)
def update_backward(job, t, b, j, count):
    """Both forms: dh, da_n, da_z of step t, row b, the count ≤ L units from j; returns r, da_n."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    dh = vload(job.carry_h, b * H + j, count) + vload(job.dout, prev + j, count)
    if not job.mask[t, b]:
        dh = dh * 0.0                                     # padded: no gradient enters the step
    if job.keep_h.shape[0] > 0:                           # zoneout: k ⊙ dh̄ straight to h_{t-1}
        k = vload(job.keep_h, prev + j, count)
        vstore(job.zone_h, b * H + j, k * dh, count)
        dh = dh * (1.0 - k)
    r, z = vload(job.gates, row + j, count), vload(job.gates, row + H + j, count)
    n, h_prev = vload(job.gates, row + 2 * H + j, count), vload(job.h, prev + j, count)
    da_n = dh * (1.0 - z) * (1.0 - n * n)
    da_z = dh * (h_prev - n) * z * (1.0 - z)
    vstore(job.dh, prev + j, dh, count)
    vstore(job.da, row + H + j, da_z, count)
    vstore(job.da, row + 2 * H + j, da_n, count)
    return r, da_n, da_z


@jit(inline=True)
def backward_units(job, t, b, j, count):
    """reset_after: the update's backward, then da_r = da_n ⊙ hn ⊙ r(1 − r) and da_h."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    r, da_n, da_z = update_backward(job, t, b, j, count)
    da_r = da_n * vload(job.hn, prev + j, count) * r * (1.0 - r)
    vstore(job.da, row + j, da_r, count)
    vstore(job.da_h, row + j, da_r, count)
    vstore(job.da_h, row + H + j, da_z, count)
    vstore(job.da_h, row + 2 * H + j, da_n * r, count)


@jit(inline=True)
def reset_units(job, t, b, j, count, drh, dj):
    """Cho: da_r = drh ⊙ h_in ⊙ r(1 − r) and part = dh ⊙ z + m_h ⊙ drh ⊙ r, row b, units from j."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    r, z = vload(job.gates, row + j, count), vload(job.gates, row + H + j, count)
    d = vload(drh, dj, count)
    vstore(job.da, row + j, d * vload(job.hin, prev + j, count) * r * (1.0 - r), count)
    dr = d * r * vload(job.rec, b * H + j, count) if job.rec.shape[0] > 0 else d * r
    vstore(job.part, b * H + j, vload(job.dh, prev + j, count) * z + dr, count)


@jit(inline=True)
def carry_unit(job, b, j, product, rest):
    """dL/dh_{t-1} of row b, unit j: m_h ⊙ (the tile's product) + rest + zoneout's k_t ⊙ dh̄_t."""
    d = product * job.rec[b, j] if job.rec.shape[0] > 0 else product
    zone = job.zone_h[b, j] if job.zone_h.shape[0] > 0 else 0.0
    job.carry_h[b, j] = d + rest + zone


@jit(refcount=False)
def backward_panel(job, s, phase, p, worker):
    """reset_after: tick s (t = T − 1 − s) for the NR units of panel p: dh_t, then step t."""
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, NR = G // 3, job.panels.shape[2]
    u0, count = p * NR, min(NR, H - p * NR)
    t = T - 1 - s
    if s > 0:                                            # dh_t from step t + 1; padded rows keep it
        backward_product(job, job.da_h, t + 1, p, acc)
        for b in range(B):
            if job.mask[t + 1, b]:
                for k in range(count):
                    j = u0 + k
                    carry_unit(job, b, j, acc[b, k], job.dh[t + 1, b, j] * job.gates[t + 1, b, H + j])
    if t >= 0:
        L = lanes_of(job.gates)
        for b in range(B):
            for u in range(0, count, L):
                backward_units(job, t, b, u0 + u, min(L, count - u))
        for g in range(3):
            store_low(job, job.da_h, t, g * H + u0, count)           # da_h[t]: the next tick's operand


@jit(refcount=False)
def cho_backward_panel(job, s, phase, p, worker):
    """Cho: tick s (t = T − 1 − s), phase 0 (dh_t, then step t's update) or 1 (drh, da_r), panel p."""
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, NR = G // 3, job.panels.shape[2]
    u0, count = p * NR, min(NR, H - p * NR)
    t = T - 1 - s
    L = lanes_of(job.gates)
    if phase == 0:
        if s > 0:                                        # dh_t from step t + 1; padded rows keep it
            panel_product(job.da, (t + 1) * B * G, G, B, job.panels, p, acc)
            for b in range(B):
                if job.mask[t + 1, b]:
                    for k in range(count):
                        carry_unit(job, b, u0 + k, acc[b, k], job.part[b, u0 + k])
        if t >= 0:
            for b in range(B):
                for u in range(0, count, L):
                    update_backward(job, t, b, u0 + u, min(L, count - u))
    elif t >= 0:                                         # phase 1: drh = da_n W_hn
        panel_product(job.da, t * B * G + 2 * H, G, B, job.panels_n, p, acc)
        for b in range(B):
            for u in range(0, count, L):
                reset_units(job, t, b, u0 + u, min(L, count - u), acc, b * acc.shape[1] + u)


register_tasks({GRUForward: forward_panel, GRUBackward: backward_panel,
                ChoGRUForward: cho_forward_panel, ChoGRUBackward: cho_backward_panel})


# -- the layer's side ------------------------------------------------------------------------------

class GRUJobs(Jobs):
    """Builds the reset_after GRU's job records from a layer's weights and tape (:mod:`rnnkit.engine.layer`)."""

    Aux = GRUAux                # the tape's one (T, B, H) array besides gates and states
    product_gates = 3

    def step_kind(self) -> int:
        from rnnkit.engine import step
        return step.GRU

    def new_aux(self, steps: int, batch: int, dtype):
        return self.Aux(workspace.empty((steps, batch, self.kernel.hidden_size), dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True, inner=None,
                    operands=ABSENT) -> GRUForward:
        inner = self.plain(inner, states, gates.dtype)
        T, B, G = gates.shape
        H = G // 3
        b_hn = np.zeros(H, gates.dtype) if w.bias_hh is None else w.bias_hh[2 * H:]
        panels = self.recurrent_panels(w.weight_hh, 3, operands)
        return GRUForward(panels, self.input_side_bias(w, gates.dtype, G), b_hn, gates, states[0], inner.hin,
                          inner.rec, inner.keep_h, aux.hn, keep_tape, mask,
                          *operands, *self.plan(T, [panels.shape[0]], workers, gates, operands.rows()))

    def backward_job(self, w, tape, dout, da, carry, mask, workers, inner=None, low=False) -> GRUBackward:
        inner = self.plain(inner, tape.states, da.dtype)
        T, B, G = da.shape
        H = G // 3
        da_h = workspace.empty(da.shape, da.dtype)                  # [da_r, da_z, da_n ⊙ r]: the product's
        operands = self.backward_operands(w, da_h, low)
        panels = self.column_panels(w.weight_hh, operands)
        return GRUBackward(panels, tape.gates, tape.states[0], tape.aux.hn, dout, da, da_h,
                           workspace.empty((T, B, H), da.dtype), carry[0],
                           inner.rec, inner.keep_h, zoneout_share(inner, (B, H), da.dtype), mask,
                           *operands, *self.plan(T + 1, [panels.shape[0]], workers, da, operands.rows()))

    def weight_products(self, dw, tape, da, job: GRUBackward) -> list:
        """[dW_ih | db_ih] += DAᵀ [X | 1]; [dW_hh | db_hh] += DA_hᵀ [H_in | 1]."""
        return [self.input_product(dw, tape, da),
                (flat(job.da_h), [flat(tape.h_in()[:-1])], [dw.weight_hh], [dw.bias_hh])]

    @staticmethod
    def input_product(dw, tape, da) -> tuple:
        """[dW_ih | db_ih] += DAᵀ [X | 1] (b_hh is not on the input side: its own product's)."""
        return flat(da), [flat(tape.x)], [dw.weight_ih], [dw.bias_ih]


class ChoGRUJobs(GRUJobs):
    """Builds the job records of Cho's GRU (reset_after=False) from a layer's weights and tape."""

    Aux = ChoGRUAux
    product_gates = None        # r ⊙ h_in enters the second product: the recurrence stays float32

    def step_kind(self) -> int:
        from rnnkit.engine import step
        return step.GRU_CHO

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True, inner=None) -> ChoGRUForward:
        inner = self.plain(inner, states, gates.dtype)
        T, B, G = gates.shape
        H = G // 3
        panels, panels_n = pack_gates(w.weight_hh[:2 * H], 2), pack_gates(w.weight_hh[2 * H:], 1)
        return ChoGRUForward(panels, panels_n, self.input_side_bias(w, gates.dtype, G), gates, states[0], inner.hin,
                             inner.rec, inner.keep_h, aux.rh, keep_tape, mask,
                             *ABSENT, *self.plan(T, [panels.shape[0], panels_n.shape[0]], workers, gates))

    def backward_job(self, w, tape, dout, da, carry, mask, workers, inner=None) -> ChoGRUBackward:
        inner = self.plain(inner, tape.states, da.dtype)
        T, B, G = da.shape
        H = G // 3
        panels, panels_n = pack(w.weight_hh[:2 * H]), pack(w.weight_hh[2 * H:])
        return ChoGRUBackward(panels, panels_n, tape.gates, tape.states[0], dout, da,
                              workspace.empty((T, B, H), da.dtype), np.zeros((B, H), da.dtype), carry[0], inner.hin,
                              inner.rec, inner.keep_h, zoneout_share(inner, (B, H), da.dtype), mask,
                              *self.plan(T + 1, [panels.shape[0], panels_n.shape[0]], workers, da))

    def weight_products(self, dw, tape, da, job: ChoGRUBackward) -> list:
        """[dW_ih | db_ih] += DAᵀ [X | 1]; [dW_h{r,z} | db_h{r,z}] += DA_{r,z}ᵀ [H_in | 1],
        [dW_hn | db_hn] += DA_nᵀ [RH | 1]."""
        H = self.kernel.hidden_size
        d = flat(da)
        b_rz, b_n = (None, None) if dw.bias_hh is None else (dw.bias_hh[:2 * H], dw.bias_hh[2 * H:])
        return [self.input_product(dw, tape, da),
                (d[:, :2 * H], [flat(tape.h_in()[:-1])], [dw.weight_hh[:2 * H]], [b_rz]),
                (d[:, 2 * H:], [flat(tape.aux.rh)], [dw.weight_hh[2 * H:]], [b_n])]


@register_jobs(GRUKernel)
def gru_jobs(kernel: GRUKernel) -> Jobs:
    """The jobs of the kernel's form: PyTorch's (reset_after) or Cho's."""
    return GRUJobs(kernel) if kernel.reset_after else ChoGRUJobs(kernel)
