"""The layer-normalised GRU's recurrences, compiled: :class:`rnnkit.kernels.gru.LayerNormGRUKernel`.

Forward, step t, two phases (as :mod:`.ln_lstm`: the product's statistics need all of its row;
``gates`` holds γ_ih ⊙ x̂ + b_ih + [b_hr, b_hz, 0] on entry, for all steps at once)::

    phase 0, panel p:  z = h_{t-1} W_hhᵀ for the panel's units of r, z, n (the tile), kept raw,
                       and the panel's (Σ z, Σ z²) per row
    phase 1, panel p:  ẑ = (z − μ) ρ,  r_t = σ(a_r + γ_hr ẑ_r),  z_t = σ(a_z + γ_hz ẑ_z),
                       hn = γ_hn ẑ_n + b_hn,  n_t = tanh(a_n + r_t ⊙ hn),  h_t = n_t + z_t ⊙ (h_{t-1} − n_t)

(z without a subscript is the raw product, ẑ its normalised values, ρ = 1/√(var + ε) their scale.)

Backward, tick s (t = T − 1 − s), one phase, as the plain GRU's: the threads meet once a tick::

    dz_{t+1} = LN⁻(dah_{t+1} ⊙ γ_hh; ẑ, ρ) for the whole row, once per thread;
    dh_t = dz_{t+1} W_hh + dh_{t+1} ⊙ z_{t+1} for the panel's units (the tile);
    da_n = dh ⊙ (1 − z_t)(1 − n_t²),  da_z = dh ⊙ (h_{t-1} − n_t) z_t(1 − z_t),  da_r = da_n ⊙ hn ⊙ r_t(1 − r_t),
    dah = [da_r, da_z, da_n ⊙ r_t], and the panel's (Σ dẑ, Σ dẑ ⊙ ẑ) with dẑ = dah ⊙ γ_hh

The partial sums alternate between two slots, ticks s and s + 1, so that a thread still reading
step t + 1's while another writes step t's never meet.
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.gemm import pack, panel_product
from rnnkit.engine.jit import jit
from rnnkit.engine.layer_norm import (
    LayerNormJobs, keep_product, own_rows, partial_sums, product_grad_row, row_moments, tape_product_grad,
)
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.schedule import job_record, register_tasks
from rnnkit.engine.vector import lanes_of, vload, vstore, vsum
from rnnkit.kernels.gru import LayerNormGRUAux, LayerNormGRUKernel
from rnnkit.kernels.layer_norm import InputNorm
from rnnkit.kinds import register_jobs


@job_record
class LNGRUForward:
    panels: np.ndarray          # (P, H, 3U) W_hhᵀ, [r|z|n] of U units per panel (pack_gates)
    gain_hh: np.ndarray         # (3H,) γ_hh
    bias_hn: np.ndarray         # (H,) b_hn (zeros without biases)
    gates: np.ndarray           # (T, B, 3H) in: the input side; out: r, z, n
    h: np.ndarray               # (T+1, B, H) h[0] given
    z: np.ndarray               # (B, 3H) this step's raw product
    z_part: np.ndarray          # (P, B, 2) float64: each panel's (Σ z, Σ z²)
    z_hat: np.ndarray           # (T, B, 3H) tape: ẑ
    z_rstd: np.ndarray          # (T, B, 1)
    hn: np.ndarray              # (T, B, H) tape: γ_hn ⊙ ẑ_n + b_hn
    mask: np.ndarray            # (T, B) bool; the plan: T steps of two phases


@job_record
class LNGRUBackward:
    panels: np.ndarray          # (P, 3H, NR) W_hh in column panels
    gain_hh: np.ndarray
    gates: np.ndarray           # (T, B, 3H) r, z, n
    h: np.ndarray               # (T+1, B, H)
    hn: np.ndarray
    z_hat: np.ndarray
    z_rstd: np.ndarray
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, 3H) out: [da_r, da_z, da_n]
    da_h: np.ndarray            # (T, B, 3H) out: [da_r, da_z, da_n ⊙ r]
    dh: np.ndarray              # (T, B, H) out: dL/dh_t at valid steps
    dz: np.ndarray              # (T, B, 3H) out: gradient reaching h_{t-1} W_hhᵀ
    dz_part: np.ndarray         # (2, P, B, 2) float64: (Σ dẑ, Σ dẑ ⊙ ẑ), slot s & 1 written at tick s
    dz_own: np.ndarray          # (workers, B, 3H) each worker's copy of dz_{t+1}
    ready: np.ndarray           # (workers,) int64
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    mask: np.ndarray
    gain_ih: np.ndarray         # (3H,) γ_ih
    dx_rows: np.ndarray         # (T, B, 3H) after the recurrence: LN⁻(DA ⊙ γ_ih; X̂, r_x); the plan: T + 1 ticks


@jit(inline=True)
def forward_units(job, t, b, j, count, mu, rstd):
    """Phase 1, row b, the count ≤ L units from j: ẑ, then r, z, n and h_t."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev, new = (t * B + b) * G, (t * B + b) * H, ((t + 1) * B + b) * H
    zh_r = (vload(job.z, b * G + j, count) - mu) * rstd
    zh_z = (vload(job.z, b * G + H + j, count) - mu) * rstd
    zh_n = (vload(job.z, b * G + 2 * H + j, count) - mu) * rstd
    vstore(job.z_hat, row + j, zh_r, count)
    vstore(job.z_hat, row + H + j, zh_z, count)
    vstore(job.z_hat, row + 2 * H + j, zh_n, count)
    r = sigmoid(vload(job.gates, row + j, count) + vload(job.gain_hh, j, count) * zh_r)
    z = sigmoid(vload(job.gates, row + H + j, count) + vload(job.gain_hh, H + j, count) * zh_z)
    hn = vload(job.gain_hh, 2 * H + j, count) * zh_n + vload(job.bias_hn, j, count)
    n = tanh(vload(job.gates, row + 2 * H + j, count) + r * hn)
    vstore(job.gates, row + j, r, count)
    vstore(job.gates, row + H + j, z, count)
    vstore(job.gates, row + 2 * H + j, n, count)
    vstore(job.hn, prev + j, hn, count)
    h_prev = vload(job.h, prev + j, count)
    vstore(job.h, new + j, n + z * (h_prev - n) if job.mask[t, b] else h_prev, count)


