"""The GRU's recurrences, compiled, in both forms: the equations of :mod:`rnnkit.kernels.gru`.

Forward (``gates`` holds ``x_t W_ihᵀ`` on entry and r, z, n on exit; ``bias`` is b_ih plus
[b_hr, b_hz] and, in Cho's form, b_hn)::

    reset_after (one phase; a panel holds [r | z | n] of U units):
        [s_r | s_z | s_n] = h_{t-1} W_hhᵀ                      (the tile)
        r = σ(a_r + s_r)   z = σ(a_z + s_z)   hn = s_n + b_hn   n = tanh(a_n + r ⊙ hn)
    Cho 2014 (two phases: n needs r ⊙ h_{t-1} of every unit):
        phase 0: [s_r | s_z] = h_{t-1} W_h{r,z}ᵀ;  r, z as above;  rh = r ⊙ h_{t-1}
        phase 1: n = tanh(a_n + rh W_hnᵀ)
    h_t = n + z ⊙ (h_{t-1} − n)

with recurrent dropout the products read h_in = m_h ⊙ h_{t-1} (kept as ``hin``, written beside h_t),
Cho's rh = r ⊙ h_in; zoneout then blends h_t ← h_t + k_t ⊙ (h_{t-1} − h_t) (:mod:`rnnkit.inner_dropout`).

Backward (``dh`` = dL/dh_t, the carried gradient plus dout_t; 0 at a padded step)::

    da_n = dh ⊙ (1 − z) ⊙ (1 − n²)        da_z = dh ⊙ (h_{t-1} − n) ⊙ z(1 − z)
    reset_after:  da_r = da_n ⊙ hn ⊙ r(1 − r)
                  dh_{t-1} = dh ⊙ z + m_h ⊙ ([da_r, da_z, da_n ⊙ r] W_hh)    (one phase per tick)
    Cho 2014:     drh = da_n W_hn,  da_r = drh ⊙ h_in ⊙ r(1 − r)            (phase 1)
                  dh_{t-1} = dh ⊙ z + m_h ⊙ (drh ⊙ r + [da_r, da_z] W_h{r,z})  (phase 0 of the next tick)

Under zoneout ``dh`` above is (1 − k_t) ⊙ dh̄_t (dh̄_t the carried gradient plus dout_t) and
k_t ⊙ dh̄_t is added to dh_{t-1} (``zone_h``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba.extending import overload

from rnnkit.engine import workspace
from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.gemm import pack
from rnnkit.engine.jit import jit
from rnnkit.engine.layer import inner_arrays
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.schedule import counters_for, lanes_of, panel_product, recurrence_scratch, task
from rnnkit.engine.vector import vload, vstore
from rnnkit.kernels.base import flat
from rnnkit.kernels.gru import GRUKernel
from rnnkit.kinds import register_jobs


class GRUAux(NamedTuple):
    """What the engine's GRU tape keeps besides gates and states."""

    hn: np.ndarray              # (T, B, H) h_{t-1} W_hnᵀ + b_hn (reset_after), else (0, 0, 0)
    rh: np.ndarray              # (T, B, H) r ⊙ h_{t-1} (Cho's form), else (0, 0, 0)


class GRUForward(NamedTuple):
    panels: np.ndarray          # reset_after: W_hhᵀ as [r|z|n] panels; Cho: W_h{r,z}ᵀ as [r|z]
    panels_n: np.ndarray        # Cho: W_hnᵀ panels; reset_after: unused (0, 0, 1)
    bias: np.ndarray            # (3H,)
    b_hn: np.ndarray            # (H,) (zeros in Cho's form: its b_hn is in ``bias``)
    reset_after: bool
    gates: np.ndarray           # (T, B, 3H) in: x_t W_ihᵀ; out: r, z, n
    h: np.ndarray               # (T+1, B, H)
    hin: np.ndarray             # (T+1, B, H) m_h ⊙ h_t, the products' operand (h itself without m_h)
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) zoneout's k_t, or (0, 0, 0)
    hn: np.ndarray
    rh: np.ndarray
    tape: bool                  # store n (and hn) for backward (not in inference)
    mask: np.ndarray
    steps: int
    chunks: np.ndarray          # panels per phase
    counters: np.ndarray
    scratch: np.ndarray


