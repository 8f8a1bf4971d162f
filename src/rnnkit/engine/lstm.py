"""The LSTM's recurrences, compiled: the equations of :mod:`rnnkit.kernels.lstm`, step by step.

Forward, phase 0 = one panel of U units at step t (``gates`` holds ``x_t W_ihᵀ`` on entry and the
activations on exit; ``bias`` is b_ih + b_hh)::

    [a_i | a_f | a_g | a_o] = gates[t] + bias + h_{t-1} W_hhᵀ        (the tile: B × 4U)
    i = σ(a_i + w_ci ⊙ c_{t-1})    f = σ(a_f + w_cf ⊙ c_{t-1})    g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g      o = σ(a_o + w_co ⊙ c_t)        m_t = o ⊙ tanh(c_t)

and h_t = m_t, or with a projection, phase 1 = one panel of h's P columns: h_t = m_t W_hrᵀ.

Backward, tick s (t = T − 1 − s)::

    dh = dh_t + dout_t,  dc = dc_t                  (both 0 at a padded step)
    dm = dh  (or dh W_hr with a projection: the tile of phase 0)
    da_o = dm ⊙ tanh(c_t) ⊙ o(1 − o)
    dc  += dm ⊙ o ⊙ (1 − tanh²(c_t)) + da_o ⊙ w_co
    da_i = dc ⊙ g ⊙ i(1 − i)     da_f = dc ⊙ c_{t-1} ⊙ f(1 − f)     da_g = dc ⊙ i ⊙ (1 − g²)
    dc_{t-1} = dc ⊙ f + da_i ⊙ w_ci + da_f ⊙ w_cf
    dh_{t-1} = da_t W_hh                             (the tile)

Without a projection a tick is one phase over panels of h's units: the tile for dh_t (from the
step above), then step t's element-wise backward on the same units, so workers meet once per
tick. With one, phase 0 (panels of the H units) forms dm and the element-wise step, phase 1
(panels of h's P columns) forms dh_{t-1}. At a padded step (t ≥ length) the state passes through
unchanged, forward and backward.

Dropout inside the recurrence (:mod:`rnnkit.inner_dropout`): the products read h_in = m_h ⊙ h_{t-1}
(``hin``, written beside h_t), zoneout blends c_t ← c̃_t + k^c_t ⊙ (c_{t-1} − c̃_t) and the same for
h with k^h_t after the cell's step (c̃_t, h̃_t: its own update). Backward, the product's
dh_{t-1} is m_h ⊙ (da_t W_hh), and of the gradients dh̄_t, dc̄_t reaching h_t, c_t the cell's
step gets (1 − k_t) ⊙ ·, while k_t ⊙ · goes straight to the previous state (``zone_h``; for c
within the unit's own step).
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.gemm import gemm, pack, panel_product
from rnnkit.engine.jit import jit
from rnnkit.engine.layer import Jobs, zoneout_share
from rnnkit.engine.mixed import ABSENT, LowOperands, backward_product, recurrent_product, store_low
from rnnkit.engine.schedule import job_record, register_tasks
from rnnkit.engine.vector import lanes_of, vload, vstore
from rnnkit.kernels.base import flat
from rnnkit.kernels.lstm import LSTMAux, LSTMKernel, cell_updates
from rnnkit.kinds import register_jobs

NO_PANELS = (0, 0, 1)           # the shape of an absent panel set (no projection)


@job_record(extra=(LowOperands,))
class LSTMForward:
    panels: np.ndarray          # (P, H_out, 4U) W_hhᵀ, [i|f|g|o] of U units per panel (pack_gates)
    proj_panels: np.ndarray     # (P', H, NR) W_hrᵀ in column panels, or NO_PANELS
    bias: np.ndarray            # (4H,) b_ih + b_hh
    w_ci: np.ndarray            # (H,) peepholes, or (0,) without
    w_cf: np.ndarray
    w_co: np.ndarray
    gates: np.ndarray           # (T, B, 4H) in: x_t W_ihᵀ; out: i, f, g, o
    h: np.ndarray               # (T+1, B, H_out) h[0] given
    hin: np.ndarray             # (T+1, B, H_out) m_h ⊙ h_t, the products' operand (h itself without m_h)
    rec: np.ndarray             # (B, H_out) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H_out) zoneout's k^h_t, or (0, 0, 0)
    keep_c: np.ndarray          # (T, B, H) k^c_t, or (0, 0, 0)
    c: np.ndarray               # (T+1, B, H) c[0] given
    tanh_c: np.ndarray          # (T, B, H)
    m: np.ndarray               # (T, B, H) o ⊙ tanh(c) before the projection, or (0, 0, 0)
    tape: bool                  # store the gates and tanh(c) for backward (not in inference)
    mask: np.ndarray            # (T, B) bool: t < length; the plan: T steps, a phase per panel set


@job_record(extra=(LowOperands,))
class LSTMBackward:
    panels: np.ndarray          # (P, 4H, NR) W_hh in column panels (gemm.pack)
    proj_panels: np.ndarray     # (P', P, NR) W_hr in column panels, or NO_PANELS
    w_ci: np.ndarray
    w_cf: np.ndarray
    w_co: np.ndarray
    gates: np.ndarray           # (T, B, 4H) i, f, g, o
    c: np.ndarray               # (T+1, B, H)
    tanh_c: np.ndarray          # (T, B, H)
    dout: np.ndarray            # (T, B, H_out) gradient reaching the outputs
    da: np.ndarray              # (T, B, 4H) out: pre-activation gradients
    dh: np.ndarray              # (T, B, P) dL/dh_t (with a projection; dh[T−1] given), or (0, 0, 0)
    carry_h: np.ndarray         # (B, H_out) in: dL/dh_T; out: dL/dh_0
    carry_c: np.ndarray         # (B, H) in: dL/dc_T; out: dL/dc_0
    rec: np.ndarray             # (B, H_out) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H_out) k^h_t, or (0, 0, 0)
    keep_c: np.ndarray          # (T, B, H) k^c_t, or (0, 0, 0)
    zone_h: np.ndarray          # (B, H_out) k^h_t ⊙ dh̄_t of the step in hand (zoneout), or (0, 0)
    mask: np.ndarray            # the plan: T + 1 ticks of one phase, or T of two with a projection


@jit(inline=True)
def cell_forward(a_i, a_f, a_g, a_o, c_prev, w_ci, w_cf, w_co, peephole):
    """One step of the cell on one unit or a vector of units; returns i, f, g, o, c_t, tanh(c_t)."""
    if peephole:
        a_i = a_i + w_ci * c_prev
        a_f = a_f + w_cf * c_prev
    i, f, g = sigmoid(a_i), sigmoid(a_f), tanh(a_g)
    c = f * c_prev + i * g
    if peephole:
        a_o = a_o + w_co * c
    o = sigmoid(a_o)
    return i, f, g, o, c, tanh(c)


@jit(inline=True)
def cell_backward(dm, dc, i, f, g, o, tc, c_prev, w_ci, w_cf, w_co, peephole):
    """One step back on one unit or a vector of units; returns da_i, da_f, da_g, da_o, dc_{t-1}."""
    da_o = dm * tc * o * (1.0 - o)
    dc = dc + dm * o * (1.0 - tc * tc)
    if peephole:
        dc = dc + da_o * w_co
    da_i = dc * g * i * (1.0 - i)
    da_f = dc * c_prev * f * (1.0 - f)
    da_g = dc * i * (1.0 - g * g)
    dc_prev = dc * f
    if peephole:
        dc_prev = dc_prev + da_i * w_ci + da_f * w_cf
    return da_i, da_f, da_g, da_o, dc_prev


# -- forward ---------------------------------------------------------------------------------------

@jit(inline=True)
def forward_units(job, t, b, j, n, acc, aj):
    """Step t of row b for the n ≤ L units from j; their recurrent terms are acc[aj + k·U] (gate k)."""
    T, B, G = job.gates.shape
    H, U = G // 4, job.panels.shape[2] // 4
    row, prev, new = (t * B + b) * G, (t * B + b) * H, ((t + 1) * B + b) * H
    a_i = vload(job.gates, row + j, n) + vload(job.bias, j, n) + vload(acc, aj, n)
    a_f = vload(job.gates, row + H + j, n) + vload(job.bias, H + j, n) + vload(acc, aj + U, n)
    a_g = (vload(job.gates, row + 2 * H + j, n) + vload(job.bias, 2 * H + j, n)
           + vload(acc, aj + 2 * U, n))
    a_o = (vload(job.gates, row + 3 * H + j, n) + vload(job.bias, 3 * H + j, n)
           + vload(acc, aj + 3 * U, n))
    peephole = job.w_ci.shape[0] > 0
    c_prev = vload(job.c, prev + j, n)
    w_ci = vload(job.w_ci, j, n) if peephole else c_prev
    w_cf = vload(job.w_cf, j, n) if peephole else c_prev
    w_co = vload(job.w_co, j, n) if peephole else c_prev
    i, f, g, o, c, tc = cell_forward(a_i, a_f, a_g, a_o, c_prev, w_ci, w_cf, w_co, peephole)
    if job.tape:
        vstore(job.gates, row + j, i, n)
        vstore(job.gates, row + H + j, f, n)
        vstore(job.gates, row + 2 * H + j, g, n)
        vstore(job.gates, row + 3 * H + j, o, n)
        vstore(job.tanh_c, prev + j, tc, n)
    if job.keep_c.shape[0] > 0:
        c = c + vload(job.keep_c, prev + j, n) * (c_prev - c)            # zoneout
    vstore(job.c, new + j, c if job.mask[t, b] else c_prev, n)         # padded: state unchanged
    if job.m.shape[0] > 0:
        vstore(job.m, prev + j, o * tc, n)                                # projected in phase 1
    else:
        new_h(job, t, b, j, n, o * tc)


@jit(inline=True)
def new_h(job, t, b, j, n, h):
    """h_t of row b, the n ≤ L columns of h from j: the cell's h̃ (zoned out), h_{t-1} at a padded
    step; and m_h ⊙ h_t for the next step's products."""
    K = job.h.shape[2]
    prev, new = (t * job.h.shape[1] + b) * K, ((t + 1) * job.h.shape[1] + b) * K
    if job.keep_h.shape[0] > 0:                      # zoneout: h_t = h̃ + k (h_{t-1} − h̃)
        h_prev = vload(job.h, prev + j, n)
        h = h + vload(job.keep_h, prev + j, n) * (h_prev - h)
        h = h if job.mask[t, b] else h_prev
    elif not job.mask[t, b]:
        h = vload(job.h, prev + j, n)
    vstore(job.h, new + j, h, n)
    if job.rec.shape[0] > 0:
        vstore(job.hin, new + j, h * vload(job.rec, b * K + j, n), n)


