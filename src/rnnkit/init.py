"""Initialisers, applied in place to arrays (``p.data``) or to a recurrent layer's parameters.

- ``xavier_uniform_`` / ``xavier_normal_`` (Glorot & Bengio 2010): variance 2 / (fan_in + fan_out).
- ``orthogonal_`` (Saxe et al. 2014): a (semi-)orthogonal matrix from the QR of a Gaussian one.
- ``orthogonal_recurrent_``: every gate block of every ``weight_hh`` made orthogonal, so that the
  recurrent map neither shrinks nor grows a vector at initialisation.
- ``forget_bias_``: the LSTM forget gate's total bias (b_if + b_hf) set to a value, commonly 1
  (Gers et al. 2000; Jozefowicz et al. 2015), so the cell remembers by default.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.checks import make_rng


def _fans(a: np.ndarray) -> tuple[int, int]:
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D weight (out, in), got shape {a.shape}")
    return a.shape[1], a.shape[0]


def xavier_uniform_(a: np.ndarray, gain: float = 1.0, *, rng=None) -> np.ndarray:
    fan_in, fan_out = _fans(a)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    a[...] = make_rng(rng).uniform(-bound, bound, a.shape)
    return a


def xavier_normal_(a: np.ndarray, gain: float = 1.0, *, rng=None) -> np.ndarray:
    fan_in, fan_out = _fans(a)
    a[...] = make_rng(rng).standard_normal(a.shape) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return a


def orthogonal_(a: np.ndarray, gain: float = 1.0, *, rng=None) -> np.ndarray:
    rows, cols = a.shape
    g = make_rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))                 # make the distribution uniform (Haar), as torch does
    a[...] = gain * (q if rows >= cols else q.T)
    return a


def orthogonal_recurrent_(layer, gain: float = 1.0, *, rng=None) -> None:
    """Each (H, H_out) gate block of each ``weight_hh*`` of a layer or cell made orthogonal."""
    rng = make_rng(rng)
    H = layer.hidden_size
    for name, p in layer.named_parameters():
        if name.startswith("weight_hh"):
            for block in range(p.data.shape[0] // H):
                orthogonal_(p.data[block * H:(block + 1) * H], gain, rng=rng)


def forget_bias_(lstm, value: float = 1.0) -> None:
    """Set b_if = value and b_hf = 0 in every LSTM bias, so the forget gate starts at σ(value)."""
    rows = lstm.kind.gate("f", lstm.hidden_size)
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            p.data[rows] = value
        elif name.startswith("bias_hh"):
            p.data[rows] = 0.0