class GRUBackward(NamedTuple):
    panels: np.ndarray          # W_hh (reset_after) or W_h{r,z} (Cho) in column panels
    panels_n: np.ndarray        # Cho: W_hn in column panels
    reset_after: bool
    gates: np.ndarray           # (T, B, 3H) r, z, n
    h: np.ndarray               # (T+1, B, H)
    hn: np.ndarray
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, 3H) out: [da_r, da_z, da_n]
    da_h: np.ndarray            # (T, B, 3H) out (reset_after): [da_r, da_z, da_n ⊙ r]
    dh: np.ndarray              # (T, B, H) out: dL/dh_t
    part: np.ndarray            # (B, H) Cho: dh ⊙ z + drh ⊙ r of the step in hand
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    hin: np.ndarray             # (T+1, B, H) m_h ⊙ h_t (h itself without m_h)
    rec: np.ndarray             # (B, H) m_h, or (0, 0)
    keep_h: np.ndarray          # (T, B, H) k_t, or (0, 0, 0)
    zone_h: np.ndarray          # (B, H) k_t ⊙ dh̄_t of the step in hand (zoneout), or (0, 0)
    mask: np.ndarray
    steps: int                  # T + 1 ticks
    chunks: np.ndarray
    counters: np.ndarray
    scratch: np.ndarray


# -- forward ---------------------------------------------------------------------------------------

@jit(inline=True)
def forward_units(job, t, b, j, n, z, zj):
    """reset_after: step t of row b for the n ≤ L units from j (recurrent terms z[zj + k·U])."""
    T, B, G = job.gates.shape
    H, U = G // 3, job.panels.shape[2] // 3
    row, prev, new = (t * B + b) * G, (t * B + b) * H, ((t + 1) * B + b) * H
    r = sigmoid(vload(job.gates, row + j, n) + vload(job.bias, j, n) + vload(z, zj, n))
    u = sigmoid(vload(job.gates, row + H + j, n) + vload(job.bias, H + j, n)
                + vload(z, zj + U, n))                                         # the update gate z
    hn = vload(z, zj + 2 * U, n) + vload(job.b_hn, j, n)
    g = tanh(vload(job.gates, row + 2 * H + j, n) + vload(job.bias, 2 * H + j, n) + r * hn)
    h_prev = vload(job.h, prev + j, n)
    if job.tape:
        vstore(job.gates, row + j, r, n)
        vstore(job.gates, row + H + j, u, n)
        vstore(job.gates, row + 2 * H + j, g, n)
        vstore(job.hn, prev + j, hn, n)
    new_state(job, t, b, j, n, g + u * (h_prev - g), h_prev)


@jit(inline=True)
def gates_units(job, t, b, j, n, z, zj):
    """Cho, phase 0: r, z and rh = r ⊙ h_{t-1} of row b for the n ≤ L units from j."""
    T, B, G = job.gates.shape
    H, U = G // 3, job.panels.shape[2] // 2
    row, prev = (t * B + b) * G, (t * B + b) * H
    r = sigmoid(vload(job.gates, row + j, n) + vload(job.bias, j, n) + vload(z, zj, n))
    u = sigmoid(vload(job.gates, row + H + j, n) + vload(job.bias, H + j, n)
                + vload(z, zj + U, n))
    vstore(job.gates, row + j, r, n)
    vstore(job.gates, row + H + j, u, n)
    vstore(job.rh, prev + j, r * vload(job.hin, prev + j, n), n)


