"""A layer's products in int8 for inference (:func:`rnnkit.quantize_dynamic`): the operands.

Dynamic quantisation as :mod:`rnnkit.engine.quantize` defines it (weights symmetric int8 per
output column; activations uint8 with a zero point), on the VNNI tile of :mod:`.int8_tile`:

- the input projection ``X W_ihᵀ`` is :func:`.int8.matmul` (X per row, at every call);
- each step's recurrent product reads W_hhᵀ's gate panels quantised per column (the columns of
  :func:`.pack.pack_gates`, in int8 panels of 2 or 3 vectors: :func:`gate_weights`) and

      h8[t] = clip(rint(h_in[t] / s_h) + 128, 0, 255),   s_h = max(1, max |h_0|) / 127

  one fixed step for the whole sequence, so that a step quantises each unit of h_t where it
  writes it (:func:`store_q8`) instead of waiting for the row's range. It never clips: the LSTM's
  h_t = o ⊙ tanh(c_t) and the tanh RNN's stay in (−1, 1), and the GRU's h_t = n + z ⊙ (h_{t-1} − n)
  is a blend of values in [−max(1, |h_0|), max(1, |h_0|)]. So every step's product has the
  error bound of :func:`.quantize.error_bound` with s_a = s_h (≤ 1/254 per element of h).

The cells whose state is unbounded keep a float32 recurrence (their input projection is still
int8): the ReLU RNN, an LSTM with a projection, and Cho's GRU (its second product reads r ⊙ h_in).
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import int8
from rnnkit.engine.int8_tile import LANES, make_dequant_kernel
from rnnkit.engine.isa import tile_shape
from rnnkit.engine.jit import jit
from rnnkit.engine.pack import gate_tile, pack_gates
from rnnkit.engine.prepack import kept
from rnnkit.engine.quantize import QuantizedWeights, quantize_weights

ZERO = 128                      # h's zero point: its step is symmetric about 0
tile_dq3 = make_dequant_kernel(tile_shape(3))      # a GRU's gate panel: 3 vectors


def sub_vectors(gates: int) -> int:
    """Vectors of an int8 panel for a gate panel of ``gates`` gates: 3 for the GRU's (3 vectors
    wide), else 2 (the LSTM's 4 vectors in two panels; the RNN's 2)."""
    return 3 if gates == 3 else 2


def fits(gates: int) -> bool:
    """Whether int8 panels of whole vectors tile the float32 gate panels of ``gates`` gates (they
    do where the int8 and float32 vectors have one width, as on every CPU with VNNI but an
    AVX-512 one with only 256-bit VNNI)."""
    return gate_tile(gates).width(np.float32) % (sub_vectors(gates) * LANES) == 0


def tile_rows(gates: int) -> int:
    """MR, the rows of h per tile of the int8 panels of ``gates`` gates (8 with AVX-512's registers;
    6 or 4 with AVX2's): the layout of h8 (:func:`tiled`)."""
    return tile_shape(sub_vectors(gates)).mr


def gate_weights(w_hh: np.ndarray, gates: int) -> QuantizedWeights:
    """W_hhᵀ with its columns in the order of the gate panels (:func:`.pack.pack_gates`, their
    padding columns zero), quantised per column in panels of ``sub_vectors(gates)`` vectors."""
    panels = pack_gates(np.asarray(w_hh, np.float32), gates)            # (P, K, W)
    P, K, W = panels.shape
    return quantize_weights(panels.transpose(1, 0, 2).reshape(K, P * W), sub_vectors(gates) * LANES)


def step_of(h0: np.ndarray) -> np.float32:
    """s_h = max(1, max |h_0|) / 127: no h_t of a bounded cell is clipped."""
    return np.float32(max(1.0, float(np.abs(h0).max(initial=0.0))) / 127)


def tiled(q: np.ndarray, mr: int, groups: int) -> np.ndarray:
    """(B, K) uint8 in the kernel's layout of A: (tiles, G, MR·4), group γ of row m at [m·4:]."""
    B, K = q.shape
    tiles = -(-B // mr)
    padded = np.zeros((tiles * mr, 4 * groups), np.uint8)
    padded[:B, :K] = q
    return padded.reshape(tiles, mr, groups, 4).transpose(0, 2, 1, 3).reshape(tiles, groups, mr * 4)


def quantize_state(h: np.ndarray, scale: np.float32) -> np.ndarray:
    """clip(rint(h / s_h) + 128, 0, 255) in float32, as :func:`store_q8` computes it."""
    q = np.rint(np.asarray(h, np.float32) / scale) + np.float32(ZERO)
    return np.clip(q, 0, 255).astype(np.uint8)


def recurrent_weights(w_hh: np.ndarray, gates: int) -> QuantizedWeights:
    """:func:`gate_weights`, kept between calls while the weights are unchanged."""
    return kept(w_hh, ("gates", gates, "int8"), lambda w, own: gate_weights(w, gates), inference=True)


def input_weights(w_ih: np.ndarray) -> QuantizedWeights:
    return kept(w_ih, ("input", "int8"), lambda w, own: int8.quantize(w, trans=True), inference=True)


# -- compiled ----------------------------------------------------------------------------------------

@jit(refcount=False)
def store_q8(h8, s, src, t, j, n):
    """h8[t] of every row, units j … j+n−1, from src[t] (h_in) on the step s: the next step's operand."""
    mr = h8.shape[3] // 4
    for b in range(src.shape[1]):
        tile, m = b // mr, 4 * (b % mr)
        for k in range(j, j + n):
            q = np.rint(src[t, b, k] / s) + np.float32(ZERO)
            h8[t, tile, k // 4, m + k % 4] = np.uint8(min(max(q, np.float32(0)), np.float32(255)))


@jit
def int8_panel(job, t, p, acc, rows):
    """acc[:rows, :W] = dequantised h8[t] · W_hhᵀ's gate panel p: its int8 panels, a tile of mr rows
    at a time (the zero point's share taken off through the column sums, then the scales)."""
    n8, G, width = job.lp_panels.shape
    nr, mr = width // 4, job.lp_h.shape[3] // 4
    subs = job.panels.shape[2] // nr
    tiles = job.lp_h.shape[1]
    for r in range(0, rows, mr):
        a_off, n = (t * tiles + r // mr) * G * mr * 4, min(mr, rows - r)
        for s in range(subs):
            q = p * subs + s
            if nr == 3 * LANES:
                tile_dq3(job.lp_h, a_off, n, job.lp_panels, q * G * width, G, job.lp_zero, job.lp_scale, r,
                         job.lp_colsum, job.lp_wscale, q * nr, acc, r * acc.shape[1] + s * nr, acc.shape[1], False)
            else:
                int8.tile_dq(job.lp_h, a_off, n, job.lp_panels, q * G * width, G, job.lp_zero, job.lp_scale, r,
                             job.lp_colsum, job.lp_wscale, q * nr, acc, r * acc.shape[1] + s * nr, acc.shape[1],
                             False)
