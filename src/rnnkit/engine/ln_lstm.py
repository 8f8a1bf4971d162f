"""The layer-normalised LSTM's recurrences, compiled: :class:`rnnkit.kernels.lstm.LayerNormLSTMKernel`.

LN needs statistics over *all* of a row — the 4H values of the recurrent product, the H units of
the cell state — while a thread computes a panel of units; so a step is two phases (the threads
meet twice a step instead of once), and the work that needs a whole row is done where the row is
complete anyway. Forward, step t (``gates`` holds γ_ih ⊙ x̂ + b_ih + b_hh on entry, done for all
steps at once before the recurrence, :mod:`.layer_norm`):

    phase 0, panel p:  h_{t-1} = o_{t-1} ⊙ tanh(γ_c ⊙ ĉ_{t-1} + β_c) for the *whole* row, once per
                       thread and step, into the thread's own buffer (μ, r of c_{t-1} from the
                       panels' partial sums; B·H values, against the B·H·4H of the product);
                       the product z = h_{t-1} W_hhᵀ for the panel's U units of every gate (the
                       tile), kept raw, and the panel's (Σ z, Σ z²) per row
    phase 1, panel p:  ẑ = (z − μ) r,  a = gates[t] + γ_hh ⊙ ẑ,  i, f, g, o,  c_t = f ⊙ c_{t-1} + i ⊙ g,
                       and the panel's (Σ c, Σ c²) per row

so both reductions ride on the meeting that ends a phase, and the step stays fused: the cell step
follows its own panel's product (phase 1 reads z where phase 0 left it, a row of B·4H values).
A final step T writes h_T. Backward, tick s (t = T − 1 − s):

    phase 0, panel p:  dz_{t+1} = LN⁻(da_{t+1} ⊙ γ_hh; ẑ, r) for the whole row, once per thread,
                       then dh_t = dz_{t+1} W_hh for the panel's units (the tile);
                       da_o = dh ⊙ tanh(y) ⊙ o(1 − o),  dy = dh ⊙ o ⊙ (1 − tanh²(y)),
                       dĉ = dy ⊙ γ_c, and the panel's (Σ dĉ, Σ dĉ ⊙ ĉ)
    phase 1, panel p:  dc += r_c (dĉ − mean dĉ − ĉ mean(dĉ ĉ)); da_i, da_f, da_g; dc_{t-1} = dc ⊙ f;
                       the panel's (Σ dẑ, Σ dẑ ⊙ ẑ) with dẑ = da ⊙ γ_hh

and the parameter gradients after the recurrence are products over all T·B rows as the plain
LSTM's: dW_hh = DZᵀ H_prev, dW_ih = DXᵀ X with DX = LN⁻(DA ⊙ γ_ih; X̂, r_x), dx = DX W_ih, and
column sums for the gains and biases.
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.gemm import pack, panel_product
from rnnkit.engine.jit import jit
from rnnkit.engine.layer_norm import (
    LayerNormJobs, column_sums, keep_product, own_rows, partial_sums, product_grad_row, row_means, row_moments,
    tape_product_grad,
)
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.schedule import job_record, register_tasks
from rnnkit.engine.vector import lanes_of, vload, vstore, vsum
from rnnkit.kernels.base import flat
from rnnkit.kernels.layer_norm import InputNorm
from rnnkit.kernels.lstm import LayerNormLSTMAux, LayerNormLSTMKernel
from rnnkit.kinds import register_jobs


@job_record
class LNLSTMForward:
    panels: np.ndarray          # (P, H, 4U) W_hhᵀ, [i|f|g|o] of U units per panel (pack_gates)
    gain_hh: np.ndarray         # (4H,) γ_hh
    gain_c: np.ndarray          # (H,) γ_c
    shift_c: np.ndarray         # (H,) β_c
    gates: np.ndarray           # (T, B, 4H) in: γ_ih ⊙ x̂ + b_ih + b_hh; out: i, f, g, o
    h: np.ndarray               # (T+1, B, H) h[0] given
    c: np.ndarray               # (T+1, B, H) c[0] given
    z: np.ndarray               # (B, 4H) this step's raw product h_{t-1} W_hhᵀ
    z_part: np.ndarray          # (P, B, 2) float64: each panel's (Σ z, Σ z²)
    c_part: np.ndarray          # (P, B, 2) float64: each panel's (Σ c_t, Σ c_t²)
    z_hat: np.ndarray           # (T, B, 4H) tape: ẑ
    z_rstd: np.ndarray          # (T, B, 1)
    c_hat: np.ndarray           # (T, B, H) ĉ
    c_rstd: np.ndarray          # (T, B, 1)
    tanh_c: np.ndarray          # (T, B, H) tanh(γ_c ⊙ ĉ + β_c)
    h_own: np.ndarray           # (workers, B, H) each worker's copy of h_{t-1}
    ready: np.ndarray           # (workers,) int64: the step whose h_{t-1} h_own holds
    mask: np.ndarray            # (T, B) bool: t < length; the plan: T + 1 steps of two phases


@job_record
class LNLSTMBackward:
    panels: np.ndarray          # (P, 4H, NR) W_hh in column panels (gemm.pack)
    gain_hh: np.ndarray
    gain_c: np.ndarray
    gates: np.ndarray           # (T, B, 4H) i, f, g, o
    c: np.ndarray               # (T+1, B, H)
    z_hat: np.ndarray
    z_rstd: np.ndarray
    c_hat: np.ndarray
    c_rstd: np.ndarray
    tanh_c: np.ndarray
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, 4H) out: pre-activation gradients
    dy: np.ndarray              # (T, B, H) out: gradient reaching γ_c ⊙ ĉ + β_c
    dz: np.ndarray              # (T, B, 4H) out: gradient reaching h_{t-1} W_hhᵀ
    dc_hat: np.ndarray          # (B, H) this tick's dĉ = dy ⊙ γ_c
    dc_part: np.ndarray         # (P, B, 2) float64: (Σ dĉ, Σ dĉ ⊙ ĉ)
    dz_part: np.ndarray         # (P, B, 2) float64: (Σ dẑ, Σ dẑ ⊙ ẑ) of the step just done
    dz_own: np.ndarray          # (workers, B, 4H) each worker's copy of dz_{t+1}
    ready: np.ndarray           # (workers,) int64
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    carry_c: np.ndarray         # (B, H) in: dL/dc_T; out: dL/dc_0
    mask: np.ndarray
    gain_ih: np.ndarray         # (4H,) γ_ih, for the input side's gradient after the recurrence
    dx_rows: np.ndarray         # (T, B, 4H) after the recurrence: LN⁻(DA ⊙ γ_ih; X̂, r_x); the plan: T + 1 ticks


# -- forward ---------------------------------------------------------------------------------------

@jit(inline=True)
def own_h(job, t, b, out):
    """out[b] = h_t (the state after step t − 1) for row b, every unit; h_0 as given."""
    T, B, G = job.gates.shape
    H = G // 4
    L = lanes_of(job.gates)
    if t == 0 or not job.mask[t - 1, b]:               # h_0, or padded: h_t = h_{t-1}
        src = (max(t - 1, 0) * B + b) * H
        for j in range(0, H, L):
            n = min(L, H - j)
            vstore(out, b * H + j, vload(job.h, src + j, n), n)
        return
    row = ((t - 1) * B + b) * G
    mu, r = row_moments(job.c_part, b, H)
    for j in range(0, H, L):
        n = min(L, H - j)
        c_hat = (vload(job.c, (t * B + b) * H + j, n) - mu) * r
        y = vload(job.gain_c, j, n) * c_hat + vload(job.shift_c, j, n)
        vstore(out, b * H + j, vload(job.gates, row + 3 * H + j, n) * tanh(y), n)


@jit(inline=True)
def tape_h(job, t, b, u0, n, own):
    """The panel's units of h_t (from the worker's copy) and of step t − 1's ĉ, tanh(y), r_c."""
    T, B, G = job.gates.shape
    H = G // 4
    L = lanes_of(job.gates)
    if t == 0:                                          # h_0 is the caller's
        return
    for j in range(u0, u0 + n, L):
        k = min(L, u0 + n - j)
        vstore(job.h, (t * B + b) * H + j, vload(own, b * H + j, k), k)
    mu, r = row_moments(job.c_part, b, H)
    prev = ((t - 1) * B + b) * H
    if u0 == 0:
        job.c_rstd[t - 1, b, 0] = r
    for j in range(u0, u0 + n, L):
        k = min(L, u0 + n - j)
        c_hat = (vload(job.c, (t * B + b) * H + j, k) - mu) * r
        vstore(job.c_hat, prev + j, c_hat, k)
        vstore(job.tanh_c, prev + j, tanh(vload(job.gain_c, j, k) * c_hat + vload(job.shift_c, j, k)), k)


