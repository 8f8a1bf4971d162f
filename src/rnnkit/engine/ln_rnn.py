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

from typing import NamedTuple

import numpy as np
from numba.extending import overload

from rnnkit.engine import workspace
from rnnkit.engine.activations import tanh
from rnnkit.engine.gemm import pack
from rnnkit.engine.jit import jit
from rnnkit.engine.layer_norm import (
    keep_product, normalise_rows, products_backward, product_grad_row, row_moments,
    tape_product_grad,
)
from rnnkit.engine.pack import pack_gates
from rnnkit.engine.schedule import counters_for, lanes_of, panel_product, recurrence_scratch, task
from rnnkit.engine.vector import positive, vload, vstore, vsum
from rnnkit.kernels.base import flat
from rnnkit.kernels.layer_norm import InputNorm
from rnnkit.kernels.rnn import LayerNormRNNAux, LayerNormRNNKernel
from rnnkit.kinds import register_jobs


class LNRNNForward(NamedTuple):
    panels: np.ndarray          # (P, H, U) W_hhᵀ, U units per panel (pack_gates)
    gain_hh: np.ndarray         # (H,) γ_hh
    relu: bool                  # φ = relu (else tanh)
    gates: np.ndarray           # (T, B, H) in: the input side; out: h_t
    h: np.ndarray               # (T+1, B, H) h[0] given
    z: np.ndarray               # (B, H) this step's raw product
    z_part: np.ndarray          # (P, B, 2) float64
    z_hat: np.ndarray           # (T, B, H)
    z_rstd: np.ndarray          # (T, B, 1)
    mask: np.ndarray
    steps: int                  # T
    chunks: np.ndarray
    counters: np.ndarray
    scratch: np.ndarray


class LNRNNBackward(NamedTuple):
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
    steps: int                  # T + 1
    chunks: np.ndarray
    counters: np.ndarray
    scratch: np.ndarray
    gain_ih: np.ndarray
    dx_rows: np.ndarray         # (T, B, H) after the recurrence: LN⁻(DA ⊙ γ_ih; X̂, r_x)


@jit(refcount=False)
def forward_panel(job, t, phase, p, acc):
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
def backward_panel(job, s, p, worker, acc):
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


@overload(task)
def _ln_rnn_task(job, step, phase, chunk, worker):
    if job.instance_class is LNRNNForward:
        return lambda job, step, phase, chunk, worker: forward_panel(job, step, phase, chunk, job.scratch[worker])
    if job.instance_class is LNRNNBackward:
        return lambda job, step, phase, chunk, worker: backward_panel(job, step, chunk, worker,
                                                                      job.scratch[worker])
    return None


@register_jobs(LayerNormRNNKernel)
class LNRNNJobs:
    """Builds the layer-normalised RNN's job records (:mod:`rnnkit.engine.layer`)."""

    def __init__(self, kernel: LayerNormRNNKernel) -> None:
        self.kernel = kernel
        self.relu = kernel.nonlinearity == "relu"

    def step_kind(self) -> None:
        """No compiled streaming step: a step is a sequence of one."""
        return None

    def new_aux(self, steps: int, batch: int, dtype) -> LayerNormRNNAux:
        H, e = self.kernel.hidden_size, workspace.empty
        return LayerNormRNNAux(InputNorm(e((steps, batch, H), dtype), e((steps, batch, 1), dtype)),
                               e((steps, batch, H), dtype), e((steps, batch, 1), dtype))

    def forward_job(self, w, gates, states, aux, mask, workers, keep_tape=True) -> LNRNNForward:
        T, B, H = gates.shape
        bias = self.kernel.input_side_bias(w)
        normalise_rows(flat(gates), w.ln_weight_ih, np.zeros(H, gates.dtype) if bias is None else bias,
                       flat(aux.input.x_hat), flat(aux.input.rstd))
        panels = pack_gates(w.weight_hh, 1)
        P = panels.shape[0]
        return LNRNNForward(panels, w.ln_weight_hh, self.relu, gates, states[0], np.zeros((B, H), gates.dtype),
                            np.zeros((P, B, 2)), aux.z_hat, aux.z_rstd, mask, T, np.array([P, P]),
                            counters_for(T, 2, workers), recurrence_scratch(workers, B, gates.dtype))

    def backward_job(self, w, tape, dout, da, carry, mask, workers) -> LNRNNBackward:
        T, B, H = da.shape
        panels = pack(w.weight_hh)
        P = panels.shape[0]
        return LNRNNBackward(panels, w.ln_weight_hh, self.relu, tape.gates, tape.aux.z_hat, tape.aux.z_rstd, dout, da,
                             workspace.empty((T, B, H), da.dtype), np.zeros((2, P, B, 2)),
                             np.zeros((workers, B, H), da.dtype), np.full(workers, -1, np.int64), carry[0], mask,
                             T + 1, np.array([P]), counters_for(T + 1, 1, workers),
                             recurrence_scratch(workers, B, da.dtype), w.ln_weight_ih,
                             workspace.empty((T, B, H), da.dtype))

    def weight_products(self, dw, tape, da, job: LNRNNBackward) -> list:
        """dW_ih += DXᵀ X with DX = LN⁻(DA ⊙ γ_ih; X̂, r_x);  dW_hh += DZᵀ H_prev; and, in the same
        pass over DA that forms DX, dγ_ih, db_ih, dγ_hh, db_hh (:func:`.layer_norm.products_backward`)."""
        products_backward(job.gain_ih, dw, tape.aux, da, da, job.dx_rows)    # and the gains' and biases' sums
        return [(flat(job.dx_rows), [flat(tape.x)], [dw.weight_ih], []),
                (flat(job.dz), [flat(tape.states[0][:-1])], [dw.weight_hh], [])]

    def other_grads(self, dw, tape, da, job) -> None:
        """None left: the gains' and biases' sums are formed in weight_products' pass over DA."""

    def input_side_da(self, da, job: LNRNNBackward) -> np.ndarray:
        return job.dx_rows
