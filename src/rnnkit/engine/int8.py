"""Dynamically quantised products ``C (+)= A · W`` on the int8 micro-kernel, over all cores.

W is quantised and packed once (:func:`quantize`, per output column: :mod:`rnnkit.engine.quantize`
says how and what error that costs); each call quantises A row by row and multiplies. A call is one
job of the engine's scheduler (:mod:`rnnkit.engine.schedule`) in two phases:

1. quantise A, a block of rows per chunk, straight into the tiles the kernel reads
   (``(tiles, G, MR·4)`` bytes: group γ of row m of a tile at ``[tile, γ, 4m:4m + 4]``);
2. the products, a chunk being a block of rows times one panel, each tile computed over the whole
   of K with its accumulators in registers and dequantised on its way out (a panel is K · NR bytes:
   32 KiB at K = 1024, in the first-level cache while the block's tiles pass over it).

Where the CPU lacks VNNI (:func:`rnnkit.engine.isa.dot_bits` is None) the same quantised product is
computed in NumPy (:func:`rnnkit.engine.quantize.product`): the same numbers, bit for bit, slower.
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.gemm import MIN_SHARED_MACS, row_blocking
from rnnkit.engine.int8_tile import LANES, make_dequant_kernel
from rnnkit.engine.isa import dot_bits, tile_shape
from rnnkit.engine.jit import jit
from rnnkit.engine.quantize import QuantizedWeights, product, quantize_weights
from rnnkit.engine.schedule import job_record, launch, num_threads, plan, register_tasks
from rnnkit.engine.vector import lane, lanes_of, vload, vzero

SHAPE = tile_shape(2)            # 8 rows × 2 vectors (32 columns) with AVX-512's 32 registers
MR, NR = SHAPE.mr, SHAPE.nv * LANES
tile_dq = make_dequant_kernel(SHAPE)


@job_record
class Int8Job:
    a: np.ndarray               # (M, K) float32
    aq: np.ndarray              # (tiles, G, MR·4) uint8: A quantised, in tiles
    zero: np.ndarray            # (tiles·MR,) int32: each row's zero point
    scale: np.ndarray           # (tiles·MR,) float32: each row's scale
    panels: np.ndarray          # (P, G, NR·4) int8
    colsum: np.ndarray          # (P·NR,) int32
    sw: np.ndarray              # (P·NR,) float32
    c: np.ndarray               # (M, N) float32
    accumulate: bool
    row_blocks: int
    block: int                  # rows per block, whole tiles
    row: np.ndarray             # (workers, 4G) uint8: a row of A being quantised
    # the plan: one step of two phases, [row_blocks, row_blocks · P]; scratch (workers, MR, NR)
    # float32 the right edge's tile


@jit(inline=True)
def _row_range(a, i):
    """min(0, min_k A[i, k]) and max(0, max_k A[i, k]), a vector at a time (lanes past K read 0)."""
    K = a.shape[1]
    L = lanes_of(a)
    lo = hi = vzero(a)
    for k in range(0, K, L):
        v = vload(a, i * K + k, min(L, K - k))
        lo, hi = min(lo, v), max(hi, v)
    low, high = lane(lo, 0), lane(hi, 0)
    for j in range(1, L):
        low, high = min(low, lane(lo, j)), max(high, lane(hi, j))
    return low, high


@jit(inline=True)
def _quantize_row(a, i, aq, zero, scale, row):
    """Row i of A into uint8 (the NumPy twin: :func:`rnnkit.engine.quantize.quantize_rows`), through
    ``row`` (4G bytes: a loop LLVM vectorises), then copied group by group into its tile."""
    K = a.shape[1]
    lo, hi = _row_range(a, i)
    s = (hi - lo) / np.float32(255)
    if s == 0:
        s = np.float32(1)
    inv = np.float32(1) / s
    zp = min(max(np.rint(-lo * inv), np.float32(0)), np.float32(255))
    x = a[i]
    for k in range(K):
        row[k] = np.uint8(min(max(np.rint(x[k] * inv) + zp, np.float32(0)), np.float32(255)))
    row[K:] = 0                                           # K padded to 4G: the panels hold 0 there
    groups = row.view(np.uint32)
    tile = aq[i // MR].view(np.uint32)                    # (G, MR): row i's groups, MR apart
    m = i % MR
    for g in range(groups.shape[0]):
        tile[g, m] = groups[g]
    zero[i], scale[i] = np.int32(zp), s


@jit(inline=True)
def _product_block(job, r0, r1, p, scratch):
    """C[r0:r1, panel p] (+)= the dequantised products of the block's tiles with panel p."""
    n_panels, G, width = job.panels.shape
    N = job.c.shape[1]
    n0 = p * NR
    for r in range(r0, r1, MR):
        rows = min(MR, r1 - r)
        a_off, p_off = r // MR * G * MR * 4, p * G * width
        if n0 + NR <= N:
            tile_dq(job.aq, a_off, rows, job.panels, p_off, G, job.zero, job.scale, r, job.colsum, job.sw, n0,
                    job.c, r * N + n0, N, job.accumulate)
        else:                                             # the right edge: through a scratch tile
            for i in range(rows):
                for j in range(NR):
                    scratch[i, j] = job.c[r + i, n0 + j] if job.accumulate and n0 + j < N else 0.0
            tile_dq(job.aq, a_off, rows, job.panels, p_off, G, job.zero, job.scale, r, job.colsum, job.sw, n0,
                    scratch, 0, NR, True)
            for i in range(rows):
                for j in range(N - n0):
                    job.c[r + i, n0 + j] = scratch[i, j]


