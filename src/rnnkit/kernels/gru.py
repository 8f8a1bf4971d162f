"""GRU cell (PyTorch gate order r, z, n), in both forms of the reset gate.

Forward, one step (``ax_t = x_t W_ihᵀ + b_ih`` is precomputed; blocks r, z, n)::

    r_t = σ(ax_r + h_in W_hrᵀ + b_hr)
    z_t = σ(ax_z + h_in W_hzᵀ + b_hz)
    reset_after=True  (PyTorch):  hn_t = h_in W_hnᵀ + b_hn,   n_t = tanh(ax_n + r_t ⊙ hn_t)
    reset_after=False (Cho 2014): n_t = tanh(ax_n + (r_t ⊙ h_in) W_hnᵀ + b_hn)
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

where h_in = m_h ⊙ h_{t-1} under recurrent dropout (:mod:`rnnkit.inner_dropout`), else h_{t-1}:
the products read h_in, the update z_t ⊙ h_{t-1} the carried state itself.

Backward, one step (``dh`` reaches h_t)::

    da_n = dh ⊙ (1 − z_t) ⊙ (1 − n_t²)
    da_z = dh ⊙ (h_{t-1} − n_t) ⊙ z_t (1 − z_t)
    reset_after=True:   da_r = da_n ⊙ hn_t ⊙ r_t (1 − r_t)
                        dh_{t-1} = dh ⊙ z_t + m_h ⊙ ([da_r, da_z, da_n ⊙ r_t] W_hh)
    reset_after=False:  drh  = da_n W_hn
                        da_r = drh ⊙ h_in ⊙ r_t (1 − r_t)
                        dh_{t-1} = dh ⊙ z_t + m_h ⊙ (drh ⊙ r_t + [da_r, da_z] W_h{r,z})

(m_h = 1 without recurrent dropout.) Parameter gradients over all steps, one matrix product each
(see docs/bptt.md)::

    reset_after=True:   dW_hh = [DA_r, DA_z, DA_n ⊙ R]ᵀ H_in,  db_hh = Σ [DA_r, DA_z, DA_n ⊙ R]
    reset_after=False:  dW_h{r,z} = DA_{r,z}ᵀ H_in,  dW_hn = DA_nᵀ (R ⊙ H_in),  db_hh = Σ DA
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.kernels.base import Entering, PlainInput, Tape, Weights, add_bias_grad, bias_sum, flat, sigmoid_
from rnnkit.kernels.layer_norm import (
    InputNorm, LayerNormInput, new_input_norm, normalise, normalise_backward, sum_rows,
)


@dataclass(frozen=True)
class GRUAux:
    hn: np.ndarray | None      # (T, B, H) h_{t-1} W_hnᵀ + b_hn (reset_after only)


class GRUKernel(PlainInput):
    num_gates = 3

    def __init__(self, hidden_size: int, reset_after: bool = True) -> None:
        self.hidden_size = hidden_size
        self.reset_after = reset_after

    def state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def input_side_bias(self, w: Weights) -> np.ndarray | None:
        """b_ih + b_hh, except b_hn under reset_after (it sits inside r ⊙ (·))."""
        if w.bias_hh is None or not self.reset_after:
            return bias_sum(w.bias_ih, w.bias_hh)
        b = w.bias_hh.copy()
        b[2 * self.hidden_size:] = 0
        return bias_sum(w.bias_ih, b)

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> GRUAux:
        return GRUAux(np.empty((steps, batch, self.hidden_size), dtype) if self.reset_after else None)

    def aux_at(self, aux: GRUAux, t: int) -> GRUAux:
        return GRUAux(None if aux.hn is None else aux.hn[t])

    def forward_step(self, w: Weights, gates, prev, new, aux: GRUAux, entering=None) -> None:
        H = self.hidden_size
        (h_prev,), (h,) = prev, new
        h_in = Entering.of(prev, entering).h
        rz, a_n = gates[:, :2 * H], gates[:, 2 * H:]                       # b_hr, b_hz already in
        if self.reset_after:
            ah = h_in @ w.weight_hh_t()                                     # (B, 3H)
            rz += ah[:, :2 * H]
            sigmoid_(rz)
            hn = aux.hn
            hn[...] = ah[:, 2 * H:]
            if w.bias_hh is not None:
                hn += w.bias_hh[2 * H:]
            a_n += rz[:, :H] * hn
        else:                                                             # b_hn already in a_n too
            rz += h_in @ w.weight_hh_t()[:, :2 * H]
            sigmoid_(rz)
            a_n += (rz[:, :H] * h_in) @ w.weight_hh_t()[:, 2 * H:]
        n = np.tanh(a_n, out=a_n)
        z = rz[:, H:]
        np.subtract(h_prev, n, out=h)
        h *= z
        h += n                                                           # n + z (h_prev − n)

    def backward_step(self, w: Weights, gates, prev, new, aux: GRUAux, dnew, da, entering=None):
        H = self.hidden_size
        e = Entering.of(prev, entering)
        (h_prev,), (dh,) = prev, dnew
        r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        da_r, da_z, da_n = da[:, :H], da[:, H:2 * H], da[:, 2 * H:]
        np.multiply(dh * (1.0 - z), 1.0 - n * n, out=da_n)
        np.multiply(dh * (h_prev - n), z * (1.0 - z), out=da_z)
        dh_prev = dh * z
        if self.reset_after:
            np.multiply(da_n * aux.hn, r * (1.0 - r), out=da_r)
            da_h = da.copy()
            da_h[:, 2 * H:] *= r
            dh_prev += e.back(da_h @ w.weight_hh)
        else:
            drh = da_n @ w.weight_hh[2 * H:]
            np.multiply(drh * e.h, r * (1.0 - r), out=da_r)
            dh_prev += e.back(drh * r + da[:, :2 * H] @ w.weight_hh[:2 * H])
        return (dh_prev,)

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da, dnew) -> None:
        H = self.hidden_size
        h_prev = tape.h_in()[:-1]                                         # (T, B, H) H_in
        r = tape.gates[..., :H]
        if self.reset_after:
            da_h = da.copy()
            da_h[..., 2 * H:] *= r
            dw.weight_hh += flat(da_h).T @ flat(h_prev)
            add_bias_grad(dw.bias_hh, da_h)
        else:
            dw.weight_hh[:2 * H] += flat(da[..., :2 * H]).T @ flat(h_prev)
            dw.weight_hh[2 * H:] += flat(da[..., 2 * H:]).T @ flat(r * h_prev)
            add_bias_grad(dw.bias_hh, da)


# -- layer_norm=True (reset_after form) --------------------------------------------------------------

@dataclass(frozen=True)
class LayerNormGRUAux:
    input: InputNorm           # x̂ (T, B, 3H), r_x (T, B, 1): LN(x_t W_ihᵀ)
    z_hat: np.ndarray          # (T, B, 3H) the normalised recurrent product
    z_rstd: np.ndarray         # (T, B, 1)
    hn: np.ndarray             # (T, B, H) γ_hn ⊙ ẑ_n + b_hn


class LayerNormGRUKernel(LayerNormInput):
    """The layer-normalised GRU, reset-after form (the spec's "Layer-normalised cells")::

        [r_x, z_x, n_x] = γ_ih ⊙ x̂_t + b_ih,   [r_h, z_h, hn_t] = γ_hh ⊙ ẑ_t + b_hh,   z_t = h_{t-1} W_hhᵀ
        r_t = σ(r_x + r_h)   u_t = σ(z_x + z_h)   n_t = tanh(n_x + r_t ⊙ hn_t)
        h_t = (1 − u_t) ⊙ n_t + u_t ⊙ h_{t-1}

    (the update gate is written u here, z being the product). Backward, one step::

        da_n = dh ⊙ (1 − u) ⊙ (1 − n²)    da_u = dh ⊙ (h_{t-1} − n) ⊙ u(1 − u)
        da_r = da_n ⊙ hn ⊙ r(1 − r)       dah = [da_r, da_u, da_n ⊙ r]   (reaches γ_hh ⊙ ẑ + b_hh)
        dz = LN⁻(dah ⊙ γ_hh; ẑ_t, r_h)    dh_{t-1} = dh ⊙ u + dz W_hh

    Parameter gradients: ``dW_hh = DZᵀ H_prev``, ``dγ_hh = Σ DAH ⊙ Ẑ``, ``db_hh = Σ DAH``; the
    input side as :class:`~rnnkit.kernels.layer_norm.LayerNormInput` (from DA = [da_r, da_u, da_n]).
    """

    num_gates = 3

    def __init__(self, hidden_size: int, **options) -> None:
        self.hidden_size = hidden_size

    def state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def input_side_bias(self, w: Weights) -> np.ndarray | None:
        """b_ih + b_hh except b_hn (inside r ⊙ (·))."""
        return GRUKernel.input_side_bias(self, w)

    @property
    def reset_after(self) -> bool:
        return True

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> LayerNormGRUAux:
        H = self.hidden_size
        return LayerNormGRUAux(new_input_norm(steps, batch, 3 * H, dtype), np.empty((steps, batch, 3 * H), dtype),
                               np.empty((steps, batch, 1), dtype), np.empty((steps, batch, H), dtype))

    def aux_at(self, aux: LayerNormGRUAux, t: int) -> LayerNormGRUAux:
        return LayerNormGRUAux(None, aux.z_hat[t], aux.z_rstd[t], aux.hn[t])

    def forward_step(self, w: Weights, gates, prev, new, aux: LayerNormGRUAux) -> None:
        H = self.hidden_size
        (h_prev,), (h,) = prev, new
        z_hat, r = normalise(h_prev @ w.weight_hh_t())                   # (B, 3H), (B, 1)
        aux.z_hat[...], aux.z_rstd[...] = z_hat, r
        ah = z_hat * w.ln_weight_hh
        rz, a_n = gates[:, :2 * H], gates[:, 2 * H:]                     # b_hr, b_hz already in
        rz += ah[:, :2 * H]
        sigmoid_(rz)
        aux.hn[...] = ah[:, 2 * H:]
        if w.bias_hh is not None:
            aux.hn[...] += w.bias_hh[2 * H:]
        a_n += rz[:, :H] * aux.hn
        n = np.tanh(a_n, out=a_n)
        np.subtract(h_prev, n, out=h)
        h *= rz[:, H:]
        h += n                                                           # n + u (h_prev − n)

    def _dah(self, gates, da):
        """dah = [da_r, da_u, da_n ⊙ r], the gradient reaching γ_hh ⊙ ẑ + b_hh (… , 3H)."""
        H = self.hidden_size
        dah = da.copy()
        dah[..., 2 * H:] *= gates[..., :H]
        return dah

    def backward_step(self, w: Weights, gates, prev, new, aux: LayerNormGRUAux, dnew, da):
        H = self.hidden_size
        (h_prev,), (dh,) = prev, dnew
        r, u, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        np.multiply(dh * (1.0 - u), 1.0 - n * n, out=da[:, 2 * H:])
        np.multiply(dh * (h_prev - n), u * (1.0 - u), out=da[:, H:2 * H])
        np.multiply(da[:, 2 * H:] * aux.hn, r * (1.0 - r), out=da[:, :H])
        dz = normalise_backward(self._dah(gates, da) * w.ln_weight_hh, aux.z_hat, aux.z_rstd)
        return (dh * u + dz @ w.weight_hh,)

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da, dnew) -> None:
        aux = tape.aux
        dah = self._dah(tape.gates, da)                                     # (T, B, 3H)
        dz = normalise_backward(dah * w.ln_weight_hh, aux.z_hat, aux.z_rstd)
        dw.weight_hh += flat(dz).T @ flat(tape.states[0][:-1])
        dw.ln_weight_hh += sum_rows(dah * aux.z_hat)
        add_bias_grad(dw.bias_hh, dah)
