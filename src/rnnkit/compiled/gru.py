"""The GRU's time loops, compiled; the equations of :mod:`rnnkit.kernels.gru`, both reset forms.

Forward (``gates[t, b]`` holds ``x_t W_ihᵀ + b_ih + [b_hr, b_hz, 0 or b_hn]`` on entry and the
activations [r, z, n] on exit)::

    r = σ(a_r + h_{t-1} W_hrᵀ),  z = σ(a_z + h_{t-1} W_hzᵀ)
    reset_after:  hn = h_{t-1} W_hnᵀ + b_hn,  n = tanh(a_n + r ⊙ hn)
    Cho 2014:     n = tanh(a_n + (r ⊙ h_{t-1}) W_hnᵀ)
    h_t = n + z ⊙ (h_{t-1} − n)

Backward (``dh`` reaches h_t)::

    da_n = dh ⊙ (1 − z) ⊙ (1 − n²),   da_z = dh ⊙ (h_{t-1} − n) ⊙ z(1 − z)
    reset_after:  da_r = da_n ⊙ hn ⊙ r(1 − r),  dh_{t-1} = dh ⊙ z + [da_r, da_z, da_n ⊙ r] W_hh
    Cho 2014:     drh = da_n W_hn,  da_r = drh ⊙ h_{t-1} ⊙ r(1 − r),
                  dh_{t-1} = dh ⊙ z + drh ⊙ r + [da_r, da_z] W_h{r,z}
"""

from __future__ import annotations

import numpy as np

from rnnkit.compiled.common import jit, matvec_add, sigmoid, tanh


@jit
def gru_forward(gates, w_hh_t, b_hn, reset_after, h, hn, mask):
    """gates (T, B, 3H) in/out; h (T+1, B, H) with h[0] set; hn (T, B, H) (reset_after); mask (T, B)."""
    T, B, G = gates.shape
    H = G // 3
    ah = np.empty(G, gates.dtype)                     # h_{t-1} W_hhᵀ (only [:2H] for Cho's form)
    rh = np.empty(H, gates.dtype)
    for t in range(T):
        for b in range(B):
            a, h_prev = gates[t, b], h[t, b]
            ah[:] = 0.0
            matvec_add(ah, h_prev, w_hh_t, 0, G if reset_after else 2 * H)
            for j in range(2 * H):
                a[j] = sigmoid(a[j] + ah[j])
            if reset_after:
                for j in range(H):
                    hn[t, b, j] = ah[2 * H + j] + b_hn[j]
                    a[2 * H + j] += a[j] * hn[t, b, j]
            else:
                for j in range(H):
                    rh[j] = a[j] * h_prev[j]
                matvec_add(a[2 * H:], rh, w_hh_t, 2 * H, H)
            for j in range(H):
                n = tanh(a[2 * H + j])
                a[2 * H + j] = n
                z = a[H + j]
                h[t + 1, b, j] = n + z * (h_prev[j] - n) if mask[t, b] else h_prev[j]


@jit
def gru_backward(gates, h, hn, dout, w_hh, reset_after, mask, carry, da, dh_new):
    """Writes da (T, B, 3H) and dh_new (T, B, H); carry (B, H) goes from dL/dh_T to dL/dh_0."""
    T, B, G = gates.shape
    H = G // 3
    dh_prev = np.empty(H, gates.dtype)
    drh = np.empty(H, gates.dtype)
    da_h = np.empty(G, gates.dtype)                   # [da_r, da_z, da_n ⊙ r]
    for t in range(T - 1, -1, -1):
        for b in range(B):
            valid = mask[t, b]
            gt, d, h_prev = gates[t, b], da[t, b], h[t, b]
            for j in range(H):
                dh = carry[b, j] + dout[t, b, j] if valid else 0.0
                dh_new[t, b, j] = dh
                z, n = gt[H + j], gt[2 * H + j]
                d[2 * H + j] = dh * (1.0 - z) * (1.0 - n * n)
                d[H + j] = dh * (h_prev[j] - n) * z * (1.0 - z)
                dh_prev[j] = dh * z
            if reset_after:
                for j in range(H):
                    r = gt[j]
                    d[j] = d[2 * H + j] * hn[t, b, j] * r * (1.0 - r)
                    da_h[j], da_h[H + j], da_h[2 * H + j] = d[j], d[H + j], d[2 * H + j] * r
                matvec_add(dh_prev, da_h, w_hh, 0, H)
            else:
                drh[:] = 0.0
                matvec_add(drh, d[2 * H:], w_hh[2 * H:], 0, H)
                for j in range(H):
                    r = gt[j]
                    d[j] = drh[j] * h_prev[j] * r * (1.0 - r)
                    dh_prev[j] += drh[j] * r
                matvec_add(dh_prev, d[:2 * H], w_hh, 0, H)
            if valid:
                carry[b, :] = dh_prev


class GRULoops:
    """Drives the two loops for one cell's weights, in the tape layout of :class:`GRUKernel`."""

    def __init__(self, w, reset_after: bool) -> None:
        self.w, self.reset_after = w, reset_after
        H = w.weight_hh.shape[1]
        has_bias = w.bias_hh is not None and reset_after
        self.b_hn = w.bias_hh[2 * H:] if has_bias else np.zeros(H, w.weight_hh.dtype)
        self.none = np.zeros((1, 1, 1), w.weight_hh.dtype)          # stands for hn in Cho's form

    def forward(self, gates, states, aux, mask) -> None:
        hn = aux.hn if self.reset_after else self.none
        gru_forward(gates, self.w.weight_hh_t(), self.b_hn, self.reset_after, states[0],
                    hn, mask)

    def backward(self, tape, dout, dfinal, da, dnew, mask) -> tuple:
        carry = np.array(dfinal[0], da.dtype).reshape(da.shape[1], -1)
        hn = tape.aux.hn if self.reset_after else self.none
        gru_backward(tape.gates, tape.states[0], hn, dout, self.w.weight_hh, self.reset_after, mask, carry, da,
                     dnew[0])
        return (carry,)