@jit(inline=True)
def cell_units(job, t, b, j, n, mu, r):
    """Phase 1 for row b, the n ≤ L units from j: normalise, gates, c_t; returns (Σ c_t, Σ c_t²)."""
    T, B, G = job.gates.shape
    H = G // 4
    row, prev, new = (t * B + b) * G, (t * B + b) * H, ((t + 1) * B + b) * H
    zr = b * G + j
    z_i = (vload(job.z, zr, n) - mu) * r
    z_f = (vload(job.z, zr + H, n) - mu) * r
    z_g = (vload(job.z, zr + 2 * H, n) - mu) * r
    z_o = (vload(job.z, zr + 3 * H, n) - mu) * r
    vstore(job.z_hat, row + j, z_i, n)
    vstore(job.z_hat, row + H + j, z_f, n)
    vstore(job.z_hat, row + 2 * H + j, z_g, n)
    vstore(job.z_hat, row + 3 * H + j, z_o, n)
    i = sigmoid(vload(job.gates, row + j, n) + vload(job.gain_hh, j, n) * z_i)
    f = sigmoid(vload(job.gates, row + H + j, n) + vload(job.gain_hh, H + j, n) * z_f)
    g = tanh(vload(job.gates, row + 2 * H + j, n) + vload(job.gain_hh, 2 * H + j, n) * z_g)
    o = sigmoid(vload(job.gates, row + 3 * H + j, n) + vload(job.gain_hh, 3 * H + j, n) * z_o)
    vstore(job.gates, row + j, i, n)
    vstore(job.gates, row + H + j, f, n)
    vstore(job.gates, row + 2 * H + j, g, n)
    vstore(job.gates, row + 3 * H + j, o, n)
    c_prev = vload(job.c, prev + j, n)
    c = f * c_prev + i * g
    if not job.mask[t, b]:
        c = c_prev                                              # padded: state unchanged
    vstore(job.c, new + j, c, n)
    return vsum(c), vsum(c * c)