@jit(inline=True)
def candidate_units(job, t, b, j, n, z, zj):
    """Cho, phase 1: n = tanh(a_n + rh W_hnᵀ) and h_t of row b for the n ≤ L units from j."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev, new = (t * B + b) * G, (t * B + b) * H, ((t + 1) * B + b) * H
    g = tanh(vload(job.gates, row + 2 * H + j, n) + vload(job.bias, 2 * H + j, n)
             + vload(z, zj, n))
    u = vload(job.gates, row + H + j, n)
    h_prev = vload(job.h, prev + j, n)
    if job.tape:
        vstore(job.gates, row + 2 * H + j, g, n)
    new_state(job, t, b, j, n, g + u * (h_prev - g), h_prev)


@jit(inline=True)
def new_state(job, t, b, j, n, h, h_prev):
    """h_t of row b, the n ≤ L units from j: the cell's h (zoned out), h_{t-1} at a padded step;
    and m_h ⊙ h_t for the next step's products."""
    T, B, G = job.gates.shape
    H = G // 3
    row, new = (t * B + b) * H, ((t + 1) * B + b) * H
    if job.keep_h.shape[0] > 0:
        h = h + vload(job.keep_h, row + j, n) * (h_prev - h)
    h = h if job.mask[t, b] else h_prev
    vstore(job.h, new + j, h, n)
    if job.rec.shape[0] > 0:
        vstore(job.hin, new + j, h * vload(job.rec, b * H + j, n), n)


@jit(refcount=False)
def forward_panel(job, t, phase, p, acc):
    """Step t, phase ``phase``, for the units of panel p, all B rows."""
    T, B, G = job.gates.shape
    H = G // 3
    panels = job.panels_n if phase == 1 else job.panels
    U = panels.shape[2] // (1 if phase == 1 else (3 if job.reset_after else 2))
    u0, n = p * U, min(U, H - p * U)
    if phase == 1:
        panel_product(job.rh, t * B * H, H, B, panels, p, acc)
    else:
        panel_product(job.hin, t * B * H, H, B, panels, p, acc)
    for b in range(B):
        forward_row(job, t, b, phase, u0, n, acc, b * acc.shape[1])


@jit(inline=True)
def forward_row(job, t, b, phase, u0, n, z, zj):
    """Row b's n units from u0 at step t, phase ``phase``, a vector at a time."""
    L = lanes_of(job.gates)
    for u in range(0, n, L):
        k = min(L, n - u)
        if job.reset_after:
            forward_units(job, t, b, u0 + u, k, z, zj + u)
        elif phase == 0:
            gates_units(job, t, b, u0 + u, k, z, zj + u)
        else:
            candidate_units(job, t, b, u0 + u, k, z, zj + u)


# -- backward --------------------------------------------------------------------------------------

@jit(inline=True)
def backward_units(job, t, b, j, n):
    """dh, da_n, da_z (and reset_after's da_r) of step t, row b, the n ≤ L units from j."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    dh = vload(job.carry_h, b * H + j, n) + vload(job.dout, prev + j, n)
    if not job.mask[t, b]:
        dh = dh * 0.0                                     # padded: no gradient enters the step
    if job.keep_h.shape[0] > 0:                           # zoneout: k ⊙ dh̄ straight to h_{t-1}
        k = vload(job.keep_h, prev + j, n)
        vstore(job.zone_h, b * H + j, k * dh, n)
        dh = dh * (1.0 - k)
    r, u = vload(job.gates, row + j, n), vload(job.gates, row + H + j, n)
    g, h_prev = vload(job.gates, row + 2 * H + j, n), vload(job.h, prev + j, n)
    da_n = dh * (1.0 - u) * (1.0 - g * g)
    da_z = dh * (h_prev - g) * u * (1.0 - u)
    vstore(job.dh, prev + j, dh, n)
    vstore(job.da, row + H + j, da_z, n)
    vstore(job.da, row + 2 * H + j, da_n, n)
    if job.reset_after:
        da_r = da_n * vload(job.hn, prev + j, n) * r * (1.0 - r)
        vstore(job.da, row + j, da_r, n)
        vstore(job.da_h, row + j, da_r, n)
        vstore(job.da_h, row + H + j, da_z, n)
        vstore(job.da_h, row + 2 * H + j, da_n * r, n)


@jit(inline=True)
def reset_units(job, t, b, j, n, drh, dj):
    """Cho: da_r = drh ⊙ h_{t-1} ⊙ r(1 − r) and part = dh ⊙ z + drh ⊙ r, row b, units from j."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    r, u = vload(job.gates, row + j, n), vload(job.gates, row + H + j, n)
    d = vload(drh, dj, n)
    vstore(job.da, row + j, d * vload(job.hin, prev + j, n) * r * (1.0 - r), n)
    dr = d * r * vload(job.rec, b * H + j, n) if job.rec.shape[0] > 0 else d * r
    vstore(job.part, b * H + j, vload(job.dh, prev + j, n) * u + dr, n)


