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

from dataclasses import dataclass

import numpy as np

from rnnkit.kernels.base import Entering, PlainInput, Tape, Weights, add_bias_grad, bias_sum, flat
from rnnkit.kernels.layer_norm import (
    InputNorm, LayerNormInput, new_input_norm, normalise, normalise_backward, sum_rows,
)


class RNNKernel(PlainInput):
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


# -- layer_norm=True ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerNormRNNAux:
    input: InputNorm           # x̂ (T, B, H), r_x (T, B, 1): LN(x_t W_ihᵀ)
    z_hat: np.ndarray          # (T, B, H) the normalised recurrent product
    z_rstd: np.ndarray         # (T, B, 1)


class LayerNormRNNKernel(LayerNormInput):
    """The layer-normalised Elman cell (the spec's "Layer-normalised cells")::

        h_t = φ(γ_ih ⊙ x̂_t + b_ih + γ_hh ⊙ ẑ_t + b_hh),     z_t = h_{t-1} W_hhᵀ

    Backward, one step: ``da = dh ⊙ φ'(a_t)``, ``dz = LN⁻(da ⊙ γ_hh; ẑ_t, r_h)``,
    ``dh_{t-1} = dz W_hh``; over all steps ``dW_hh = DZᵀ H_prev``, ``dγ_hh = Σ DA ⊙ Ẑ``,
    ``db_hh = Σ DA``, and the input side as :class:`~rnnkit.kernels.layer_norm.LayerNormInput`.
    """

    num_gates = 1

    def __init__(self, hidden_size: int, nonlinearity: str = "tanh", **options) -> None:
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity

    def state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def input_side_bias(self, w: Weights) -> np.ndarray | None:
        return bias_sum(w.bias_ih, w.bias_hh)

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> LayerNormRNNAux:
        H = self.hidden_size
        return LayerNormRNNAux(new_input_norm(steps, batch, H, dtype), np.empty((steps, batch, H), dtype),
                               np.empty((steps, batch, 1), dtype))

    def aux_at(self, aux: LayerNormRNNAux, t: int) -> LayerNormRNNAux:
        return LayerNormRNNAux(None, aux.z_hat[t], aux.z_rstd[t])

    def forward_step(self, w: Weights, gates, prev, new, aux: LayerNormRNNAux) -> None:
        z_hat, r = normalise(prev[0] @ w.weight_hh_t())                  # (B, H), (B, 1)
        aux.z_hat[...], aux.z_rstd[...] = z_hat, r
        gates += z_hat * w.ln_weight_hh                                   # a_t; biases already in
        if self.nonlinearity == "tanh":
            np.tanh(gates, out=gates)
        else:
            np.maximum(gates, 0.0, out=gates)
        new[0][...] = gates

    def backward_step(self, w: Weights, gates, prev, new, aux: LayerNormRNNAux, dnew, da):
        h = gates
        if self.nonlinearity == "tanh":
            np.multiply(dnew[0], 1.0 - h * h, out=da)
        else:
            np.multiply(dnew[0], h > 0, out=da)
        dz = normalise_backward(da * w.ln_weight_hh, aux.z_hat, aux.z_rstd)
        return (dz @ w.weight_hh,)

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da, dnew) -> None:
        aux = tape.aux
        dz = normalise_backward(da * w.ln_weight_hh, aux.z_hat, aux.z_rstd)
        dw.weight_hh += flat(dz).T @ flat(tape.states[0][:-1])
        dw.ln_weight_hh += sum_rows(da * aux.z_hat)
        add_bias_grad(dw.bias_hh, da)
