"""The LSTM's time loops, compiled; the equations of :mod:`rnnkit.kernels.lstm` (no projection).

Forward, per step and sequence (``gates[t, b]`` holds ``x_t W_ihᵀ + b_ih + b_hh`` on entry and the
activations [i, f, g, o] on exit)::

    a = gates[t, b] + h_{t-1} W_hhᵀ
    i = σ(a_i + w_ci ⊙ c_{t-1}),  f = σ(a_f + w_cf ⊙ c_{t-1}),  g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g,    o = σ(a_o + w_co ⊙ c_t),      h_t = o ⊙ tanh(c_t)

Backward (``dh``, ``dc`` reach step t; zero at padded steps, whose carry passes through)::

    da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)
    dc  += dh ⊙ o ⊙ (1 − tanh²(c_t)) + da_o ⊙ w_co
    da_i = dc ⊙ g ⊙ i(1 − i),  da_f = dc ⊙ c_{t-1} ⊙ f(1 − f),  da_g = dc ⊙ i ⊙ (1 − g²)
    dc_{t-1} = dc ⊙ f + da_i ⊙ w_ci + da_f ⊙ w_cf,   dh_{t-1} = da W_hh
"""

from __future__ import annotations

import numpy as np

from rnnkit.compiled.common import jit, matvec_add, sigmoid, tanh


@jit
def lstm_forward(gates, w_hh_t, w_ci, w_cf, w_co, peephole, h, c, tanh_c, mask):
    """gates (T, B, 4H) in/out; h, c (T+1, B, H) with [0] set; tanh_c (T, B, H); mask (T, B)."""
    T, B, G = gates.shape
    H = G // 4
    for t in range(T):
        for b in range(B):
            a, h_prev, c_prev = gates[t, b], h[t, b], c[t, b]
            matvec_add(a, h_prev, w_hh_t, 0, G)
            for j in range(H):
                a_i, a_f = a[j], a[H + j]
                if peephole:
                    a_i += w_ci[j] * c_prev[j]
                    a_f += w_cf[j] * c_prev[j]
                i, f, g = sigmoid(a_i), sigmoid(a_f), tanh(a[2 * H + j])
                c_t = f * c_prev[j] + i * g
                a_o = a[3 * H + j] + (w_co[j] * c_t if peephole else 0.0)
                o = sigmoid(a_o)
                tc = tanh(c_t)
                a[j], a[H + j], a[2 * H + j], a[3 * H + j] = i, f, g, o
                tanh_c[t, b, j] = tc
                if mask[t, b]:
                    c[t + 1, b, j], h[t + 1, b, j] = c_t, o * tc
                else:                                                  # padded: state unchanged
                    c[t + 1, b, j], h[t + 1, b, j] = c_prev[j], h_prev[j]


@jit
def lstm_backward(gates, c, tanh_c, dout, w_hh, w_ci, w_cf, w_co, peephole, mask, carry_h, carry_c,
                  da, dh_new, dc_new):
    """Writes da (T, B, 4H), dh_new, dc_new (T, B, H); carry_h, carry_c (B, H) go from the final
    states' gradients (in) to the initial states' (out)."""
    T, B, G = gates.shape
    H = G // 4
    dh_prev = np.empty(H, gates.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            valid = mask[t, b]
            gt, d = gates[t, b], da[t, b]
            for j in range(H):
                dh = carry_h[b, j] + dout[t, b, j] if valid else 0.0
                dc = carry_c[b, j] if valid else 0.0
                dh_new[t, b, j], dc_new[t, b, j] = dh, dc
                i, f, g, o, tc = gt[j], gt[H + j], gt[2 * H + j], gt[3 * H + j], tanh_c[t, b, j]
                da_o = dh * tc * o * (1.0 - o)
                dc += dh * o * (1.0 - tc * tc) + (da_o * w_co[j] if peephole else 0.0)
                da_i = dc * g * i * (1.0 - i)
                da_f = dc * c[t, b, j] * f * (1.0 - f)
                d[j], d[H + j], d[2 * H + j], d[3 * H + j] = da_i, da_f, dc * i * (1.0 - g * g), da_o
                dc_prev = dc * f + (da_i * w_ci[j] + da_f * w_cf[j] if peephole else 0.0)
                if valid:
                    carry_c[b, j] = dc_prev
            dh_prev[:] = 0.0
            matvec_add(dh_prev, d, w_hh, 0, H)
            if valid:
                carry_h[b, :] = dh_prev


class LSTMLoops:
    """Drives the two loops for one cell's weights, in the tape layout of :class:`LSTMKernel`."""

    def __init__(self, w, peephole: bool) -> None:
        self.w, self.peephole = w, peephole
        none = np.zeros(0, w.weight_hh.dtype)
        self.peeps = (w.weight_ci, w.weight_cf, w.weight_co) if peephole else (none, none, none)

    def forward(self, gates, states, aux, mask) -> None:
        h, c = states
        lstm_forward(gates, self.w.weight_hh_t(), *self.peeps, self.peephole, h, c,
                     aux.tanh_c, mask)

    def backward(self, tape, dout, dfinal, da, dnew, mask) -> tuple:
        carry_h, carry_c = (np.array(d, da.dtype).reshape(da.shape[1], -1) for d in dfinal)
        lstm_backward(tape.gates, tape.states[1], tape.aux.tanh_c, dout, self.w.weight_hh, *self.peeps,
                      self.peephole, mask, carry_h, carry_c, da, dnew[0], dnew[1])
        return carry_h, carry_c
