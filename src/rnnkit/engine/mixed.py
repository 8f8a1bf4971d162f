"""A layer's products in low precision: bfloat16 under :class:`rnnkit.autocast`, int8 in a layer
of :func:`rnnkit.quantize_dynamic` (:mod:`rnnkit.precision`; int8's operands: :mod:`.quantized`).

A cell's forward record carries :class:`LowOperands` (empty in float32): each step's recurrent
product (:func:`recurrent_product`) and the store of h_t (:func:`store_low`) take the path of
their element type when compiled, so a cell's code names neither precision.

bfloat16.

Forward, the input projection ``gates = X W_ihᵀ`` is one bfloat16 product (:mod:`.bf16`, X
rounded row by row, W_ihᵀ's panels paired); each step's recurrent product reads

    h16[t] = bf16(h_in[t])      (T+1, B', K') uint16: B' = B and K' = K rounded up to 32
    panels16 = bf16(W_hhᵀ)      the cell's gate panels (:func:`.pack.pack_gates`) in pairs along k

and leaves ``h_{t-1} W_hhᵀ`` for a panel of units in float32 in the worker's scratch, where the
float32 product would have left it, so the cell's step that follows is the same code. Each step
rounds the h_in it writes into h16[t + 1] (:func:`store_low`), once per unit, after the panel's rows.

The unit is chosen when the code is compiled, by what the CPU has (:func:`.bf16.units`): AMX's
tiles, a block of 32 rows × the panel's 32 or 48 or 64 columns per call; else AVX512_BF16's
vdpbf16ps tile. Padding rows of h16 (B ≤ b < B') only feed rows of the scratch nobody reads; its
padding columns are zeros, as the panels' padding pairs are, so they add nothing.

Backward, each tick's product ``da_t W_hh`` (the GRU's ``[da_r, da_z, da_n ⊙ r] W_hh``) reads
``da16[t]``, rounded by the tick that writes da_t (:func:`store_low`), and W_hh's column panels
paired (:func:`backward_operands`, :func:`backward_product`); the parameter gradients
``DAᵀ [X | H_in]`` and ``dX = DA W_ih`` are bfloat16 products (:func:`weight_gradients`,
:func:`input_gradient`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from rnnkit.engine import bf16, int8, quantized
from rnnkit.engine.amx import COLUMNS, ROWS, amx_grid, amx_grid_16
from rnnkit.engine.gemm import pack, panel_product
from rnnkit.engine.jit import jit
from rnnkit.engine.prepack import kept
from rnnkit.engine.vector import lanes_of, vload
from rnnkit.kernels.base import flat


class LowOperands(NamedTuple):
    """The low-precision operands of a recurrence's products, fields of a cell's records (absent: empty)."""

    lp_panels: np.ndarray       # W_hhᵀ's gate panels: (P, pairs, 2·W) uint16 bfloat16 pairs, or
                                # (P·W/NR8, G, NR8·4) int8 (:func:`.quantized.gate_weights`)
    lp_h: np.ndarray            # h_in[t] as the products read it: (T+1, B', K') uint16 bf16(h_in),
                                # or (T+1, tiles, G, MR·4) uint8 (:mod:`.quantized`)
    lp_colsum: np.ndarray       # int8: (P·W,) int32 Σ_k Wq[k, j] per column
    lp_wscale: np.ndarray       # int8: (P·W,) float32 s_w per column
    lp_zero: np.ndarray         # int8: (tiles·MR,) int32 h's zero point
    lp_scale: np.ndarray        # int8: (tiles·MR,) float32 h's step s_h

    def rows(self) -> int:
        """The rows of the scratch the products write: bfloat16's whole blocks of 32, else 0 (B)."""
        return self.lp_h.shape[1] if self.lp_h.dtype == np.uint16 else 0


def _empty(dtype, ndim: int = 1) -> np.ndarray:
    return np.zeros((0,) * ndim, dtype)


# The operands of a recurrence in the layer's own precision: none (empty, so one set serves every
# record). Their lp_h is float32, neither uint16 nor uint8, so that such a record is a type of its
# own and its compiled steps contain no low-precision code at all: a call left in a float32 step,
# even one never taken, cost the small GRU 70 ns a step (LLVM no longer inlined its product).
ABSENT = LowOperands(_empty(np.float32, 3), _empty(np.float32, 3), _empty(np.int32), _empty(np.float32),
                     _empty(np.int32), _empty(np.float32))


