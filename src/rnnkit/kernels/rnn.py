"""Elman RNN cell.

Forward, one step (``ax_t = x_t W_ihᵀ + b_ih`` is precomputed)::

    h_t = φ(ax_t + h_in W_hhᵀ + b_hh),        φ = tanh or relu

where h_in = m_h ⊙ h_{t-1} under recurrent dropout (:mod:`rnnkit.inner_dropout`), else h_{t-1}.

Backward, one step (``dh`` reaches h_t)::

    da = dh ⊙ φ'(a_t)        φ' = 1 − h_t² (tanh) or [h_t > 0] (relu)
    dh_{t-1} = m_h ⊙ (da W_hh)        (without recurrent dropout: da W_hh)

Parameter gradients over all steps: ``dW_hh = DAᵀ H_in``, ``db_hh = Σ DA``.
"""

from __future__ import annotations

import numpy as np

from rnnkit.kernels.base import Entering, Tape, Weights, add_bias_grad, bias_sum, flat


class RNNKernel:
    num_gates = 1

    def __init__(self, hidden_size: int, nonlinearity: str = "tanh") -> None:
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity

    def state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def input_side_bias(self, w: Weights) -> np.ndarray | None:
        return bias_sum(w.bias_ih, w.bias_hh)

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> None:
        return None

    def aux_at(self, aux: None, t: int) -> None:
        return None

    def forward_step(self, w: Weights, gates, prev, new, aux: None, entering=None) -> None:
        gates += Entering.of(prev, entering).h @ w.weight_hh_t()            # (B, H): a_t, biases already in
        if self.nonlinearity == "tanh":
            np.tanh(gates, out=gates)
        else:
            np.maximum(gates, 0.0, out=gates)
        new[0][...] = gates

    def backward_step(self, w: Weights, gates, prev, new, aux: None, dnew, da, entering=None):
        h = gates
        if self.nonlinearity == "tanh":
            np.multiply(dnew[0], 1.0 - h * h, out=da)
        else:
            np.multiply(dnew[0], h > 0, out=da)
        return (Entering.of(prev, entering).back(da @ w.weight_hh),)

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da, dnew) -> None:
        dw.weight_hh += flat(da).T @ flat(tape.h_in()[:-1])
        add_bias_grad(dw.bias_hh, da)