@jit(refcount=False)
def forward_panel(job, t, phase, p, worker):
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, U = G // 4, job.panels.shape[2] // 4
    u0, n = p * U, min(U, H - p * U)
    L = lanes_of(job.gates)
    if phase == 0:
        own = job.h_own[worker]
        if job.ready[worker] != t:                  # h_{t-1} of every unit, once per worker and step
            for b in range(B):
                own_h(job, t, b, own)
            job.ready[worker] = t
        for b in range(B):
            tape_h(job, t, b, u0, n, own)
        if t == T:
            return
        panel_product(own, 0, H, B, job.panels, p, acc)
        for b in range(B):
            keep_product(job.z, job.z_part, b, p, 4, U, u0, n, acc)
        return
    if t == T:
        return
    for b in range(B):
        mu, r = row_moments(job.z_part, b, G)
        if p == 0:
            job.z_rstd[t, b, 0] = r
        s, q = 0.0, 0.0
        for u in range(0, n, L):
            cs, cq = cell_units(job, t, b, u0 + u, min(L, n - u), mu, r)
            s += cs
            q += cq
        job.c_part[p, b, 0] = s
        job.c_part[p, b, 1] = q


# -- backward --------------------------------------------------------------------------------------

@jit(inline=True)
def output_units(job, t, b, j, n):
    """Phase 0 of step t's backward, row b, units from j: da_o, dy, dĉ; returns (Σ dĉ, Σ dĉ ĉ)."""
    T, B, G = job.gates.shape
    H = G // 4
    row, prev = (t * B + b) * G, (t * B + b) * H
    dh = vload(job.carry_h, b * H + j, n) + vload(job.dout, prev + j, n)
    if not job.mask[t, b]:
        dh = dh * 0.0                                    # padded: no gradient enters the step
    o, ty = vload(job.gates, row + 3 * H + j, n), vload(job.tanh_c, prev + j, n)
    vstore(job.da, row + 3 * H + j, dh * ty * o * (1.0 - o), n)
    dy = dh * o * (1.0 - ty * ty)
    vstore(job.dy, prev + j, dy, n)
    dch = dy * vload(job.gain_c, j, n)
    vstore(job.dc_hat, b * H + j, dch, n)
    return vsum(dch), vsum(dch * vload(job.c_hat, prev + j, n))


