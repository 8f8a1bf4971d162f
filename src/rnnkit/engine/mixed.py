"""A layer's products in bfloat16 under :class:`rnnkit.autocast` (:mod:`rnnkit.precision`).

Forward, the input projection ``gates = X W_ihᵀ`` is one bfloat16 product (:mod:`.bf16`, X
rounded row by row, W_ihᵀ's panels paired); each step's recurrent product reads

    h16[t] = bf16(h_in[t])      (T+1, B', K') uint16: B' = B and K' = K rounded up to 32
    panels16 = bf16(W_hhᵀ)      the cell's gate panels (:func:`.pack.pack_gates`) in pairs along k

and leaves ``h_{t-1} W_hhᵀ`` for a panel of units in float32 in the worker's scratch, where the
float32 product would have left it, so the cell's step that follows is the same code. Each step
rounds the h_in it writes into h16[t + 1] (:func:`store_h16`), once per unit.

The unit is chosen when the code is compiled, by what the CPU has (:func:`.bf16.units`): AMX's
tiles, a block of 32 rows × the panel's 32 or 48 or 64 columns per call; else AVX512_BF16's
vdpbf16ps tile. Padding rows of h16 (B ≤ b < B') only feed rows of the scratch nobody reads; its
padding columns are zeros, as the panels' padding pairs are, so they add nothing.

Backward, the parameter gradients ``DAᵀ [X | H_in]`` and ``dX = DA W_ih`` are bfloat16 products
(:func:`weight_gradients`, :func:`input_gradient`); the recurrence ``da_t W_hh`` stays float32.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from rnnkit.engine import bf16
from rnnkit.engine.amx import COLUMNS, ROWS, amx_grid, amx_grid_16
from rnnkit.engine.gemm import panel_product
from rnnkit.engine.jit import jit
from rnnkit.kernels.base import flat


class Bf16Operands(NamedTuple):
    """The recurrent product's bfloat16 operands, fields of a cell's forward record (absent: empty)."""

    panels16: np.ndarray        # (P, pairs, 2·W) uint16: W_hhᵀ's gate panels of width W in pairs
    h16: np.ndarray             # (T+1, B', K') uint16: bf16(h_in[t]), zero past K
    hin_bits: np.ndarray        # (T+1, B, K) uint32: h_in's float32 bits (the same memory)


# The operands of a float32 recurrence: none (empty, so one set serves every record).
ABSENT = Bf16Operands(np.zeros((0, 0, 0), np.uint16), np.zeros((0, 0, 0), np.uint16), np.zeros((0, 0, 0), np.uint32))


def active(dtype) -> bool:
    """Whether products of a layer of ``dtype`` run in bfloat16: float32 inside rnnkit.autocast."""
    from rnnkit.precision import product_precision
    return np.dtype(dtype) == np.float32 and product_precision() == "bfloat16"


def padded(n: int) -> int:
    return -(-n // ROWS) * ROWS


def recurrent_operands(w_hh: np.ndarray, gates: int, hin: np.ndarray, inference: bool) -> Bf16Operands:
    """The operands of a recurrence over h_in (T+1, B, K), h_in[0] given: h16[0] rounded now;
    ``inference``: the panels may be kept whatever their size (:func:`.prepack.kept`)."""
    T1, B, K = hin.shape
    h16 = np.zeros((T1, padded(B), padded(K)), np.uint16)
    bits = hin.view(np.uint32)
    bf16.round_into(bits[0], h16[0])
    return Bf16Operands(bf16.pack_gates(w_hh, gates, inference=inference), h16, bits)


def input_product(x: np.ndarray, w_ih: np.ndarray, gates: np.ndarray, inference: bool) -> None:
    """gates (T·B, G·H) = bf16(X) bf16(W_ihᵀ) with float32 sums."""
    bf16.gemm_packed(bf16.round_rows(flat(x)), bf16.pack_input(w_ih, inference=inference), flat(gates))


def weight_gradients(da: np.ndarray, operands: list, grads: list, bias_grads: list) -> None:
    """grads[k] += DAᵀ operands[k] in bfloat16 (DA (T·B, G·H), operands (T·B, ·)); bias_grads
    (float32 sums of DA's rows, which are exact in any precision's spirit) as the float32 path."""
    da16 = bf16.round_rows(da, trans=True)                       # DAᵀ: (G·H, T·B) rounded once
    for operand, grad in zip(operands, grads):
        bf16.gemm_packed(da16, bf16.pack(operand), grad, accumulate=True)
    for bias in bias_grads:
        bias += da.sum(axis=0, dtype=np.float32)


def input_gradient(da: np.ndarray, w_ih: np.ndarray, dx: np.ndarray) -> None:
    """dx (T·B, I) = bf16(DA) bf16(W_ih) with float32 sums."""
    bf16.gemm_packed(bf16.round_rows(da), bf16.pack(w_ih), dx)


# -- compiled: the recurrent product and h16 -------------------------------------------------------

@jit(inline=True)
def store_h16(job, t, b, j, n):
    """h16[t+1, b, j:j+n] = bf16(h_in[t+1, b, j:j+n]): the next step's operand (nothing in float32)."""
    if job.h16.shape[0] > 0:
        for k in range(j, j + n):
            job.h16[t + 1, b, k] = bf16.bf16_bits(job.hin_bits[t + 1, b, k])