@jit(refcount=False)
def int8_chunk(job, step, phase, chunk, worker):
    """Phase 0: quantise row block ``chunk``; phase 1: row block × panel ``chunk``."""
    M = job.c.shape[0]
    n_panels = job.panels.shape[0]
    rb = chunk if phase == 0 else chunk // n_panels
    r0 = rb * job.block
    r1 = min(r0 + job.block, M)
    if phase == 0:
        for i in range(r0, r1):
            _quantize_row(job.a, i, job.aq, job.zero, job.scale, job.row[worker])
    else:
        _product_block(job, r0, r1, chunk % n_panels, job.scratch[worker])


register_tasks({Int8Job: int8_chunk})


def available() -> bool:
    """True where the compiled int8 product runs (VNNI); elsewhere :func:`matmul` uses NumPy."""
    return dot_bits() is not None


def quantize(w: np.ndarray, *, trans: bool = False) -> QuantizedWeights:
    """W (K × N, or N × K with ``trans``) quantised per output column and packed for :func:`matmul`."""
    return quantize_weights(w, NR, trans=trans)


def matmul(a: np.ndarray, qw: QuantizedWeights, c: np.ndarray | None = None, *,
           accumulate: bool = False) -> np.ndarray:
    """c (+)= A · W for A (M × K float32, C-contiguous) and W quantised by :func:`quantize`; A is
    quantised per row on the way. Returns c (a new M × N float32 array when not given)."""
    a = np.ascontiguousarray(a, np.float32)
    M, K = a.shape
    if K != qw.k:
        raise ValueError(f"A has {K} columns, the quantised weights {qw.k} rows")
    if c is None:
        c, accumulate = np.empty((M, qw.n), np.float32), False
    elif c.dtype != np.float32 or c.shape != (M, qw.n) or not c.flags.c_contiguous:
        raise ValueError(f"c must be a C-contiguous float32 array of shape {(M, qw.n)}, "
                         f"got {c.dtype} {c.shape}")
    if not available():
        c[...] = product(a, qw) + (c if accumulate else 0)
        return c
    n_panels, G, _ = qw.panels.shape
    workers = num_threads() if M * K * qw.n >= MIN_SHARED_MACS else 1
    row_blocks, _ = row_blocking(M, n_panels, workers, max(K, 1))     # a row of A: K bytes
    block = MR * -(-M // (MR * row_blocks))
    row_blocks = -(-M // block)
    tiles = -(-M // MR)
    job = Int8Job(a, workspace.empty((tiles, G, MR * 4), np.uint8), np.empty(tiles * MR, np.int32),
                  np.empty(tiles * MR, np.float32), qw.panels, qw.colsum, qw.scale, c, accumulate, row_blocks,
                  block, np.empty((workers, 4 * G), np.uint8),
                  *plan(1, [row_blocks, row_blocks * n_panels], workers, np.empty((workers, MR, NR), np.float32)))
    launch((job,), workers)
    return c