@jit(inline=True)
def state_units(job, t, b, j, n, m1, m2):
    """Phase 1, row b, units from j: dc, da_i, da_f, da_g, dc_{t-1}; returns (Σ dẑ, Σ dẑ ẑ)."""
    T, B, G = job.gates.shape
    H = G // 4
    row, prev = (t * B + b) * G, (t * B + b) * H
    valid = job.mask[t, b]
    dc = vload(job.carry_c, b * H + j, n)
    if not valid:
        dc = dc * 0.0
    dc = dc + (vload(job.dc_hat, b * H + j, n) - m1 - vload(job.c_hat, prev + j, n) * m2) * job.c_rstd[t, b, 0]
    i, f = vload(job.gates, row + j, n), vload(job.gates, row + H + j, n)
    g = vload(job.gates, row + 2 * H + j, n)
    da_i = dc * g * i * (1.0 - i)
    da_f = dc * vload(job.c, prev + j, n) * f * (1.0 - f)
    da_g = dc * i * (1.0 - g * g)
    vstore(job.da, row + j, da_i, n)
    vstore(job.da, row + H + j, da_f, n)
    vstore(job.da, row + 2 * H + j, da_g, n)
    if valid:
        vstore(job.carry_c, b * H + j, dc * f, n)
    s, q = 0.0, 0.0
    for k in range(4):
        d = vload(job.da, row + k * H + j, n) * vload(job.gain_hh, k * H + j, n)
        s += vsum(d)
        q += vsum(d * vload(job.z_hat, row + k * H + j, n))
    return s, q