@jit(refcount=False)
def forward_panel(job, t, phase, p, worker):
    """Step t: phase 0 for the U units of panel p (the tile, then the cell), or phase 1, the
    projection h_t = m_t W_hrᵀ for h's columns of panel p; all B rows."""
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, K = G // 4, job.h.shape[2]
    if phase == 0:
        U = job.panels.shape[2] // 4                              # = L: a vector of units per gate
        recurrent_product(job, t, p, acc)
        for b in range(B):
            forward_units(job, t, b, p * U, min(U, H - p * U), acc, b * acc.shape[1])
        if job.m.shape[0] == 0:
            store_low(job, job.hin, t + 1, p * U, min(U, H - p * U))        # h_t: step t + 1's operand
        return
    NR = job.proj_panels.shape[2]
    j0, n = p * NR, min(NR, K - p * NR)
    panel_product(job.m, t * B * H, H, B, job.proj_panels, p, acc)
    L = lanes_of(job.h)
    for b in range(B):
        for k in range(0, n, L):
            new_h(job, t, b, j0 + k, min(L, n - k), vload(acc, b * acc.shape[1] + k, min(L, n - k)))
    store_low(job, job.hin, t + 1, j0, n)


# -- backward --------------------------------------------------------------------------------------

@jit(inline=True)
def backward_units(job, t, b, j, n, acc, aj):
    """Step t's backward for row b, the n ≤ L units from j; with a projection, dm = acc[aj:]."""
    T, B, G = job.gates.shape
    H, K = G // 4, job.carry_h.shape[1]
    row, prev = (t * B + b) * G, (t * B + b) * H
    valid = job.mask[t, b]
    if job.dh.shape[0] > 0:
        dm = vload(acc, aj, n)                       # (zoneout's share already in job.dh: phase 1)
    else:
        dm = vload(job.carry_h, b * K + j, n) + vload(job.dout, (t * B + b) * K + j, n)
    dc = vload(job.carry_c, b * H + j, n)
    if not valid:                                    # padded: no gradient enters the step
        dm, dc = dm * 0.0, dc * 0.0
    if job.keep_h.shape[0] > 0 and job.dh.shape[0] == 0:     # zoneout: k ⊙ dh̄ straight to h_{t-1}
        k = vload(job.keep_h, prev + j, n)
        vstore(job.zone_h, b * K + j, k * dm, n)
        dm = dm * (1.0 - k)
    zc = dc * 0.0
    if job.keep_c.shape[0] > 0:                      # ... and k^c ⊙ dc̄ straight to c_{t-1}
        kc = vload(job.keep_c, prev + j, n)
        zc = kc * dc
        dc = dc * (1.0 - kc)
    i, f = vload(job.gates, row + j, n), vload(job.gates, row + H + j, n)
    g, o = vload(job.gates, row + 2 * H + j, n), vload(job.gates, row + 3 * H + j, n)
    tc, c_prev = vload(job.tanh_c, prev + j, n), vload(job.c, prev + j, n)
    peephole = job.w_ci.shape[0] > 0
    w_ci = vload(job.w_ci, j, n) if peephole else tc
    w_cf = vload(job.w_cf, j, n) if peephole else tc
    w_co = vload(job.w_co, j, n) if peephole else tc
    da_i, da_f, da_g, da_o, dc_prev = cell_backward(dm, dc, i, f, g, o, tc, c_prev, w_ci, w_cf, w_co,
                                                    peephole)
    vstore(job.da, row + j, da_i, n)
    vstore(job.da, row + H + j, da_f, n)
    vstore(job.da, row + 2 * H + j, da_g, n)
    vstore(job.da, row + 3 * H + j, da_o, n)
    if valid:
        vstore(job.carry_c, b * H + j, dc_prev + zc, n)


