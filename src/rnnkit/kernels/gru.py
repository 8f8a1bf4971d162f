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

from rnnkit.kernels.base import Entering, Tape, Weights, add_bias_grad, bias_sum, flat, sigmoid_


@dataclass(frozen=True)
class GRUAux:
    hn: np.ndarray | None      # (T, B, H) h_{t-1} W_hnᵀ + b_hn (reset_after only)


class GRUKernel:
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
