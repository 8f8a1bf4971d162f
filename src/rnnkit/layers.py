"""The recurrent layers: ``RNN``, ``LSTM`` and ``GRU``, drop-in for their ``torch.nn`` namesakes.

Each takes time-major input (T, B, I) — (B, T, I) with ``batch_first`` — or unbatched (T, I), an
optional initial state (zeros when None) and optional per-sequence ``lengths`` with PyTorch's
packed-sequence semantics. ``backward(dout, dstate)`` differentiates the most recent call.

Every layer also takes ``recurrent_dropout=p`` and ``zoneout=p``, dropout inside the recurrence
in training mode (:mod:`rnnkit.inner_dropout`; the spec's section of that name):

    h_{t-1} W_hhᵀ  →  (m_h ⊙ h_{t-1}) W_hhᵀ,   m_h ~ Bernoulli(1 − p)/(1 − p) per sequence (B, H_out)
    s_t = k_t ⊙ s_{t-1} + (1 − k_t) ⊙ s̃_t,     k_t ~ Bernoulli(p) per step, for h (and c)

In eval mode recurrent dropout is the identity and zoneout its expectation (k_t = p).
"""

from __future__ import annotations

import numpy as np

from rnnkit.kinds import KINDS
from rnnkit.recurrent import RecurrentBase


def state_parts(state) -> tuple[np.ndarray, ...]:
    """A recurrent state as a tuple of its arrays: ``(h,)``, or ``(h, c)`` for an LSTM."""
    return state if isinstance(state, tuple) else (state,)


class RNN(RecurrentBase):
    r"""Elman RNN: for each layer and step,

        h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh),      φ = tanh or relu

    ``out, h_n = rnn(x, h0=None, lengths=None)``; ``dx, dh0 = rnn.backward(dout, dh_n=None)``.
    Parameters ``weight_ih_l{k}`` (H, I), ``weight_hh_l{k}`` (H, H), ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (H,), with ``_reverse`` for the backward direction.

    ``layer_norm=True`` (Ba et al. 2016): ``h_t = φ(LN(x_t W_ihᵀ; γ_ih) + b_ih + LN(h_{t-1} W_hhᵀ; γ_hh)
    + b_hh)``, gains ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}`` (H,) starting at 1.
    """

    kind = KINDS["rnn"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 *, layer_norm: bool = False, dtype=np.float32,
                 rng=None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dict(nonlinearity=nonlinearity, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                              layer_norm=layer_norm),
                         dtype=dtype, rng=rng)


class GRU(RecurrentBase):
    r"""Gated recurrent unit (PyTorch gate order r, z, n): for each layer and step,

        r_t = σ(x_t W_irᵀ + b_ir + h_{t-1} W_hrᵀ + b_hr)
        z_t = σ(x_t W_izᵀ + b_iz + h_{t-1} W_hzᵀ + b_hz)
        n_t = tanh(x_t W_inᵀ + b_in + r_t ⊙ (h_{t-1} W_hnᵀ + b_hn))     reset_after=True (PyTorch)
        n_t = tanh(x_t W_inᵀ + b_in + (r_t ⊙ h_{t-1}) W_hnᵀ + b_hn)     reset_after=False (Cho 2014)
        h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    ``out, h_n = gru(x, h0=None, lengths=None)``; ``dx, dh0 = gru.backward(dout, dh_n=None)``.
    Parameters as PyTorch: ``weight_ih_l{k}`` (3H, I) = [W_ir; W_iz; W_in], ``weight_hh_l{k}`` (3H, H).

    ``layer_norm=True`` (reset-after form only): each product is normalised over its 3H values,
    ``[r_x, z_x, n_x] = LN(x_t W_ihᵀ; γ_ih) + b_ih``, ``[r_h, z_h, n_h] = LN(h_{t-1} W_hhᵀ; γ_hh) + b_hh``,
    then the gates as above; gains ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}`` (3H,) start at 1.
    """

    kind = KINDS["gru"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 reset_after: bool = True, recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 *, layer_norm: bool = False, dtype=np.float32,
                 rng=None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dict(reset_after=reset_after, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                              layer_norm=layer_norm),
                         dtype=dtype, rng=rng)


class LSTM(RecurrentBase):
    r"""Long short-term memory (PyTorch gate order i, f, g, o): for each layer and step,

        i_t = σ(x_t W_iiᵀ + b_ii + h_{t-1} W_hiᵀ + b_hi [+ w_ci ⊙ c_{t-1}])
        f_t = σ(x_t W_ifᵀ + b_if + h_{t-1} W_hfᵀ + b_hf [+ w_cf ⊙ c_{t-1}])
        g_t = tanh(x_t W_igᵀ + b_ig + h_{t-1} W_hgᵀ + b_hg)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(x_t W_ioᵀ + b_io + h_{t-1} W_hoᵀ + b_ho [+ w_co ⊙ c_t])
        h_t = o_t ⊙ tanh(c_t)                 [proj_size = P > 0:  h_t ← h_t W_hrᵀ, shape (B, P)]

    The bracketed peephole terms (Graves 2012; ONNX's ``P``) apply with ``peephole=True``; they add
    parameters ``weight_ci_l{k}``, ``weight_cf_l{k}``, ``weight_co_l{k}`` of shape (H,).

    ``out, (h_n, c_n) = lstm(x, (h0, c0)=None, lengths=None)``;
    ``dx, (dh0, dc0) = lstm.backward(dout, (dh_n, dc_n)=None)``.
    h_n has size P when projecting; c_n always has size H.

    ``layer_norm=True`` (Ba et al. 2016; not with a projection or peepholes)::

        a_t = LN(x_t W_ihᵀ; γ_ih) + b_ih + LN(h_{t-1} W_hhᵀ; γ_hh) + b_hh      split into i, f, g, o
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,      h_t = o_t ⊙ tanh(LN(c_t; γ_c, β_c))

    with LN over all of a vector's units; parameters ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}``
    (4H,), ``ln_weight_c_l{k}``, ``ln_bias_c_l{k}`` (H,); the gains start at 1, the shift at 0.
    """

    kind = KINDS["lstm"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, peephole: bool = False, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, *, layer_norm: bool = False, dtype=np.float32,
                 rng=None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dict(proj_size=proj_size, peephole=peephole, recurrent_dropout=recurrent_dropout,
                              zoneout=zoneout, layer_norm=layer_norm), dtype=dtype, rng=rng)