def precision_of(dtype) -> str | None:
    """The products' precision for a layer of ``dtype``: "bfloat16" or "int8" for float32 layers
    in force (:func:`rnnkit.precision.product_precision`), else None (the layer's own)."""
    from rnnkit.precision import product_precision
    return product_precision() if np.dtype(dtype) == np.float32 else None


def padded(n: int) -> int:
    return -(-n // ROWS) * ROWS


def recurrent_operands(precision: str, w_hh: np.ndarray, gates: int, hin: np.ndarray,
                       inference: bool) -> LowOperands:
    """The operands of a recurrence over h_in (T+1, B, K), h_in[0] given (its low-precision form
    made now); ``inference``: the panels may be kept whatever their size (:func:`.prepack.kept`)."""
    T1, B, K = hin.shape
    if precision == "int8":                          # (its panels must tile the gate panels)
        if not quantized.fits(gates):
            return ABSENT
        qw, s_h = quantized.recurrent_weights(w_hh, gates), quantized.step_of(hin[0])
        mr, groups = quantized.tile_rows(gates), qw.panels.shape[1]
        tiles = -(-B // mr)
        h8 = np.zeros((T1, tiles, groups, mr * 4), np.uint8)
        h8[0] = quantized.tiled(quantized.quantize_state(hin[0], s_h), mr, groups)
        rows = tiles * mr
        return ABSENT._replace(lp_panels=qw.panels, lp_h=h8, lp_colsum=qw.colsum, lp_wscale=qw.scale,
                               lp_zero=np.full(rows, quantized.ZERO, np.int32), lp_scale=np.full(rows, s_h))
    h16 = np.zeros((T1, padded(B), padded(K)), np.uint16)
    bf16.round_into(hin[0].view(np.uint32), h16[0])
    return ABSENT._replace(lp_panels=bf16.pack_gates(w_hh, gates, inference=inference), lp_h=h16)


def backward_operands(w_hh: np.ndarray, d: np.ndarray) -> LowOperands:
    """The bfloat16 operands of a backward recurrence whose ticks multiply rows of d (T, B, G) by
    W_hh's column panels (:func:`.gemm.pack`, paired): d16 rounded by the tick that writes d."""
    T, B, G = d.shape
    panels = kept(w_hh, ("columns", "bfloat16"), lambda w, own: bf16.pair_panels(pack(w), own=own))
    return ABSENT._replace(lp_panels=panels, lp_h=np.zeros((T, padded(B), padded(G)), np.uint16))


def input_product(precision: str, x: np.ndarray, w_ih: np.ndarray, gates: np.ndarray, inference: bool) -> None:
    """gates (T·B, G·H) = X W_ihᵀ from bfloat16 operands with float32 sums, or quantised to int8."""
    if precision == "int8":
        int8.matmul(flat(x), quantized.input_weights(w_ih), flat(gates))
        return
    bf16.gemm_packed(bf16.round_rows(flat(x)), bf16.pack_input(w_ih, inference=inference), flat(gates))


def weight_gradients(da: np.ndarray, operands: list, grads: list, bias_grads: list) -> None:
    """grads[k] += DAᵀ operands[k] from bfloat16 operands (DA (T·B, G·H), operands (T·B, ·));
    bias_grads += DA's column sums, in float32 (a sum has no product to round)."""
    da16 = bf16.round_rows(da, trans=True)                       # DAᵀ: (G·H, T·B) rounded once
    for operand, grad in zip(operands, grads):
        bf16.gemm_packed(da16, bf16.pack(operand), grad, accumulate=True)
    if bias_grads:
        column_sums = da.sum(axis=0, dtype=np.float32)            # db_ih = db_hh: summed once
        for bias in bias_grads:
            bias += column_sums


def input_gradient(da: np.ndarray, w_ih: np.ndarray, dx: np.ndarray) -> None:
    """dx (T·B, I) = bf16(DA) bf16(W_ih) with float32 sums."""
    bf16.gemm_packed(bf16.round_rows(da), bf16.pack(w_ih), dx)


# -- compiled: the recurrent product and h16 -------------------------------------------------------

@jit(inline=True)
def store_low(job, src, t, j, n):
    """Columns j … j+n−1 of src[t] (every row: src (·, B, K) float32) into the record's
    low-precision operand lp_h[t], if it has one: bfloat16 bits, or quantised. A task calls it once
    per panel, after the panel's rows are written, outside the loop over units: a call in that
    loop, taken or not, cost the small GRU 80 ns a step."""
    if job.lp_h.shape[0] > 0:
        store_operand(job.lp_h, job.lp_scale, src, t, j, n)


def store_operand(lp_h, lp_scale, src, t, j, n):
    """Columns j … j+n−1 of src[t] into lp_h[t]: their bfloat16 bits (lp_h uint16) or quantised on
    the step lp_scale[0] (uint8, :func:`.quantized.store_q8`); compiled code only."""
    raise NotImplementedError("store_operand is only defined inside compiled code")


@jit(refcount=False)
def _round_columns(h16, src, t, j, n):
    """h16[t, b, j:j+n] = bf16(src[t, b, j:j+n]) for every row b, a vector at a time."""
    B, K = src.shape[1], src.shape[2]
    Bp, Kp = h16.shape[1], h16.shape[2]
    L = lanes_of(src)
    for b in range(B):
        for k in range(0, n, L):
            c = min(L, n - k)
            bf16.vstore_bf16(h16, (t * Bp + b) * Kp + j + k, vload(src, (t * B + b) * K + j + k, c), c)


@overload(store_operand)
def _store_operand(lp_h, lp_scale, src, t, j, n):
    """By the operand's element type when the caller is compiled; nothing where the record has none
    (ABSENT's float32) or for float64 layers."""
    if src.dtype != types.float32 or lp_h.dtype not in (types.uint8, types.uint16):
        return lambda lp_h, lp_scale, src, t, j, n: None
    if lp_h.dtype == types.uint8:
        return lambda lp_h, lp_scale, src, t, j, n: quantized.store_q8(lp_h, lp_scale[0], src, t, j, n)
    return lambda lp_h, lp_scale, src, t, j, n: _round_columns(lp_h, src, t, j, n)


def _quantized(record_type) -> bool:
    """Whether a record's type (at compile time) carries int8 operands: its lp_h is uint8."""
    return record_type.types[record_type.fields.index("lp_h")].dtype == types.uint8


@jit(inline=True)
def recurrent_product(job, t, p, acc):
    """acc[:B, :W] = h_in[t] · panel p of W_hhᵀ (the tile of step t + 1's units): from the record's
    low-precision operands if it has them, else in the layer's own precision."""
    B, K = job.hin.shape[1], job.hin.shape[2]
    if job.lp_h.shape[0] > 0:
        low_panel(job, t, p, acc, B)
    else:
        panel_product(job.hin, t * B * K, K, B, job.panels, p, acc)


@jit(inline=True)
def backward_product(job, d, t, p, acc):
    """acc[:B, :NR] = d[t] · column panel p of W_hh (d (T, B, G): da, or the GRU's da_h): from the
    record's bfloat16 operands if it has them, else in the layer's own precision."""
    T, B, G = d.shape
    if job.lp_h.shape[0] > 0:
        bf16_panel(job.lp_h, t, job.lp_panels, p, acc, B)
    else:
        panel_product(d, t * B * G, G, B, job.panels, p, acc)


def low_panel(job, t, p, acc, rows):
    """acc[:rows, :W] from the low-precision operands (compiled code only)."""
    raise NotImplementedError("low_panel is only defined inside compiled code")


@overload(low_panel)
def _low_panel(job, t, p, acc, rows):
    if _quantized(job):
        return lambda job, t, p, acc, rows: quantized.int8_panel(job, t, p, acc, rows)
    return lambda job, t, p, acc, rows: bf16_panel(job.lp_h, t, job.lp_panels, p, acc, rows)  # none: a no-op


def bf16_panel(h16, t, panels16, p, acc, rows):
    """acc[:rows, :W] = bf16 rows of h16[t] · bfloat16 panel p (compiled code only)."""
    raise NotImplementedError("bf16_panel is only defined inside compiled code")


@jit
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


@jit
def _dot_panel(h16, t, panels16, p, acc, rows):
    """On AVX512_BF16: :func:`.bf16.panel_product`."""
    Bp, Kp = h16.shape[1], h16.shape[2]
    bf16.panel_product(h16, t * Bp * Kp, Kp, rows, panels16, p, acc)


@overload(bf16_panel)
def _bf16_panel(h16, t, panels16, p, acc, rows):
    """The unit is fixed when the caller is compiled: the fastest the CPU (as Numba targets it) has;
    without one, for a record without bfloat16 operands or a float64 layer, a no-op (never reached)."""
    usable = bf16.units() if acc.dtype == types.float32 and h16.dtype == types.uint16 else ()
    if "amx" in usable:
        return lambda h16, t, panels16, p, acc, rows: _amx_panel(h16, t, panels16, p, acc, rows)
    if usable:
        return lambda h16, t, panels16, p, acc, rows: _dot_panel(h16, t, panels16, p, acc, rows)
    return lambda h16, t, panels16, p, acc, rows: None
