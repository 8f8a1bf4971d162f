"""Layer normalisation inside a cell (Ba, Kiros & Hinton 2016), forward and backward, in NumPy.

Over the last axis of v (n values per row; var biased, ε = 1e-5 as PyTorch's ``LayerNorm``)::

    μ = mean(v)      r = 1 / sqrt(mean((v − μ)²) + ε)      v̂ = (v − μ) ⊙ r      y = γ ⊙ v̂ (+ β)

Backward (dy reaches y; the means are over the same n values)::

    dγ = Σ dy ⊙ v̂      dβ = Σ dy      dv̂ = dy ⊙ γ
    dv = r ⊙ (dv̂ − mean(dv̂) − v̂ ⊙ mean(dv̂ ⊙ v̂))

The layer-normalised cells (:mod:`rnnkit.kernels.lstm`, ``gru``, ``rnn``) normalise each of the
two products over all its G·H pre-activations, and the LSTM its cell state; docs/bptt.md derives
the backward. :class:`LayerNormInput` is their common input side: the product ``x_t W_ihᵀ`` of
all steps is normalised in one pass before the recurrence, and its gradient taken back in one pass
after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.kernels.base import Weights, flat

EPS = 1e-5                                  # PyTorch's LayerNorm default (the spec's ε)


def normalise(v: np.ndarray, eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """(v̂, r) over the last axis: v̂ like v, r (…, 1)."""
    mu = v.mean(axis=-1, keepdims=True)
    d = v - mu
    r = 1.0 / np.sqrt((d * d).mean(axis=-1, keepdims=True) + eps)
    return d * r, r


def normalise_backward(dv_hat: np.ndarray, v_hat: np.ndarray, r: np.ndarray) -> np.ndarray:
    """dv from dv̂ = dy ⊙ γ (the gradient reaching the normalised values)."""
    return r * (dv_hat - dv_hat.mean(axis=-1, keepdims=True)
                - v_hat * (dv_hat * v_hat).mean(axis=-1, keepdims=True))


def sum_rows(a: np.ndarray) -> np.ndarray:
    """Σ over every axis but the last: (…, n) -> (n,)."""
    return flat(a).sum(axis=0)


@dataclass(frozen=True)
class InputNorm:
    """The input product's normalisation over all steps: x̂ (T, B, G·H) and r (T, B, 1)."""

    x_hat: np.ndarray
    rstd: np.ndarray


class LayerNormInput:
    """The input side of a layer-normalised cell: ``LN(x_t W_ihᵀ; γ_ih) + b_ih (+ constant b_hh)``.

    A kernel using it keeps the record in its aux as ``aux.input`` (an :class:`InputNorm`).
    """

    def input_side(self, w: Weights, gates: np.ndarray, aux) -> None:
        """gates (T, B, G·H) holds x_t W_ihᵀ; leaves γ_ih ⊙ x̂ plus the input-side biases."""
        x_hat, r = normalise(gates)
        aux.input.x_hat[...] = x_hat
        aux.input.rstd[...] = r
        np.multiply(x_hat, w.ln_weight_ih, out=gates)
        bias = self.input_side_bias(w)
        if bias is not None:
            gates += bias

    def input_side_grad(self, w: Weights, dw: Weights, aux, da: np.ndarray) -> np.ndarray:
        """From DA (T, B, G·H), the pre-activation gradients: dγ_ih, db_ih, and the gradient
        reaching x_t W_ihᵀ (what dW_ih and dx are products of)."""
        x_hat, r = aux.input.x_hat, aux.input.rstd
        dw.ln_weight_ih += sum_rows(da * x_hat)
        if dw.bias_ih is not None:
            dw.bias_ih += sum_rows(da)
        return normalise_backward(da * w.ln_weight_ih, x_hat, r)


def new_input_norm(steps: int, batch: int, width: int, dtype) -> InputNorm:
    return InputNorm(np.empty((steps, batch, width), dtype), np.empty((steps, batch, 1), dtype))