@jit(refcount=False)
def forward_panel(job, t, phase, p, worker):
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, U = G // 3, job.panels.shape[2] // 3
    u0, count = p * U, min(U, H - p * U)
    if phase == 0:
        panel_product(job.h, t * B * H, H, B, job.panels, p, acc)
        for b in range(B):
            keep_product(job.z, job.z_part, b, p, 3, U, u0, count, acc)
        return
    L = lanes_of(job.gates)
    for b in range(B):
        mu, rstd = row_moments(job.z_part, b, G)
        if p == 0:
            job.z_rstd[t, b, 0] = rstd
        for u in range(0, count, L):
            forward_units(job, t, b, u0 + u, min(L, count - u), mu, rstd)


@jit(inline=True)
def backward_units(job, t, b, j, count):
    """Step t's backward, row b, units from j; returns the panel's part of (Σ dẑ, Σ dẑ ⊙ ẑ)."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    dh = vload(job.carry_h, b * H + j, count) + vload(job.dout, prev + j, count)
    if not job.mask[t, b]:
        dh = dh * 0.0                                     # padded: no gradient enters the step
    r, z = vload(job.gates, row + j, count), vload(job.gates, row + H + j, count)
    n, h_prev = vload(job.gates, row + 2 * H + j, count), vload(job.h, prev + j, count)
    da_n = dh * (1.0 - z) * (1.0 - n * n)
    da_z = dh * (h_prev - n) * z * (1.0 - z)
    da_r = da_n * vload(job.hn, prev + j, count) * r * (1.0 - r)
    vstore(job.dh, prev + j, dh, count)
    vstore(job.da, row + j, da_r, count)
    vstore(job.da, row + H + j, da_z, count)
    vstore(job.da, row + 2 * H + j, da_n, count)
    vstore(job.da_h, row + j, da_r, count)
    vstore(job.da_h, row + H + j, da_z, count)
    vstore(job.da_h, row + 2 * H + j, da_n * r, count)
    d_r = da_r * vload(job.gain_hh, j, count)
    d_z = da_z * vload(job.gain_hh, H + j, count)
    d_n = da_n * r * vload(job.gain_hh, 2 * H + j, count)
    s = vsum(d_r) + vsum(d_z) + vsum(d_n)
    q = (vsum(d_r * vload(job.z_hat, row + j, count)) + vsum(d_z * vload(job.z_hat, row + H + j, count))
         + vsum(d_n * vload(job.z_hat, row + 2 * H + j, count)))
    return s, q


@jit(refcount=False)
def backward_panel(job, s, phase, p, worker):
    acc = job.scratch[worker]
    T, B, G = job.gates.shape
    H, NR = G // 3, job.panels.shape[2]
    u0, count = p * NR, min(NR, H - p * NR)
    L = lanes_of(job.gates)
    t = T - 1 - s
    if s > 0:                                            # dh_t from step t + 1; padded rows keep it
        own = job.dz_own[worker]
        if job.ready[worker] != s:
            for b in range(B):
                product_grad_row(job.da_h, job.gain_hh, job.z_hat, job.z_rstd, job.dz_part[(s - 1) & 1],
                                 t + 1, b, own)
            job.ready[worker] = s
        for b in range(B):
            tape_product_grad(job.dz, own, t + 1, b, 3, u0, count)
        panel_product(own, 0, G, B, job.panels, p, acc)
        for b in range(B):
            if job.mask[t + 1, b]:
                for k in range(count):
                    j = u0 + k
                    job.carry_h[b, j] = acc[b, k] + job.dh[t + 1, b, j] * job.gates[t + 1, b, H + j]
    if t >= 0:
        part = job.dz_part[s & 1]
        for b in range(B):
            s1, s2 = 0.0, 0.0
            for u in range(0, count, L):
                a1, a2 = backward_units(job, t, b, u0 + u, min(L, count - u))
                s1 += a1
                s2 += a2
            part[p, b, 0] = s1
            part[p, b, 1] = s2


register_tasks({LNGRUForward: forward_panel, LNGRUBackward: backward_panel})


@register_jobs(LayerNormGRUKernel)
class LNGRUJobs(LayerNormJobs):
    """Builds the layer-normalised GRU's job records (:mod:`rnnkit.engine.layer`)."""

    def new_aux(self, steps: int, batch: int, dtype) -> LayerNormGRUAux:
        H, e = self.kernel.hidden_size, workspace.empty
        return LayerNormGRUAux(InputNorm(e((steps, batch, 3 * H), dtype), e((steps, batch, 1), dtype)),
                               e((steps, batch, 3 * H), dtype), e((steps, batch, 1), dtype), e((steps, batch, H), dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True) -> LNGRUForward:
        T, B, G = gates.shape
        H = G // 3
        self.normalise_input(w, gates, aux)
        b_hn = np.zeros(H, gates.dtype) if w.bias_hh is None else np.ascontiguousarray(w.bias_hh[2 * H:])
        panels = pack_gates(w.weight_hh, 3)
        P = panels.shape[0]
        return LNGRUForward(panels, w.ln_weight_hh, b_hn, gates, states[0], np.zeros((B, G), gates.dtype),
                            partial_sums(P, B), aux.z_hat, aux.z_rstd, aux.hn, mask, *self.plan(T, [P, P], workers, gates))

    def backward_job(self, w, tape, dout, da, carry, mask, workers) -> LNGRUBackward:
        T, B, G = da.shape
        H, aux, e = G // 3, tape.aux, workspace.empty
        panels = pack(w.weight_hh)
        P = panels.shape[0]
        return LNGRUBackward(panels, w.ln_weight_hh, tape.gates, tape.states[0], aux.hn, aux.z_hat, aux.z_rstd, dout,
                             da, e((T, B, G), da.dtype), e((T, B, H), da.dtype), e((T, B, G), da.dtype),
                             partial_sums(2, P, B), *own_rows(workers, B, G, da.dtype), carry[0], mask,
                             w.ln_weight_ih, e((T, B, G), da.dtype), *self.plan(T + 1, [P], workers, da))

    def recurrent_da(self, da, job: LNGRUBackward) -> np.ndarray:
        """DAH = [da_r, da_z, da_n ⊙ r]: the gradient reaching γ_hh ⊙ ẑ + b_hh."""
        return job.da_h
