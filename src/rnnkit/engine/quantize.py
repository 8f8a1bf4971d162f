"""Dynamic int8 quantisation of a matrix product ``C = A · W`` (A: M × K activations, W: K × N).

Weights, once: symmetric int8 per output column (per channel), as PyTorch's ``quantize_dynamic``
and onnxruntime's ``DynamicQuantizeMatMul`` quantise them,

    s_w[j] = max_k |W[k, j]| / 127,      Wq[k, j] = rint(W[k, j] / s_w[j])  ∈ [−127, 127]

Activations, every call: asymmetric uint8 *per row*, from the row's range widened to hold 0,

    lo = min(0, min_k A[i, k]),  hi = max(0, max_k A[i, k]),  s_a[i] = (hi − lo) / 255,
    zp[i] = rint(−lo / s_a[i]),  Aq[i, k] = clip(rint(A[i, k] / s_a[i]) + zp[i], 0, 255)

(onnxruntime takes one range per tensor. A row's own range costs the same pass over A, is never
wider than the tensor's, so its error bound is never larger, and makes each row's result
independent of the other rows of the batch.) The product then needs only integers:

    A · W ≈ s_a[i] · s_w[j] · Σ_k (Aq[i, k] − zp[i]) · Wq[k, j]
          = s_a[i] · s_w[j] · (Σ_k Aq[i, k] · Wq[k, j] − zp[i] · colsum[j]),  colsum[j] = Σ_k Wq[k, j]

Error. Each value is off by at most half a step: |A − s_a (Aq − zp)| ≤ s_a/2 and |W − s_w Wq| ≤
s_w/2 (each rounded in float32: within 2^-13 of a step more). Writing the errors
e_a, e_w, the product's error is Σ_k (e_a·W + A·e_w + e_a·e_w), so for every entry

    |C[i, j] − (A·W)[i, j]| ≤ s_a[i]/2 · Σ_k |W[k, j]| + s_w[j]/2 · Σ_k |A[i, k]| + K · s_a[i] · s_w[j] / 4

plus float32's rounding of the result (:func:`error_bound`). That is the worst case, every
rounding error at its largest and all of one sign; taken as independent and uniform over a step
(variance step²/12), they add up to a typical error that grows with √K instead of K,

    rms(C − A·W)[i, j] ≈ √(s_a[i]²/12 · Σ_k W[k, j]² + s_w[j]²/12 · Σ_k A[i, k]² + K · s_a² s_w² / 144)

(:func:`typical_error`; at K = 1024 about a twentieth of the bound). The integer sum is exact: each term
is at most 255 · 127 in magnitude, so K ≤ :data:`MAX_K` keeps it inside int32.

This module holds the quantisers and the product in NumPy: the reference the compiled kernels are
held to bit for bit (:mod:`rnnkit.engine.int8`), and the fallback where the CPU lacks VNNI.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MAX_K = (2**31 - 1) // (255 * 127)   # the longest dot product whose exact sum fits in int32
STEP_SLACK = 2.0**-13                # A's rounding, through 1/s_a in float32, in steps of s_a


class QuantizedWeights(NamedTuple):
    """W (K × N) in int8, packed for the micro-kernel: K in groups of four, NR columns a panel."""

    panels: np.ndarray       # (P, G, NR·4) int8: panels[p, γ, 4j + t] = Wq[4γ + t, p·NR + j], 0 past K, N
    colsum: np.ndarray       # (P·NR,) int32: Σ_k Wq[k, j], 0 past N
    scale: np.ndarray        # (P·NR,) float32: s_w[j], 0 past N
    k: int                   # K, before padding to 4G
    n: int                   # N, before padding to P·NR

    def dequantized(self) -> np.ndarray:
        """s_w[j] · Wq[k, j] (K × N, float32): the weights the product really uses."""
        return (unpack(self).astype(np.float32) * self.scale[:self.n]).astype(np.float32)


def quantize_weights(w: np.ndarray, nr: int, *, trans: bool = False) -> QuantizedWeights:
    """W (K × N; N × K when ``trans``, as a layer's ``weight_ih`` is stored) in panels of ``nr`` columns."""
    w = np.asarray(w, np.float32)
    w = w.T if trans else w
    K, N = w.shape
    if K > MAX_K:
        raise ValueError(f"K = {K} exceeds {MAX_K}: the int32 sum of a dot product could overflow")
    G, P = -(-K // 4), -(-N // nr)
    top = np.abs(w).max(axis=0)
    scale = np.where(top > 0, top / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.zeros((4 * G, P * nr), np.int8)
    q[:K, :N] = np.clip(np.rint(w / scale), -127, 127)
    panels = q.reshape(G, 4, P, nr).transpose(2, 0, 3, 1).reshape(P, G, nr * 4)
    scales = np.zeros(P * nr, np.float32)
    scales[:N] = np.where(top > 0, scale, 0)
    return QuantizedWeights(np.ascontiguousarray(panels), q.sum(axis=0, dtype=np.int32), scales, K, N)


def unpack(qw: QuantizedWeights) -> np.ndarray:
    """Wq (K × N, int8) from its panels."""
    P, G, width = qw.panels.shape
    nr = width // 4
    q = qw.panels.reshape(P, G, nr, 4).transpose(1, 3, 0, 2).reshape(4 * G, P * nr)
    return q[:qw.k, :qw.n]


class QuantizedRows(NamedTuple):
    q: np.ndarray            # (M, K) uint8
    zero: np.ndarray         # (M,) int32: zp
    scale: np.ndarray        # (M,) float32: s_a


def quantize_rows(a: np.ndarray) -> QuantizedRows:
    """A (M × K) in uint8, a scale and zero point per row, in float32 as the compiled quantiser."""
    a = np.asarray(a, np.float32)
    lo = np.minimum(a.min(axis=1), 0)
    hi = np.maximum(a.max(axis=1), 0)
    scale = ((hi - lo) / np.float32(255)).astype(np.float32)
    scale[scale == 0] = 1                                        # a row of zeros: any scale is exact
    inv = (np.float32(1) / scale).astype(np.float32)
    zero = np.clip(np.rint(-lo * inv), 0, 255).astype(np.int32)
    q = np.clip(np.rint(a * inv[:, None]) + zero[:, None], 0, 255).astype(np.uint8)
    return QuantizedRows(q, zero, scale)


def dequantize(acc: np.ndarray, rows: QuantizedRows, qw: QuantizedWeights) -> np.ndarray:
    """float32(acc − zp[i]·colsum[j]) · s_w[j] · s_a[i], in the kernel's order (acc: M × N int)."""
    exact = (acc - rows.zero[:, None].astype(np.int64) * qw.colsum[None, :qw.n]).astype(np.float32)
    return exact * qw.scale[None, :qw.n] * rows.scale[:, None]


def product(a: np.ndarray, qw: QuantizedWeights) -> np.ndarray:
    """A · W through int8 in NumPy. The integer sum goes through float64, exact (|Σ| < 2^53)."""
    rows = quantize_rows(a)
    acc = (rows.q.astype(np.float64) @ unpack(qw).astype(np.float64)).astype(np.int64)
    return dequantize(acc, rows, qw)


def error_bound(a: np.ndarray, w: np.ndarray, rows: QuantizedRows, qw: QuantizedWeights) -> np.ndarray:
    """The bound on |C − A·W| of the module's docstring for each entry (M × N), with float32's
    rounding of C (a few units in the last place of |C|'s bound below) added."""
    a, w = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(w, np.float64))
    s_a = rows.scale.astype(np.float64)[:, None] * (1 + 2 * STEP_SLACK)
    s_w = qw.scale[:qw.n].astype(np.float64)[None, :] * (1 + 2 * STEP_SLACK)
    K = a.shape[1]
    quantisation = s_a / 2 * w.sum(axis=0)[None, :] + s_w / 2 * a.sum(axis=1)[:, None] + K * s_a * s_w / 4
    rounding = 4 * np.finfo(np.float32).eps * (a @ w + quantisation)
    return quantisation + rounding


def typical_error(a: np.ndarray, w: np.ndarray, rows: QuantizedRows, qw: QuantizedWeights) -> np.ndarray:
    """The root-mean-square error of each entry (M × N) if the rounding errors are independent and
    uniform over their steps: the docstring's √(…)."""
    a, w = np.asarray(a, np.float64), np.asarray(w, np.float64)
    s_a = rows.scale.astype(np.float64)[:, None]
    s_w = qw.scale[:qw.n].astype(np.float64)[None, :]
    K = a.shape[1]
    variance = (s_a**2 / 12 * (w**2).sum(axis=0)[None, :] + s_w**2 / 12 * (a**2).sum(axis=1)[:, None]
                + K * s_a**2 * s_w**2 / 144)
    return np.sqrt(variance)
