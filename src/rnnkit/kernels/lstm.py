"""LSTM cell (PyTorch gate order i, f, g, o), with optional peepholes and projection.

Forward, one step (``a`` is the pre-activation, ``ax_t = x_t W_ihᵀ + b_ih`` is precomputed)::

    a_t = ax_t + b_hh + h_in W_hhᵀ                             (B, 4H) = [a_i, a_f, a_g, a_o]
    i_t = σ(a_i + w_ci ⊙ c_{t-1})     f_t = σ(a_f + w_cf ⊙ c_{t-1})     g_t = tanh(a_g)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(a_o + w_co ⊙ c_t)                                   (peepholes w_c· are 0 without them)
    m_t = o_t ⊙ tanh(c_t)                                       (B, H)
    h_t = m_t W_hrᵀ   with projection (B, P);   h_t = m_t   without

where h_in = m_h ⊙ h_{t-1} under recurrent dropout (:mod:`rnnkit.inner_dropout`), else h_{t-1}.

Backward, one step (``dh``, ``dc`` reach h_t, c_t)::

    dm    = dh W_hr        (or dh)
    da_o  = dm ⊙ tanh(c_t) ⊙ o_t (1 − o_t)
    dc   += dm ⊙ o_t ⊙ (1 − tanh²(c_t)) + da_o ⊙ w_co
    da_i  = dc ⊙ g_t ⊙ i_t (1 − i_t)
    da_f  = dc ⊙ c_{t-1} ⊙ f_t (1 − f_t)
    da_g  = dc ⊙ i_t ⊙ (1 − g_t²)
    dc_{t-1} = dc ⊙ f_t + da_i ⊙ w_ci + da_f ⊙ w_cf
    dh_{t-1} = m_h ⊙ (da W_hh)          (without recurrent dropout: da W_hh)

Parameter gradients, summed over all steps at once: ``dW_hh = DAᵀ H_in``, ``db_hh = Σ DA``,
``dw_ci = Σ DA_i ⊙ C_prev``, ``dw_cf = Σ DA_f ⊙ C_prev``, ``dw_co = Σ DA_o ⊙ C̃`` (C̃ the cell's
own update f ⊙ c_{t-1} + i ⊙ g, which is c_t except under zoneout),
``dW_hr = DHᵀ M``. See docs/bptt.md for the derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.kernels.base import Entering, PlainInput, Tape, Weights, add_bias_grad, bias_sum, flat, sigmoid_
from rnnkit.kernels.layer_norm import (
    InputNorm, LayerNormInput, new_input_norm, normalise, normalise_backward, sum_rows,
)


@dataclass(frozen=True)
class LSTMAux:
    """Per-step values the backward pass needs besides the gates and states."""

    tanh_c: np.ndarray         # (T, B, H) tanh(c_t)
    m: np.ndarray | None       # (T, B, H) o_t ⊙ tanh(c_t) before projection; None without one


def cell_updates(tape: Tape, H: int) -> np.ndarray:
    """(T, B, H) the cell's own updates c̃_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t: c_t itself, except under
    zoneout (which blends c_t with c_{t-1} after the step)."""
    c = tape.states[1]
    if tape.masks is None or tape.masks.keep is None:
        return c[1:]
    a = tape.gates                                       # (T, B, 4H): i, f, g, o after their σ / tanh
    return a[..., H:2 * H] * c[:-1] + a[..., :H] * a[..., 2 * H:3 * H]


class LSTMKernel(PlainInput):
    num_gates = 4

    def __init__(self, hidden_size: int, proj_size: int = 0, peephole: bool = False) -> None:
        self.hidden_size = hidden_size
        self.proj_size = proj_size
        self.peephole = peephole

    def state_sizes(self) -> tuple[int, int]:
        return (self.proj_size or self.hidden_size, self.hidden_size)      # (h, c)

    def input_side_bias(self, w: Weights) -> np.ndarray | None:
        return bias_sum(w.bias_ih, w.bias_hh)

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> LSTMAux:
        shape = (steps, batch, self.hidden_size)
        return LSTMAux(np.empty(shape, dtype), np.empty(shape, dtype) if self.proj_size else None)

    def aux_at(self, aux: LSTMAux, t: int) -> LSTMAux:
        return LSTMAux(aux.tanh_c[t], None if aux.m is None else aux.m[t])

    def forward_step(self, w: Weights, gates, prev, new, aux: LSTMAux, entering=None) -> None:
        H = self.hidden_size
        c_prev = prev[1]
        h, c = new
        gates += Entering.of(prev, entering).h @ w.weight_hh_t()           # (B, 4H); biases already in
        a_i, a_f, a_g, a_o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        if self.peephole:
            a_i += w.weight_ci * c_prev
            a_f += w.weight_cf * c_prev
        sigmoid_(gates[:, :2 * H])                                       # i and f in one pass
        i, f, g = a_i, a_f, np.tanh(a_g, out=a_g)
        np.multiply(f, c_prev, out=c)
        c += i * g
        if self.peephole:
            a_o += w.weight_co * c
        o = sigmoid_(a_o)
        np.tanh(c, out=aux.tanh_c)
        if self.proj_size:
            np.multiply(o, aux.tanh_c, out=aux.m)
            np.matmul(aux.m, w.weight_hr.T, out=h)
        else:
            np.multiply(o, aux.tanh_c, out=h)

    def backward_step(self, w: Weights, gates, prev, new, aux: LSTMAux, dnew, da, entering=None):
        H = self.hidden_size
        _, c_prev = prev
        dh, dc = dnew
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        dm = dh @ w.weight_hr if self.proj_size else dh                   # (B, H)
        tc = aux.tanh_c
        da_o = da[:, 3 * H:]
        np.multiply(dm * tc, o * (1.0 - o), out=da_o)
        dc = dc + dm * o * (1.0 - tc * tc)
        if self.peephole:
            dc += da_o * w.weight_co
        np.multiply(dc * g, i * (1.0 - i), out=da[:, :H])
        np.multiply(dc * c_prev, f * (1.0 - f), out=da[:, H:2 * H])
        np.multiply(dc * i, 1.0 - g * g, out=da[:, 2 * H:3 * H])
        dc_prev = dc * f
        if self.peephole:
            dc_prev += da[:, :H] * w.weight_ci + da[:, H:2 * H] * w.weight_cf
        return Entering.of(prev, entering).back(da @ w.weight_hh), dc_prev

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da, dnew) -> None:
        H = self.hidden_size
        c_states = tape.states[1]
        dw.weight_hh += flat(da).T @ flat(tape.h_in()[:-1])
        add_bias_grad(dw.bias_hh, da)
        if self.peephole:
            dw.weight_ci += flat(da[..., :H] * c_states[:-1]).sum(axis=0)
            dw.weight_cf += flat(da[..., H:2 * H] * c_states[:-1]).sum(axis=0)
            # c_states[1:] holds c_t except at padded steps, where da is zero anyway; zoneout
            # blends c_t with c_{t-1}, and o_t saw the cell's own update c̃_t.
            dw.weight_co += flat(da[..., 3 * H:] * cell_updates(tape, H)).sum(axis=0)
        if self.proj_size:
            dw.weight_hr += flat(dnew[0]).T @ flat(tape.aux.m)


# -- layer_norm=True ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerNormLSTMAux:
    """What the layer-normalised LSTM's backward needs besides the gates and states."""

    input: InputNorm           # x̂ (T, B, 4H), r_x (T, B, 1): LN(x_t W_ihᵀ)
    z_hat: np.ndarray          # (T, B, 4H) the normalised recurrent product
    z_rstd: np.ndarray         # (T, B, 1)
    c_hat: np.ndarray          # (T, B, H) the normalised cell state
    c_rstd: np.ndarray         # (T, B, 1)
    tanh_c: np.ndarray         # (T, B, H) tanh(γ_c ⊙ ĉ_t + β_c)