@jit(inline=True)
def recurrent_product(job, t, p, acc):
    """acc[:B, :W] = h_in[t] · panel p of W_hhᵀ (the tile of step t + 1's units): in bfloat16 under
    autocast (the record's h16 not empty), else in the layer's own precision."""
    B, K = job.hin.shape[1], job.hin.shape[2]
    if job.h16.shape[0] > 0:
        bf16_panel(job.h16, t, job.panels16, p, acc, B)
    else:
        panel_product(job.hin, t * B * K, K, B, job.panels, p, acc)


def bf16_panel(h16, t, panels16, p, acc, rows):
    """acc[:rows, :W] = bf16 rows of h16[t] · bfloat16 panel p (compiled code only)."""
    raise NotImplementedError("bf16_panel is only defined inside compiled code")


@jit(inline=True)
def _amx_panel(h16, t, panels16, p, acc, rows):
    """On AMX: the panel's whole 32-column blocks in one call of the tiles, a last 16 in another."""
    n_panels, pairs, W = panels16.shape
    Bp, Kp = h16.shape[1], h16.shape[2]
    width, blocks = W // 2, -(-rows // ROWS)
    whole = width // COLUMNS
    a_off, p_off = t * Bp * Kp, p * pairs * W
    if whole > 0:
        amx_grid(h16, a_off, Kp, panels16, p_off, W, 2 * COLUMNS, pairs, acc, 0, acc.shape[1], blocks, whole, False)
    if width % COLUMNS:
        amx_grid_16(h16, a_off, Kp, panels16, p_off + 2 * COLUMNS * whole, W, 0, pairs, acc, COLUMNS * whole,
                    acc.shape[1], blocks, 1, False)


@jit(inline=True)
def _dot_panel(h16, t, panels16, p, acc, rows):
    """On AVX512_BF16: :func:`.bf16.panel_product`."""
    Bp, Kp = h16.shape[1], h16.shape[2]
    bf16.panel_product(h16, t * Bp * Kp, Kp, rows, panels16, p, acc)


@overload(bf16_panel)
def _bf16_panel(h16, t, panels16, p, acc, rows):
    """The unit is fixed when the caller is compiled: the fastest the CPU (as Numba targets it) has;
    without one, or for a float64 layer, a record never has h16, and the product is never reached."""
    usable = bf16.units() if acc.dtype == types.float32 else ()
    if "amx" in usable:
        return lambda h16, t, panels16, p, acc, rows: _amx_panel(h16, t, panels16, p, acc, rows)
    if usable:
        return lambda h16, t, panels16, p, acc, rows: _dot_panel(h16, t, panels16, p, acc, rows)
    return lambda h16, t, panels16, p, acc, rows: None