@jit(refcount=False)
def backward_panel(job, s, phase, p, worker):
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, NR = G // 4, job.panels.shape[2]
    u0, n = p * NR, min(NR, H - p * NR)
    L = lanes_of(job.gates)
    t = T - 1 - s                                # −1 at the last tick: only dL/dh_0 is left to form
    if phase == 0:
        if s > 0:
            own = job.dz_own[worker]
            if job.ready[worker] != s:
                for b in range(B):
                    product_grad_row(job.da, job.gain_hh, job.z_hat, job.z_rstd, job.dz_part, t + 1, b, own)
                job.ready[worker] = s
            for b in range(B):                       # the panel's units of dz_{t+1}, for dW_hh
                tape_product_grad(job.dz, own, t + 1, b, 4, u0, n)
            panel_product(own, 0, G, B, job.panels, p, acc)
            for b in range(B):
                if job.mask[t + 1, b]:
                    for k in range(n):
                        job.carry_h[b, u0 + k] = acc[b, k]
        if t >= 0:
            for b in range(B):
                s1, s2 = 0.0, 0.0
                for u in range(0, n, L):
                    a1, a2 = output_units(job, t, b, u0 + u, min(L, n - u))
                    s1 += a1
                    s2 += a2
                job.dc_part[p, b, 0] = s1
                job.dc_part[p, b, 1] = s2
        return
    if t < 0:
        return
    for b in range(B):
        m1, m2 = row_means(job.dc_part, b, H)
        s1, s2 = 0.0, 0.0
        for u in range(0, n, L):
            a1, a2 = state_units(job, t, b, u0 + u, min(L, n - u), m1, m2)
            s1 += a1
            s2 += a2
        job.dz_part[p, b, 0] = s1
        job.dz_part[p, b, 1] = s2


register_tasks({LNLSTMForward: forward_panel, LNLSTMBackward: backward_panel})


# -- the layer's side ------------------------------------------------------------------------------

@register_jobs(LayerNormLSTMKernel)
class LNLSTMJobs(LayerNormJobs):
    """Builds the layer-normalised LSTM's job records (:mod:`rnnkit.engine.layer`)."""

    def new_aux(self, steps: int, batch: int, dtype) -> LayerNormLSTMAux:
        H, e = self.kernel.hidden_size, workspace.empty
        return LayerNormLSTMAux(InputNorm(e((steps, batch, 4 * H), dtype), e((steps, batch, 1), dtype)),
                                e((steps, batch, 4 * H), dtype), e((steps, batch, 1), dtype),
                                e((steps, batch, H), dtype), e((steps, batch, 1), dtype), e((steps, batch, H), dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True) -> LNLSTMForward:
        T, B, G = gates.shape
        self.normalise_input(w, gates, aux)
        panels = pack_gates(w.weight_hh, 4)
        P, H = panels.shape[0], G // 4
        return LNLSTMForward(panels, w.ln_weight_hh, w.ln_weight_c, w.ln_bias_c, gates, states[0], states[1],
                             np.zeros((B, G), gates.dtype), partial_sums(P, B), partial_sums(P, B), aux.z_hat,
                             aux.z_rstd, aux.c_hat, aux.c_rstd, aux.tanh_c, *own_rows(workers, B, H, gates.dtype), mask,
                             *self.plan(T + 1, [P, P], workers, gates))

    def backward_job(self, w, tape, dout, da, carry, mask, workers) -> LNLSTMBackward:
        T, B, G = da.shape
        H, aux = G // 4, tape.aux
        panels = pack(w.weight_hh)
        P = panels.shape[0]
        return LNLSTMBackward(panels, w.ln_weight_hh, w.ln_weight_c, tape.gates, tape.states[1], aux.z_hat,
                              aux.z_rstd, aux.c_hat, aux.c_rstd, aux.tanh_c, dout, da,
                              workspace.empty((T, B, H), da.dtype), workspace.empty((T, B, G), da.dtype),
                              np.zeros((B, H), da.dtype), partial_sums(P, B), partial_sums(P, B),
                              *own_rows(workers, B, G, da.dtype), carry[0], carry[1], mask, w.ln_weight_ih,
                              workspace.empty((T, B, G), da.dtype), *self.plan(T + 1, [P, P], workers, da))

    def other_grads(self, dw, tape, da, job: LNLSTMBackward) -> None:
        """The cell state's LN: dγ_c = Σ DY ⊙ Ĉ, dβ_c = Σ DY (the products' in weight_products)."""
        column_sums(flat(job.dy), flat(tape.aux.c_hat), dw.ln_weight_c, dw.ln_bias_c)
