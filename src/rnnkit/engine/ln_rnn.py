"""The layer-normalised Elman RNN's recurrences, compiled: :class:`rnnkit.kernels.rnn.LayerNormRNNKernel`.

Forward, step t, two phases (the product's statistics need all of its row; ``gates`` holds
γ_ih ⊙ x̂ + b_ih + b_hh on entry)::

    phase 0, panel p:  z = h_{t-1} W_hhᵀ for the panel's units (the tile), kept raw, and (Σ z, Σ z²)
    phase 1, panel p:  ẑ = (z − μ) r,  h_t = φ(gates[t] + γ_hh ⊙ ẑ)

Backward, tick s (t = T − 1 − s), one phase as the plain RNN's::

    dz_{t+1} = LN⁻(da_{t+1} ⊙ γ_hh; ẑ, r) for the whole row, once per thread;  dh_t = dz_{t+1} W_hh
    da_t = (dh_t + dout_t) ⊙ φ'(h_t), and the panel's (Σ dẑ, Σ dẑ ⊙ ẑ) with dẑ = da ⊙ γ_hh

(the partial sums alternate between two slots, as :mod:`.ln_gru`'s).
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.activations import tanh
from rnnkit.engine.gemm import pack, panel_product
from rnnkit.engine.jit import jit
from rnnkit.engine.layer_norm import (
    LayerNormJobs, keep_product, own_rows, partial_sums, product_grad_row, row_moments, tape_product_grad,
)
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.rnn import RNNJobs
from rnnkit.engine.schedule import job_record, register_tasks
from rnnkit.engine.vector import lanes_of, positive, vload, vstore, vsum
from rnnkit.kernels.layer_norm import InputNorm
from rnnkit.kernels.rnn import LayerNormRNNAux, LayerNormRNNKernel
from rnnkit.kinds import register_jobs


@job_record
class LNRNNForward:
    panels: np.ndarray          # (P, H, U) W_hhᵀ, U units per panel (pack_gates)
    gain_hh: np.ndarray         # (H,) γ_hh
    relu: bool                  # φ = relu (else tanh)
    gates: np.ndarray           # (T, B, H) in: the input side; out: h_t
    h: np.ndarray               # (T+1, B, H) h[0] given
    z: np.ndarray               # (B, H) this step's raw product
    z_part: np.ndarray          # (P, B, 2) float64
    z_hat: np.ndarray           # (T, B, H)
    z_rstd: np.ndarray          # (T, B, 1)
    mask: np.ndarray            # the plan: T steps of two phases


@job_record
class LNRNNBackward:
    panels: np.ndarray          # (P, H, NR) W_hh in column panels
    gain_hh: np.ndarray
    relu: bool
    gates: np.ndarray           # (T, B, H) h_t (before masking)
    z_hat: np.ndarray
    z_rstd: np.ndarray
    dout: np.ndarray
    da: np.ndarray              # (T, B, H) out
    dz: np.ndarray              # (T, B, H) out: gradient reaching h_{t-1} W_hhᵀ
    dz_part: np.ndarray         # (2, P, B, 2) float64, slot s & 1 written at tick s
    dz_own: np.ndarray          # (workers, B, H)
    ready: np.ndarray
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    mask: np.ndarray
    gain_ih: np.ndarray
    dx_rows: np.ndarray         # (T, B, H) after the recurrence: LN⁻(DA ⊙ γ_ih; X̂, r_x); the plan: T + 1 ticks


@jit(refcount=False)
def forward_panel(job, t, phase, p, worker):
    acc = job.scratch[worker]
    T, B, H = job.gates.shape
    U = job.panels.shape[2]
    u0, n = p * U, min(U, H - p * U)
    if phase == 0:
        panel_product(job.h, t * B * H, H, B, job.panels, p, acc)
        for b in range(B):
            keep_product(job.z, job.z_part, b, p, 1, U, u0, n, acc)
        return
    L = lanes_of(job.gates)
    for b in range(B):
        mu, r = row_moments(job.z_part, b, H)
        if p == 0:
            job.z_rstd[t, b, 0] = r
        row, new = (t * B + b) * H, ((t + 1) * B + b) * H
        for j in range(u0, u0 + n, L):
            k = min(L, u0 + n - j)
            z_hat = (vload(job.z, b * H + j, k) - mu) * r
            vstore(job.z_hat, row + j, z_hat, k)
            a = vload(job.gates, row + j, k) + vload(job.gain_hh, j, k) * z_hat
            h = max(a, 0.0) if job.relu else tanh(a)
            vstore(job.gates, row + j, h, k)
            vstore(job.h, new + j, h if job.mask[t, b] else vload(job.h, row + j, k), k)


@jit(refcount=False)
def backward_panel(job, s, phase, p, worker):
    acc = job.scratch[worker]
    T, B, H = job.gates.shape
    NR = job.panels.shape[2]
    u0, n = p * NR, min(NR, H - p * NR)
    L = lanes_of(job.gates)
    t = T - 1 - s
    if s > 0:
        own = job.dz_own[worker]
        if job.ready[worker] != s:
            for b in range(B):
                product_grad_row(job.da, job.gain_hh, job.z_hat, job.z_rstd, job.dz_part[(s - 1) & 1], t + 1, b,
                                 own)
            job.ready[worker] = s
        for b in range(B):
            tape_product_grad(job.dz, own, t + 1, b, 1, u0, n)
        panel_product(own, 0, H, B, job.panels, p, acc)
        for b in range(B):
            if job.mask[t + 1, b]:
                for k in range(n):
                    job.carry_h[b, u0 + k] = acc[b, k]
    if t >= 0:
        part = job.dz_part[s & 1]
        for b in range(B):
            row = (t * B + b) * H
            s1, s2 = 0.0, 0.0
            for j in range(u0, u0 + n, L):
                k = min(L, u0 + n - j)
                dh = vload(job.carry_h, b * H + j, k) + vload(job.dout, row + j, k)
                h = vload(job.gates, row + j, k)
                da = dh * positive(h) if job.relu else dh * (1.0 - h * h)
                if not job.mask[t, b]:
                    da = da * 0.0
                vstore(job.da, row + j, da, k)
                d = da * vload(job.gain_hh, j, k)
                s1 += vsum(d)
                s2 += vsum(d * vload(job.z_hat, row + j, k))
            part[p, b, 0] = s1
            part[p, b, 1] = s2


register_tasks({LNRNNForward: forward_panel, LNRNNBackward: backward_panel})


@register_jobs(LayerNormRNNKernel)
class LNRNNJobs(LayerNormJobs, RNNJobs):
    """Builds the layer-normalised RNN's job records (:mod:`rnnkit.engine.layer`); φ as the RNN's."""

    def new_aux(self, steps: int, batch: int, dtype) -> LayerNormRNNAux:
        H, e = self.kernel.hidden_size, workspace.empty
        return LayerNormRNNAux(InputNorm(e((steps, batch, H), dtype), e((steps, batch, 1), dtype)),
                               e((steps, batch, H), dtype), e((steps, batch, 1), dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True) -> LNRNNForward:
        T, B, H = gates.shape
        self.normalise_input(w, gates, aux)
        panels = pack_gates(w.weight_hh, 1)
        P = panels.shape[0]
        return LNRNNForward(panels, w.ln_weight_hh, self.relu, gates, states[0], np.zeros((B, H), gates.dtype),
                            partial_sums(P, B), aux.z_hat, aux.z_rstd, mask, *self.plan(T, [P, P], workers, gates))

    def backward_job(self, w, tape, dout, da, carry, mask, workers) -> LNRNNBackward:
        T, B, H = da.shape
        panels = pack(w.weight_hh)
        P = panels.shape[0]
        return LNRNNBackward(panels, w.ln_weight_hh, self.relu, tape.gates, tape.aux.z_hat, tape.aux.z_rstd, dout, da,
                             workspace.empty((T, B, H), da.dtype), partial_sums(2, P, B),
                             *own_rows(workers, B, H, da.dtype), carry[0], mask, w.ln_weight_ih,
                             workspace.empty((T, B, H), da.dtype), *self.plan(T + 1, [P], workers, da))