@jit(inline=True)
def carry_from_product(job, t, j0, n, acc):
    """dh_t = m_h ⊙ (da_{t+1} W_hh) (the product in acc) + k_{t+1} ⊙ dh̄_{t+1} for the valid rows of
    step t + 1; the others keep the carry."""
    T, B, G = job.gates.shape
    K = job.carry_h.shape[1]
    L = lanes_of(job.carry_h)
    for b in range(B):
        if job.mask[t + 1, b]:
            for u in range(0, n, L):                 # times m_h, plus zoneout's share k ⊙ dh̄
                k, j = min(L, n - u), b * K + j0 + u
                d = vload(acc, b * acc.shape[1] + u, k)
                if job.rec.shape[0] > 0:
                    d = d * vload(job.rec, j, k)
                if job.zone_h.shape[0] > 0:
                    d = d + vload(job.zone_h, j, k)
                vstore(job.carry_h, j, d, k)


@jit(refcount=False)
def backward_panel(job, s, phase, p, worker):
    """Tick s (t = T − 1 − s) for panel p; see the module docstring for the two layouts."""
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, K = G // 4, job.carry_h.shape[1]
    NR = job.panels.shape[2]
    projected = job.dh.shape[0] > 0
    if not projected:                            # one phase: dh_t from the step above, then step t
        t = T - 1 - s                            # −1 at the last tick: only dL/dh_0 is left to form
        u0, n = p * NR, min(NR, H - p * NR)
        if s > 0:
            backward_product(job, job.da, t + 1, p, acc)
            carry_from_product(job, t, u0, n, acc)
        if t >= 0:
            for b in range(B):
                backward_row(job, t, b, u0, n, acc, b * acc.shape[1])
            for g in range(4):
                store_low(job, job.da, t, g * H + u0, n)              # da_t: the next tick's operand
        return
    t = T - 1 - s
    if phase == 0:                               # dm = dh_t W_hr for the panel's H units, then step t
        NRp = job.proj_panels.shape[2]
        u0, n = p * NRp, min(NRp, H - p * NRp)
        panel_product(job.dh, t * B * K, K, B, job.proj_panels, p, acc)
        for b in range(B):
            backward_row(job, t, b, u0, n, acc, b * acc.shape[1])
        for g in range(4):
            store_low(job, job.da, t, g * H + u0, n)
        return
    j0, n = p * NR, min(NR, K - p * NR)          # phase 1: dh_{t-1} = da_t W_hh for h's columns
    backward_product(job, job.da, t, p, acc)
    carry_from_product(job, t - 1, j0, n, acc)
    if t > 0:
        for b in range(B):
            valid = job.mask[t - 1, b]
            for k in range(n):
                j = j0 + k
                d = job.carry_h[b, j] + job.dout[t - 1, b, j] if valid else 0.0
                if job.keep_h.shape[0] > 0:          # zoneout: k ⊙ dh̄ straight to h_{t-2}
                    k_h = job.keep_h[t - 1, b, j]
                    job.zone_h[b, j] = k_h * d
                    d = d * (1.0 - k_h)
                job.dh[t - 1, b, j] = d