@jit(refcount=False)
def backward_panel(job, s, phase, p, acc):
    """Tick s (t = T − 1 − s), phase ``phase``, for the NR units of panel p."""
    T, B, G = job.gates.shape
    H = G // 3
    NR = job.panels.shape[2]
    u0, n = p * NR, min(NR, H - p * NR)
    t = T - 1 - s
    if phase == 0:
        if s > 0:                                        # dh_t from step t + 1; padded rows keep it
            src = job.da_h if job.reset_after else job.da
            panel_product(src, (t + 1) * B * G, G, B, job.panels, p, acc)
            for b in range(B):
                if job.mask[t + 1, b]:
                    for k in range(n):
                        j = u0 + k
                        rest = (job.dh[t + 1, b, j] * job.gates[t + 1, b, H + j] if job.reset_after
                                else job.part[b, j])
                        d = acc[b, k] * job.rec[b, j] if job.rec.shape[0] > 0 else acc[b, k]
                        zone = job.zone_h[b, j] if job.zone_h.shape[0] > 0 else 0.0
                        job.carry_h[b, j] = d + rest + zone
        if t >= 0:
            for b in range(B):
                backward_row(job, t, b, u0, n)
    elif t >= 0:                                         # Cho, phase 1: drh = da_n W_hn
        panel_product(job.da, t * B * G + 2 * H, G, B, job.panels_n, p, acc)
        for b in range(B):
            reset_row(job, t, b, u0, n, acc, b * acc.shape[1])


@jit(inline=True)
def backward_row(job, t, b, u0, n):
    """Row b's n units from u0, step t's backward, a vector at a time."""
    L = lanes_of(job.gates)
    for u in range(0, n, L):
        backward_units(job, t, b, u0 + u, min(L, n - u))


@jit(inline=True)
def reset_row(job, t, b, u0, n, drh, dj):
    """Cho: row b's n units from u0, the reset gate's backward, a vector at a time."""
    L = lanes_of(job.gates)
    for u in range(0, n, L):
        reset_units(job, t, b, u0 + u, min(L, n - u), drh, dj + u)


@overload(task)
def _gru_task(job, step, phase, chunk, worker):
    if job.instance_class is GRUForward:
        return lambda job, step, phase, chunk, worker: forward_panel(job, step, phase, chunk, job.scratch[worker])
    if job.instance_class is GRUBackward:
        return lambda job, step, phase, chunk, worker: backward_panel(job, step, phase, chunk,
                                                                      job.scratch[worker])
    return None


# -- the layer's side ------------------------------------------------------------------------------