class LayerNormLSTMKernel(LayerNormInput):
    """The layer-normalised LSTM (the spec's "Layer-normalised cells"; haste's LayerNormLSTM).

    Forward, one step (LN(v; γ) = γ ⊙ v̂, v̂ = (v − μ) r over all of v's units; see
    :mod:`rnnkit.kernels.layer_norm`)::

        a_t = γ_ih ⊙ x̂_t + b_ih + γ_hh ⊙ ẑ_t + b_hh,   z_t = h_{t-1} W_hhᵀ      (B, 4H)
        i, f, o = σ(a_i), σ(a_f), σ(a_o)     g = tanh(a_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        y_t = γ_c ⊙ ĉ_t + β_c                h_t = o ⊙ tanh(y_t)

    Backward, one step (``dh``, ``dc`` reach h_t, c_t)::

        da_o = dh ⊙ tanh(y_t) ⊙ o(1 − o)
        dy   = dh ⊙ o ⊙ (1 − tanh²(y_t))
        dc  += LN⁻(dy ⊙ γ_c; ĉ_t, r_c)           LN⁻(dv̂; v̂, r) = r (dv̂ − mean dv̂ − v̂ mean(dv̂ v̂))
        da_i = dc ⊙ g ⊙ i(1 − i)   da_f = dc ⊙ c_{t-1} ⊙ f(1 − f)   da_g = dc ⊙ i ⊙ (1 − g²)
        dc_{t-1} = dc ⊙ f
        dz   = LN⁻(da ⊙ γ_hh; ẑ_t, r_h)           dh_{t-1} = dz W_hh

    Parameter gradients over all steps: ``dW_hh = DZᵀ H_prev``, ``dγ_hh = Σ DA ⊙ Ẑ``,
    ``db_hh = Σ DA``, ``dγ_c = Σ DY ⊙ Ĉ``, ``dβ_c = Σ DY``; the input side
    (:class:`~rnnkit.kernels.layer_norm.LayerNormInput`): ``dγ_ih = Σ DA ⊙ X̂``,
    ``db_ih = Σ DA``, and dW_ih, dx from ``LN⁻(DA ⊙ γ_ih; X̂, r_x)``.
    """

    num_gates = 4

    def __init__(self, hidden_size: int, **options) -> None:
        self.hidden_size = hidden_size

    def state_sizes(self) -> tuple[int, int]:
        return (self.hidden_size, self.hidden_size)                     # (h, c)

    def input_side_bias(self, w: Weights) -> np.ndarray | None:
        return bias_sum(w.bias_ih, w.bias_hh)

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> LayerNormLSTMAux:
        H, one = self.hidden_size, (steps, batch, 1)
        return LayerNormLSTMAux(new_input_norm(steps, batch, 4 * H, dtype), np.empty((steps, batch, 4 * H), dtype),
                                np.empty(one, dtype), np.empty((steps, batch, H), dtype), np.empty(one, dtype),
                                np.empty((steps, batch, H), dtype))

    def aux_at(self, aux: LayerNormLSTMAux, t: int) -> LayerNormLSTMAux:
        return LayerNormLSTMAux(None, aux.z_hat[t], aux.z_rstd[t], aux.c_hat[t], aux.c_rstd[t], aux.tanh_c[t])

    def forward_step(self, w: Weights, gates, prev, new, aux: LayerNormLSTMAux) -> None:
        H = self.hidden_size
        h_prev, c_prev = prev
        h, c = new
        z_hat, r = normalise(h_prev @ w.weight_hh_t())                   # (B, 4H), (B, 1)
        aux.z_hat[...], aux.z_rstd[...] = z_hat, r
        gates += z_hat * w.ln_weight_hh                                   # a_t; biases already in
        sigmoid_(gates[:, :2 * H])
        sigmoid_(gates[:, 3 * H:])
        np.tanh(gates[:, 2 * H:3 * H], out=gates[:, 2 * H:3 * H])
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        np.multiply(f, c_prev, out=c)
        c += i * g
        c_hat, r_c = normalise(c)
        aux.c_hat[...], aux.c_rstd[...] = c_hat, r_c
        np.tanh(c_hat * w.ln_weight_c + w.ln_bias_c, out=aux.tanh_c)
        np.multiply(o, aux.tanh_c, out=h)

    def backward_step(self, w: Weights, gates, prev, new, aux: LayerNormLSTMAux, dnew, da):
        H = self.hidden_size
        _, c_prev = prev
        dh, dc = dnew
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        ty = aux.tanh_c
        np.multiply(dh * ty, o * (1.0 - o), out=da[:, 3 * H:])
        dy = dh * o * (1.0 - ty * ty)
        dc = dc + normalise_backward(dy * w.ln_weight_c, aux.c_hat, aux.c_rstd)
        np.multiply(dc * g, i * (1.0 - i), out=da[:, :H])
        np.multiply(dc * c_prev, f * (1.0 - f), out=da[:, H:2 * H])
        np.multiply(dc * i, 1.0 - g * g, out=da[:, 2 * H:3 * H])
        dz = normalise_backward(da * w.ln_weight_hh, aux.z_hat, aux.z_rstd)
        return dz @ w.weight_hh, dc * f

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da, dnew) -> None:
        aux = tape.aux
        dz = normalise_backward(da * w.ln_weight_hh, aux.z_hat, aux.z_rstd)   # (T, B, 4H); 0 where padded
        dw.weight_hh += flat(dz).T @ flat(tape.states[0][:-1])
        dw.ln_weight_hh += sum_rows(da * aux.z_hat)
        add_bias_grad(dw.bias_hh, da)
        o, ty = tape.gates[..., 3 * self.hidden_size:], aux.tanh_c
        dy = dnew[0] * o * (1.0 - ty * ty)                                  # (T, B, H); dnew is 0 where padded
        dw.ln_weight_c += sum_rows(dy * aux.c_hat)
        dw.ln_bias_c += sum_rows(dy)