@jit(inline=True)
def backward_row(job, t, b, u0, n, acc, aj):
    """Step t's backward for row b, the n units from u0, a vector at a time."""
    L = lanes_of(job.gates)
    for u in range(0, n, L):
        backward_units(job, t, b, u0 + u, min(L, n - u), acc, aj + u)


register_tasks({LSTMForward: forward_panel, LSTMBackward: backward_panel})


# -- the layer's side ------------------------------------------------------------------------------

@jit
def peephole_grads(da, c, c_new, g_ci, g_cf, g_co):
    """dw_ci += Σ da_i ⊙ c_{t-1},  dw_cf += Σ da_f ⊙ c_{t-1},  dw_co += Σ da_o ⊙ c̃_t (padded: da = 0;
    c_new (T, B, H) the cell's own updates: c_t but for zoneout's blend)."""
    T, B, G = da.shape
    H = G // 4
    for t in range(T):
        for b in range(B):
            for j in range(H):
                g_ci[j] += da[t, b, j] * c[t, b, j]
                g_cf[j] += da[t, b, H + j] * c[t, b, j]
                g_co[j] += da[t, b, 3 * H + j] * c_new[t, b, j]


@register_jobs(LSTMKernel)
class LSTMJobs(Jobs):
    """Builds the LSTM's job records from a layer's weights and tape (:mod:`rnnkit.engine.layer`)."""

    product_gates = 4

    def low_gates(self, precision: str) -> int | None:
        """With a projection, h_t = m_t W_hrᵀ is unbounded: no int8 recurrence (float32)."""
        return None if precision == "int8" and self.kernel.proj_size else 4

    def step_kind(self) -> int | None:
        """The compiled streaming step (:mod:`rnnkit.engine.step`) computes the LSTM without a projection."""
        from rnnkit.engine import step
        return None if self.kernel.proj_size else step.LSTM

    def new_aux(self, steps: int, batch: int, dtype) -> LSTMAux:
        shape = (steps, batch, self.kernel.hidden_size)
        return LSTMAux(workspace.empty(shape, dtype), workspace.empty(shape, dtype) if self.kernel.proj_size else None)

    def _peepholes(self, w, dtype) -> tuple:
        none = np.zeros(0, dtype)
        return (w.weight_ci, w.weight_cf, w.weight_co) if self.kernel.peephole else (none, none, none)

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True, inner=None,
                    operands=ABSENT) -> LSTMForward:
        inner = self.plain(inner, states, gates.dtype)
        T, B, G = gates.shape
        panels = self.recurrent_panels(w.weight_hh, 4, operands)
        if self.kernel.proj_size:
            proj, m = pack(w.weight_hr, trans_b=True), aux.m
            chunks = [panels.shape[0], proj.shape[0]]
        else:
            proj, m = np.zeros(NO_PANELS, gates.dtype), np.zeros((0, 0, 0), gates.dtype)
            chunks = [panels.shape[0]]
        return LSTMForward(panels, proj, self.input_side_bias(w, gates.dtype, G), *self._peepholes(w, gates.dtype),
                           gates, states[0], inner.hin, inner.rec, inner.keep_h, inner.keep_c,
                           states[1], aux.tanh_c, m, keep_tape, mask,
                           *operands, *self.plan(T, chunks, workers, gates, operands.rows()))

    def backward_job(self, w, tape, dout, da, carry, mask, workers, inner=None, low=False) -> LSTMBackward:
        inner = self.plain(inner, tape.states, da.dtype)
        T, B, G = da.shape
        K = carry[0].shape[1]
        operands = self.backward_operands(w, da, low)
        panels = self.column_panels(w.weight_hh, operands)
        zone = zoneout_share(inner, (B, K), da.dtype)
        if self.kernel.proj_size:
            proj = pack(w.weight_hr)
            dh = workspace.empty((T, B, self.kernel.proj_size), da.dtype)
            dh[T - 1] = (carry[0] + dout[T - 1]) * mask[T - 1][:, None]        # dL/dh of the last step
            if inner.keep_h.shape[0]:                                          # zoneout's share of it
                np.multiply(inner.keep_h[T - 1], dh[T - 1], out=zone)
                dh[T - 1] *= 1.0 - inner.keep_h[T - 1]
            steps, chunks = T, [proj.shape[0], panels.shape[0]]
        else:
            proj, dh = np.zeros(NO_PANELS, da.dtype), np.zeros((0, 0, 0), da.dtype)
            steps, chunks = T + 1, [panels.shape[0]]
        return LSTMBackward(panels, proj, *self._peepholes(w, da.dtype), tape.gates, tape.states[1],
                            tape.aux.tanh_c, dout, da, dh, carry[0], carry[1], inner.rec, inner.keep_h,
                            inner.keep_c, zone, mask, *operands, *self.plan(steps, chunks, workers, da, operands.rows()))

    def other_grads(self, dw, tape, da, job: LSTMBackward) -> None:
        """Peepholes: dw_ci += Σ DA_i ⊙ C_prev, …; projection: dW_hr += DHᵀ M."""
        if self.kernel.peephole:
            c_new = np.ascontiguousarray(cell_updates(tape, self.kernel.hidden_size))      # (T, B, H) c̃_t
            peephole_grads(da, tape.states[1], c_new, dw.weight_ci, dw.weight_cf, dw.weight_co)
        if self.kernel.proj_size:
            gemm(flat(job.dh), flat(tape.aux.m), dw.weight_hr, trans_a=True, accumulate=True)