@register_jobs(GRUKernel)
class GRUJobs:
    """Builds the GRU's job records from a layer's weights and tape (:mod:`rnnkit.engine.layer`)."""

    def __init__(self, kernel: GRUKernel) -> None:
        self.kernel = kernel
        self.reset_after = kernel.reset_after

    def step_kind(self) -> int:
        from rnnkit.engine import step
        return step.GRU if self.reset_after else step.GRU_CHO

    def new_aux(self, steps: int, batch: int, dtype) -> GRUAux:
        shape, none = (steps, batch, self.kernel.hidden_size), (0, 0, 0)
        return GRUAux(workspace.empty(shape if self.reset_after else none, dtype),
                      workspace.empty(none if self.reset_after else shape, dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True, inner=None) -> GRUForward:
        inner = inner or inner_arrays(None, states, gates.dtype)          # no masks: the plain cell
        T, B, G = gates.shape
        H = G // 3
        bias = self.kernel.input_side_bias(w)
        bias = np.zeros(G, gates.dtype) if bias is None else bias
        b_hn = w.bias_hh[2 * H:] if (self.reset_after and w.bias_hh is not None) else np.zeros(H, gates.dtype)
        if self.reset_after:
            panels, panels_n = pack_gates(w.weight_hh, 3), np.zeros((0, 0, 1), gates.dtype)
            chunks = [panels.shape[0]]
        else:
            panels, panels_n = pack_gates(w.weight_hh[:2 * H], 2), pack_gates(w.weight_hh[2 * H:], 1)
            chunks = [panels.shape[0], panels_n.shape[0]]
        return GRUForward(panels, panels_n, bias, b_hn, self.reset_after, gates, states[0], inner.hin, inner.rec,
                          inner.keep_h, aux.hn, aux.rh, keep_tape, mask, T, np.array(chunks), counters_for(T, len(chunks), workers),
                          recurrence_scratch(workers, B, gates.dtype))

    def backward_job(self, w, tape, dout, da, carry, mask, workers, inner=None) -> GRUBackward:
        inner = inner or inner_arrays(None, tape.states, da.dtype)
        T, B, G = da.shape
        H = G // 3
        if self.reset_after:
            panels, panels_n = pack(w.weight_hh), np.zeros((0, 0, 1), da.dtype)
            da_h = workspace.empty(da.shape, da.dtype)
            chunks = [panels.shape[0]]
        else:
            panels, panels_n = pack(w.weight_hh[:2 * H]), pack(w.weight_hh[2 * H:])
            da_h = np.empty((0, 0, 0), da.dtype)
            chunks = [panels.shape[0], panels_n.shape[0]]
        return GRUBackward(panels, panels_n, self.reset_after, tape.gates, tape.states[0], tape.aux.hn, dout,
                           da, da_h, workspace.empty((T, B, H), da.dtype), np.zeros((B, H), da.dtype), carry[0],
                           inner.hin, inner.rec, inner.keep_h,
                           np.zeros((B, H) if inner.keep_h.shape[0] else (0, 0), da.dtype), mask,
                           T + 1, np.array(chunks), counters_for(T + 1, len(chunks), workers),
                           recurrence_scratch(workers, B, da.dtype))

    def weight_products(self, dw, tape, da, job: GRUBackward) -> list:
        """dW_ih, db_ih from DAᵀ [X | 1]; then reset_after: [dW_hh | db_hh] += DA_hᵀ [H_in | 1];
        Cho: [dW_h{r,z} | db_h{r,z}] += DA_{r,z}ᵀ [H_in | 1], [dW_hn | db_hn] += DA_nᵀ [RH | 1]."""
        H = self.kernel.hidden_size
        h_prev, d = flat(tape.h_in()[:-1]), flat(da)
        products = [(d, [flat(tape.x)], [dw.weight_ih], [dw.bias_ih])]
        if self.reset_after:
            return products + [(flat(job.da_h), [h_prev], [dw.weight_hh], [dw.bias_hh])]
        b_rz, b_n = (None, None) if dw.bias_hh is None else (dw.bias_hh[:2 * H], dw.bias_hh[2 * H:])
        return products + [(d[:, :2 * H], [h_prev], [dw.weight_hh[:2 * H]], [b_rz]),
                           (d[:, 2 * H:], [flat(tape.aux.rh)], [dw.weight_hh[2 * H:]], [b_n])]

    def input_side_da(self, da, job) -> np.ndarray:
        """The gradient reaching x_t W_ihᵀ (dx = it · W_ih): DA itself."""
        return da

    def other_grads(self, dw, tape, da, job) -> None:
        """The GRU has no other parameters."""
