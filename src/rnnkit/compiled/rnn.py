"""The Elman RNN's time loops, compiled; the equations of :mod:`rnnkit.kernels.rnn`.

Forward: ``h_t = φ(gates[t] + h_{t-1} W_hhᵀ)`` with φ = tanh or ReLU (``gates`` holds the
activations on exit). Backward: ``da = dh ⊙ φ'(h_t)``, ``dh_{t-1} = da W_hh``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.compiled.common import jit, matvec_add, tanh


@jit
def rnn_forward(gates, w_hh_t, use_tanh, h, mask):
    """gates (T, B, H) in/out; h (T+1, B, H) with h[0] set; mask (T, B)."""
    T, B, H = gates.shape
    for t in range(T):
        for b in range(B):
            a, h_prev = gates[t, b], h[t, b]
            matvec_add(a, h_prev, w_hh_t, 0, H)
            for j in range(H):
                a[j] = tanh(a[j]) if use_tanh else max(a[j], 0.0)
                h[t + 1, b, j] = a[j] if mask[t, b] else h_prev[j]


@jit
def rnn_backward(gates, dout, w_hh, use_tanh, mask, carry, da, dh_new):
    """Writes da and dh_new (T, B, H); carry (B, H) goes from dL/dh_T to dL/dh_0."""
    T, B, H = gates.shape
    dh_prev = np.empty(H, gates.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            valid = mask[t, b]
            for j in range(H):
                dh = carry[b, j] + dout[t, b, j] if valid else 0.0
                dh_new[t, b, j] = dh
                h_t = gates[t, b, j]
                da[t, b, j] = dh * (1.0 - h_t * h_t) if use_tanh else (dh if h_t > 0 else 0.0)
            dh_prev[:] = 0.0
            matvec_add(dh_prev, da[t, b], w_hh, 0, H)
            if valid:
                carry[b, :] = dh_prev


class RNNLoops:
    """Drives the two loops for one cell's weights, in the tape layout of :class:`RNNKernel`."""

    def __init__(self, w, nonlinearity: str) -> None:
        self.w, self.use_tanh = w, nonlinearity == "tanh"

    def forward(self, gates, states, aux, mask) -> None:
        rnn_forward(gates, self.w.weight_hh_t(), self.use_tanh, states[0], mask)

    def backward(self, tape, dout, dfinal, da, dnew, mask) -> tuple:
        carry = np.array(dfinal[0], da.dtype).reshape(da.shape[1], -1)
        rnn_backward(tape.gates, dout, self.w.weight_hh, self.use_tanh, mask, carry, da, dnew[0])
        return (carry,)
