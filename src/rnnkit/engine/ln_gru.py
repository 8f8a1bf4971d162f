"""The layer-normalised GRU's recurrences, compiled: :class:`rnnkit.kernels.gru.LayerNormGRUKernel`.

Forward, step t, two phases (as :mod:`.ln_lstm`: the product's statistics need all of its row;
``gates`` holds γ_ih ⊙ x̂ + b_ih + [b_hr, b_hz, 0] on entry, for all steps at once)::

    phase 0, panel p:  z = h_{t-1} W_hhᵀ for the panel's units of r, u, n (the tile), kept raw,
                       and the panel's (Σ z, Σ z²) per row
    phase 1, panel p:  ẑ = (z − μ) r,  r_t = σ(a_r + γ_hr ẑ_r),  u_t = σ(a_u + γ_hu ẑ_u),
                       hn = γ_hn ẑ_n + b_hn,  n_t = tanh(a_n + r_t ⊙ hn),  h_t = n + u ⊙ (h_{t-1} − n)

Backward, tick s (t = T − 1 − s), one phase, as the plain GRU's: the threads meet once a tick::

    dz_{t+1} = LN⁻(dah_{t+1} ⊙ γ_hh; ẑ, r) for the whole row, once per thread;
    dh_t = dz_{t+1} W_hh + dh_{t+1} ⊙ u_{t+1} for the panel's units (the tile);
    da_n = dh ⊙ (1 − u)(1 − n²),  da_u = dh ⊙ (h_{t-1} − n) u(1 − u),  da_r = da_n ⊙ hn ⊙ r(1 − r),
    dah = [da_r, da_u, da_n ⊙ r], and the panel's (Σ dẑ, Σ dẑ ⊙ ẑ) with dẑ = dah ⊙ γ_hh

The partial sums alternate between two slots, ticks s and s + 1, so that a thread still reading
step t + 1's while another writes step t's never meet.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba.extending import overload

from rnnkit.engine import workspace
from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.gemm import pack
from rnnkit.engine.jit import jit
from rnnkit.engine.layer_norm import (
    keep_product, normalise_rows, products_backward, product_grad_row, row_moments,
    tape_product_grad,
)
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.schedule import counters_for, lanes_of, panel_product, recurrence_scratch, task
from rnnkit.engine.vector import vload, vstore, vsum
from rnnkit.kernels.base import flat
from rnnkit.kernels.gru import LayerNormGRUAux, LayerNormGRUKernel
from rnnkit.kernels.layer_norm import InputNorm
from rnnkit.kinds import register_jobs


class LNGRUForward(NamedTuple):
    panels: np.ndarray          # (P, H, 3U) W_hhᵀ, [r|u|n] of U units per panel (pack_gates)
    gain_hh: np.ndarray         # (3H,) γ_hh
    bias_hn: np.ndarray         # (H,) b_hn (zeros without biases)
    gates: np.ndarray           # (T, B, 3H) in: the input side; out: r, u, n
    h: np.ndarray               # (T+1, B, H) h[0] given
    z: np.ndarray               # (B, 3H) this step's raw product
    z_part: np.ndarray          # (P, B, 2) float64: each panel's (Σ z, Σ z²)
    z_hat: np.ndarray           # (T, B, 3H) tape: ẑ
    z_rstd: np.ndarray          # (T, B, 1)
    hn: np.ndarray              # (T, B, H) tape: γ_hn ⊙ ẑ_n + b_hn
    mask: np.ndarray            # (T, B) bool
    steps: int                  # T
    chunks: np.ndarray
    counters: np.ndarray
    scratch: np.ndarray


class LNGRUBackward(NamedTuple):
    panels: np.ndarray          # (P, 3H, NR) W_hh in column panels
    gain_hh: np.ndarray
    gates: np.ndarray           # (T, B, 3H) r, u, n
    h: np.ndarray               # (T+1, B, H)
    hn: np.ndarray
    z_hat: np.ndarray
    z_rstd: np.ndarray
    dout: np.ndarray            # (T, B, H)
    da: np.ndarray              # (T, B, 3H) out: [da_r, da_u, da_n]
    da_h: np.ndarray            # (T, B, 3H) out: [da_r, da_u, da_n ⊙ r]
    dh: np.ndarray              # (T, B, H) out: dL/dh_t at valid steps
    dz: np.ndarray              # (T, B, 3H) out: gradient reaching h_{t-1} W_hhᵀ
    dz_part: np.ndarray         # (2, P, B, 2) float64: (Σ dẑ, Σ dẑ ⊙ ẑ), slot s & 1 written at tick s
    dz_own: np.ndarray          # (workers, B, 3H) each worker's copy of dz_{t+1}
    ready: np.ndarray           # (workers,) int64
    carry_h: np.ndarray         # (B, H) in: dL/dh_T; out: dL/dh_0
    mask: np.ndarray
    steps: int                  # T + 1
    chunks: np.ndarray
    counters: np.ndarray
    scratch: np.ndarray
    gain_ih: np.ndarray         # (3H,) γ_ih
    dx_rows: np.ndarray         # (T, B, 3H) after the recurrence: LN⁻(DA ⊙ γ_ih; X̂, r_x)


@jit(inline=True)
def forward_units(job, t, b, j, n, mu, r):
    T, B, G = job.gates.shape
    H = G // 3
    row, prev, new = (t * B + b) * G, (t * B + b) * H, ((t + 1) * B + b) * H
    z_r = (vload(job.z, b * G + j, n) - mu) * r
    z_u = (vload(job.z, b * G + H + j, n) - mu) * r
    z_n = (vload(job.z, b * G + 2 * H + j, n) - mu) * r
    vstore(job.z_hat, row + j, z_r, n)
    vstore(job.z_hat, row + H + j, z_u, n)
    vstore(job.z_hat, row + 2 * H + j, z_n, n)
    rr = sigmoid(vload(job.gates, row + j, n) + vload(job.gain_hh, j, n) * z_r)
    u = sigmoid(vload(job.gates, row + H + j, n) + vload(job.gain_hh, H + j, n) * z_u)
    hn = vload(job.gain_hh, 2 * H + j, n) * z_n + vload(job.bias_hn, j, n)
    g = tanh(vload(job.gates, row + 2 * H + j, n) + rr * hn)
    vstore(job.gates, row + j, rr, n)
    vstore(job.gates, row + H + j, u, n)
    vstore(job.gates, row + 2 * H + j, g, n)
    vstore(job.hn, prev + j, hn, n)
    h_prev = vload(job.h, prev + j, n)
    vstore(job.h, new + j, g + u * (h_prev - g) if job.mask[t, b] else h_prev, n)


@jit(refcount=False)
def forward_panel(job, t, phase, p, acc):
    T, B, G = job.gates.shape
    H, U = G // 3, job.panels.shape[2] // 3
    u0, n = p * U, min(U, H - p * U)
    if phase == 0:
        panel_product(job.h, t * B * H, H, B, job.panels, p, acc)
        for b in range(B):
            keep_product(job.z, job.z_part, b, p, 3, U, u0, n, acc)
        return
    L = lanes_of(job.gates)
    for b in range(B):
        mu, r = row_moments(job.z_part, b, G)
        if p == 0:
            job.z_rstd[t, b, 0] = r
        for u in range(0, n, L):
            forward_units(job, t, b, u0 + u, min(L, n - u), mu, r)


@jit(inline=True)
def backward_units(job, t, b, j, n):
    """Step t's backward, row b, units from j; returns the panel's part of (Σ dẑ, Σ dẑ ⊙ ẑ)."""
    T, B, G = job.gates.shape
    H = G // 3
    row, prev = (t * B + b) * G, (t * B + b) * H
    dh = vload(job.carry_h, b * H + j, n) + vload(job.dout, prev + j, n)
    if not job.mask[t, b]:
        dh = dh * 0.0                                     # padded: no gradient enters the step
    r, u = vload(job.gates, row + j, n), vload(job.gates, row + H + j, n)
    g, h_prev = vload(job.gates, row + 2 * H + j, n), vload(job.h, prev + j, n)
    da_n = dh * (1.0 - u) * (1.0 - g * g)
    da_u = dh * (h_prev - g) * u * (1.0 - u)
    da_r = da_n * vload(job.hn, prev + j, n) * r * (1.0 - r)
    vstore(job.dh, prev + j, dh, n)
    vstore(job.da, row + j, da_r, n)
    vstore(job.da, row + H + j, da_u, n)
    vstore(job.da, row + 2 * H + j, da_n, n)
    vstore(job.da_h, row + j, da_r, n)
    vstore(job.da_h, row + H + j, da_u, n)
    vstore(job.da_h, row + 2 * H + j, da_n * r, n)
    d_r = da_r * vload(job.gain_hh, j, n)
    d_u = da_u * vload(job.gain_hh, H + j, n)
    d_n = da_n * r * vload(job.gain_hh, 2 * H + j, n)
    s = vsum(d_r) + vsum(d_u) + vsum(d_n)
    q = (vsum(d_r * vload(job.z_hat, row + j, n)) + vsum(d_u * vload(job.z_hat, row + H + j, n))
         + vsum(d_n * vload(job.z_hat, row + 2 * H + j, n)))
    return s, q


@jit(refcount=False)
def backward_panel(job, s, p, worker, acc):
    T, B, G = job.gates.shape
    H, NR = G // 3, job.panels.shape[2]
    u0, n = p * NR, min(NR, H - p * NR)
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
            tape_product_grad(job.dz, own, t + 1, b, 3, u0, n)
        panel_product(own, 0, G, B, job.panels, p, acc)
        for b in range(B):
            if job.mask[t + 1, b]:
                for k in range(n):
                    j = u0 + k
                    job.carry_h[b, j] = acc[b, k] + job.dh[t + 1, b, j] * job.gates[t + 1, b, H + j]
    if t >= 0:
        part = job.dz_part[s & 1]
        for b in range(B):
            s1, s2 = 0.0, 0.0
            for u in range(0, n, L):
                a1, a2 = backward_units(job, t, b, u0 + u, min(L, n - u))
                s1 += a1
                s2 += a2
            part[p, b, 0] = s1
            part[p, b, 1] = s2


@overload(task)
def _ln_gru_task(job, step, phase, chunk, worker):
    if job.instance_class is LNGRUForward:
        return lambda job, step, phase, chunk, worker: forward_panel(job, step, phase, chunk, job.scratch[worker])
    if job.instance_class is LNGRUBackward:
        return lambda job, step, phase, chunk, worker: backward_panel(job, step, chunk, worker,
                                                                      job.scratch[worker])
    return None


@register_jobs(LayerNormGRUKernel)
class LNGRUJobs:
    """Builds the layer-normalised GRU's job records (:mod:`rnnkit.engine.layer`)."""

    def __init__(self, kernel: LayerNormGRUKernel) -> None:
        self.kernel = kernel

    def step_kind(self) -> None:
        """No compiled streaming step: a step is a sequence of one."""
        return None

    def new_aux(self, steps: int, batch: int, dtype) -> LayerNormGRUAux:
        H, e = self.kernel.hidden_size, workspace.empty
        return LayerNormGRUAux(InputNorm(e((steps, batch, 3 * H), dtype), e((steps, batch, 1), dtype)),
                               e((steps, batch, 3 * H), dtype), e((steps, batch, 1), dtype), e((steps, batch, H), dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True) -> LNGRUForward:
        T, B, G = gates.shape
        H = G // 3
        bias = self.kernel.input_side_bias(w)
        normalise_rows(flat(gates), w.ln_weight_ih, np.zeros(G, gates.dtype) if bias is None else bias,
                       flat(aux.input.x_hat), flat(aux.input.rstd))
        b_hn = np.zeros(H, gates.dtype) if w.bias_hh is None else np.ascontiguousarray(w.bias_hh[2 * H:])
        panels = pack_gates(w.weight_hh, 3)
        P = panels.shape[0]
        return LNGRUForward(panels, w.ln_weight_hh, b_hn, gates, states[0], np.zeros((B, G), gates.dtype),
                            np.zeros((P, B, 2)), aux.z_hat, aux.z_rstd, aux.hn, mask, T, np.array([P, P]),
                            counters_for(T, 2, workers), recurrence_scratch(workers, B, gates.dtype))

    def backward_job(self, w, tape, dout, da, carry, mask, workers) -> LNGRUBackward:
        T, B, G = da.shape
        H, aux, e = G // 3, tape.aux, workspace.empty
        panels = pack(w.weight_hh)
        P = panels.shape[0]
        return LNGRUBackward(panels, w.ln_weight_hh, tape.gates, tape.states[0], aux.hn, aux.z_hat, aux.z_rstd, dout,
                             da, e((T, B, G), da.dtype), e((T, B, H), da.dtype), e((T, B, G), da.dtype),
                             np.zeros((2, P, B, 2)), np.zeros((workers, B, G), da.dtype),
                             np.full(workers, -1, np.int64), carry[0], mask, T + 1, np.array([P]),
                             counters_for(T + 1, 1, workers), recurrence_scratch(workers, B, da.dtype),
                             w.ln_weight_ih, e((T, B, G), da.dtype))

    def weight_products(self, dw, tape, da, job: LNGRUBackward) -> list:
        """dW_ih += DXᵀ X with DX = LN⁻(DA ⊙ γ_ih; X̂, r_x);  dW_hh += DZᵀ H_prev; and, in the same
        pass over DA that forms DX, dγ_ih, db_ih, dγ_hh, db_hh (:func:`.layer_norm.products_backward`)."""
        products_backward(job.gain_ih, dw, tape.aux, da, job.da_h, job.dx_rows)    # and the gains' and biases' sums
        return [(flat(job.dx_rows), [flat(tape.x)], [dw.weight_ih], []),
                (flat(job.dz), [flat(tape.states[0][:-1])], [dw.weight_hh], [])]

    def other_grads(self, dw, tape, da, job) -> None:
        """None left: the gains' and biases' sums are formed in weight_products' pass over DA."""

    def input_side_da(self, da, job: LNGRUBackward) -> np.ndarray:
        return job.dx_rows
