"""General matrix products on the engine's micro-kernel: ``C (+)= op(A) · op(B)``, over all cores.

op(B) is packed once into panels of NR columns (zero-padded at the right edge). The K dimension is
walked in blocks of ``KC``, one step each (the steps follow each other because they add into the
same C); within a step the output is cut into chunks — a panel column of C over a block of rows —
that the workers claim (:mod:`rnnkit.engine.schedule`). The block of A in use (rows × KC) is shared
by every panel of its chunks, so it stays in the second-level cache, and the block of the panel
(KC × NR) stays in the first-level cache while every row tile passes over it. A product of a few
panels reads A in place; one of many panels (and every one with a transposed A) first copies each
block of A tile by tile (:func:`_pack_rows`, :func:`_pack_rows_of`), so that a tile reads one
stream instead of MR rows far apart.

:func:`panel_product` is the recurrences' product (:mod:`rnnkit.engine.lstm`, ...): the few rows
of one step times one panel of a recurrent weight matrix, on the worker that calls it.
"""

from __future__ import annotations

import numba
import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.jit import jit
from rnnkit.engine.isa import host_isa
from rnnkit.engine.tile import SHAPE, SHAPE3, SHAPE4, row_mm, row_mm3, row_mm4, tile_mm, tile_mm3, tile_mm4
from rnnkit.engine.pack import PARALLEL_PACK
from rnnkit.engine.schedule import job_record, launch, num_threads, plan, region_threads, register_tasks, run
from rnnkit.engine.sync import LINE

MR, MR3, MR4 = SHAPE.mr, SHAPE3.mr, SHAPE4.mr
VECTOR_BYTES = host_isa().vector_bits // 8
KC = 256                     # K block: 256 × NR elements of the panel (32 KiB in float32) fit in L1
# K block of a recurrent product's 4-vector panels (panel_product): measured (one core, tiles
# alone), 5-10% faster at 128 than at 256 (64 KiB, more than the first-level cache); narrower
# panels are fastest at KC.
KC_WIDE = 128
L2_BYTES = 512 * 1024        # the share of a core's second-level cache a block of A may take
# Below this many multiply-adds a product stays on the calling thread: it takes ~10 µs there,
# about what starting the other threads of a parallel region costs.
MIN_SHARED_MACS = 1 << 21
# From this many panels on, a block of A is copied into tiles before it is used: the copy costs
# one pass over the block, and each of the panels then reads one stream instead of MR rows apart
# (measured on an Intel Xeon, one core: +8% at N = 256, +20% at N = 512-1024, -7% at N = 128).
PACK_A_PANELS = 8


@job_record
class GemmJob:
    panels: np.ndarray          # (P, K, NR) op(B) in column panels
    a: np.ndarray               # A (M × K), or Aᵀ stored K × M when trans_a
    trans_a: bool
    pack_a: bool                # copy each block of op(A) into tiles first (always when trans_a)
    c: np.ndarray               # (M, N)
    accumulate: bool            # add into C instead of overwriting it
    row_blocks: int
    block: int                  # rows per block, whole tiles
    a_pack: np.ndarray          # (workers, block · KC): each worker's copy of its block of op(A)
    packed: np.ndarray          # (workers,) int64: which (K block, row block) a_pack holds
    # the plan: steps = K blocks, one phase of row blocks × panels; scratch (workers, MR, NR) the
    # right edge's tile


@jit(inline=True)
def _pack_panel(b, trans_b, panels, p):
    """panels[p, k, j] = op(B)[k, p·NR + j], zero past the last column; op(B) is K × N."""
    n_panels, K, nr = panels.shape
    N = b.shape[0] if trans_b else b.shape[1]
    width = min(nr, N - p * nr)
    if width < nr:
        panels[p, :, width:] = 0.0
    if trans_b:
        for j in range(width):
            row = b[p * nr + j]
            for k in range(K):
                panels[p, k, j] = row[k]
    else:
        for k in range(K):
            panels[p, k, :width] = b[k, p * nr:p * nr + width]


@jit
def pack_panels(b, trans_b, panels):
    for p in range(panels.shape[0]):
        _pack_panel(b, trans_b, panels, p)


@numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _pack_panels_parallel(b, trans_b, panels, workers):
    """The same, panel p packed by thread p mod workers (prange over the workers, not the panels,
    so that no more than ``workers`` threads run whatever Numba's pool holds)."""
    for w in numba.prange(workers):
        for p in range(w, panels.shape[0], workers):
            _pack_panel(b, trans_b, panels, p)


@jit
def pack_blocks(blocks, ones, panels):
    """[B_0 | B_1 | … | 1] (K × (Σ n_i + ones)) as panels: matrices side by side, and a column
    of ones if ``ones``, so that one product gives several gradients and a bias's too."""
    n_panels, K, nr = panels.shape
    panels[n_panels - 1] = 0.0                        # the padding of the last panel
    for k in range(K):
        n = 0                                         # the column of [B_0 | …] being written
        for i in range(len(blocks)):
            row, j = blocks[i][k], 0
            while j < row.shape[0]:                   # runs that stay within one panel
                p, q = n // nr, n % nr
                run = min(row.shape[0] - j, nr - q)
                panels[p, k, q:q + run] = row[j:j + run]
                j, n = j + run, n + run
        if ones:
            panels[n // nr, k, n % nr] = 1.0


@jit(inline=True)
def edge_in(c, r, n0, rows, add, scratch):
    """scratch[:rows] = C[r:r+rows, n0:] padded with zeros to the panel's width (zero if not add)."""
    N = c.shape[1]
    for i in range(rows):
        for j in range(scratch.shape[1]):
            scratch[i, j] = c[r + i, n0 + j] if add and n0 + j < N else 0.0


@jit(inline=True)
def edge_out(scratch, c, r, n0, rows):
    """C[r:r+rows, n0:n0+width] = scratch[:rows], but for the columns past C's edge."""
    for i in range(rows):
        for j in range(min(scratch.shape[1], c.shape[1] - n0)):
            c[r + i, n0 + j] = scratch[i, j]


@jit(inline=True)
def _block(a, base, tile_stride, a_rs, a_ks, panels, p, r0, r1, k0, kc, c, add, scratch):
    """C[r0:r1, panel p] (+)= op(A)[r0:r1, k0:k0+kc] · rows k0:k0+kc of panel p.

    Row tile i of op(A) starts at ``a[base + i·tile_stride]``; within it rows are ``a_rs`` apart and
    k ``a_ks`` apart.
    """
    n_panels, K, NR = panels.shape
    N = c.shape[1]
    n0 = p * NR
    for r in range(r0, r1, MR):
        rows = min(MR, r1 - r)
        off = base + (r - r0) // MR * tile_stride
        if n0 + NR <= N:
            tile_mm(a, off, a_rs, a_ks, rows, panels, (p * K + k0) * NR, NR, kc, c, r * N + n0, N, add)
        else:                                        # the right edge: through a padded scratch tile
            edge_in(c, r, n0, rows, add, scratch)
            tile_mm(a, off, a_rs, a_ks, rows, panels, (p * K + k0) * NR, NR, kc, scratch, 0, NR, True)
            edge_out(scratch, c, r, n0, rows)


@jit(inline=True)
def _pack_rows(a, r0, r1, k0, kc, a_pack):
    """Rows r0:r1 of Aᵀ's K block k0:k0+kc (A stored K × M), tile by tile: a_pack[(i·kc + k)·MR + m]
    is Aᵀ[r0 + i·MR + m, k0 + k]. Read in place, the MR values of one k share a cache line but the
    next k is a whole row of A further, and rows a multiple of 4 KiB long all fall into the same few
    sets of the first-level cache: the panel's block gets evicted."""
    full = r0 + (r1 - r0) // MR * MR
    for k in range(kc):
        row = a[k0 + k]
        for r in range(r0, full, MR):                 # whole tiles: MR contiguous values each
            dst = ((r - r0) // MR * kc + k) * MR
            for m in range(MR):
                a_pack[dst + m] = row[r + m]
        for r in range(full, r1):
            a_pack[((full - r0) // MR * kc + k) * MR + r - full] = row[r]


@jit(inline=True)
def _pack_rows_of(a, r0, r1, k0, kc, a_pack):
    """The same tiles from A stored M × K: a_pack[(i·kc + k)·MR + m] is A[r0 + i·MR + m, k0 + k]."""
    for r in range(r0, r1, MR):
        base = (r - r0) // MR * kc * MR
        if r + MR <= r1:                              # a whole tile: MR a constant, the loop unrolled
            for k in range(kc):
                for m in range(MR):
                    a_pack[base + k * MR + m] = a[r + m, k0 + k]
        else:
            for k in range(kc):
                for m in range(r1 - r):
                    a_pack[base + k * MR + m] = a[r + m, k0 + k]


@jit(refcount=False)
def gemm_chunk(job, kb, phase, chunk, worker):
    """K block kb of one chunk: a block of rows times one panel."""
    n_panels, K, NR = job.panels.shape
    M = job.c.shape[0]
    k0 = kb * KC
    kc = min(KC, K - k0)
    add = job.accumulate or k0 > 0
    rb, p = chunk // n_panels, chunk % n_panels
    r0 = rb * job.block
    r1 = min(r0 + job.block, M)
    scratch = job.scratch[worker]
    if job.pack_a:
        a_pack = job.a_pack[worker]
        if job.packed[worker] != kb * job.row_blocks + rb:
            if job.trans_a:
                _pack_rows(job.a, r0, r1, k0, kc, a_pack)
            else:
                _pack_rows_of(job.a, r0, r1, k0, kc, a_pack)
            job.packed[worker] = kb * job.row_blocks + rb
        _block(a_pack, 0, kc * MR, 1, MR, job.panels, p, r0, r1, k0, kc, job.c, add, scratch)
    else:
        lda = job.a.strides[0] // job.a.itemsize
        _block(job.a, r0 * lda + k0, MR * lda, lda, 1, job.panels, p, r0, r1, k0, kc, job.c, add, scratch)


@jit
def gemm_here(a, trans_a, panels, c, accumulate):
    """C (+)= op(A) · B on the calling thread, in one compiled call (for small products)."""
    n_panels, K, NR = panels.shape
    M = c.shape[0]
    block = MR * -(-M // MR)
    pack_a = trans_a or n_panels >= PACK_A_PANELS
    job = GemmJob(panels, a, trans_a, pack_a, c, accumulate, 1, block,
                  np.empty((1, block * KC if pack_a else 0), c.dtype), np.full(1, -1),
                  -(-K // KC), np.array([n_panels]), np.zeros(-(-K // KC) * 2 * LINE, np.int64),   # counter_size(steps, 1)
                  np.empty((1, MR, NR), c.dtype))
    run(job, 0, 1)


@jit
def panel_product(a, a_off, lda, rows, panels, p, acc):
    """acc[:rows, :NR] = A[:rows] · panel p (A's rows ``lda`` apart from ``a[a_off]``).

    K is walked in blocks so that each block of the panel stays in the first-level cache while
    every row tile passes over it; ``acc`` holds the row tiles' partial sums in between.
    """
    n_panels, K, NR = panels.shape
    ldc = acc.shape[1]
    nv = NR * panels.itemsize // VECTOR_BYTES
    mr = MR4 if nv == 4 else (MR3 if nv == 3 else MR)
    block = KC_WIDE if nv == 4 else KC
    for k0 in range(0, K, block):
        kc = min(block, K - k0)
        for r in range(0, rows, mr):
            a0, n, p0, c0 = a_off + r * lda + k0, min(mr, rows - r), (p * K + k0) * NR, r * ldc
            if n == 1:                                            # one row: the one-row tile
                if nv == 4:
                    row_mm4(a, a0, lda, 1, 1, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
                elif nv == 3:
                    row_mm3(a, a0, lda, 1, 1, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
                else:
                    row_mm(a, a0, lda, 1, 1, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
            elif nv == 4:
                tile_mm4(a, a0, lda, 1, n, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
            elif nv == 3:
                tile_mm3(a, a0, lda, 1, n, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
            else:
                tile_mm(a, a0, lda, 1, n, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)


register_tasks({GemmJob: gemm_chunk})


def pack(b: np.ndarray, trans_b: bool = False, *, own: bool = False) -> np.ndarray:
    """op(B) (K × N) as (ceil(N / NR), K, NR) panels; ``own``: in a new array, not the pool's."""
    K, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    nr = SHAPE.width(b.dtype)
    panels = (workspace.aligned_empty if own else workspace.empty)((-(-N // nr), K, nr), b.dtype)
    workers = region_threads(b.size, PARALLEL_PACK)
    if workers > 1:
        _pack_panels_parallel(b, trans_b, panels, workers)
    else:
        pack_panels(b, trans_b, panels)
    return panels


def row_blocking(M: int, n_panels: int, workers: int, row_bytes: int) -> tuple[int, int]:
    """(row blocks, rows per block) for M rows whose K block takes ``row_bytes`` each: blocks short
    enough that a block of A stays in the second-level cache while every panel passes over it, and
    enough chunks that every worker gets several (the VM's cores are shared: balance matters), but
    no block shorter than a few tiles; a block is whole tiles."""
    rows_in_l2 = max(MR, L2_BYTES // row_bytes)
    row_blocks = max(1, min(max(-(-M // rows_in_l2), -(-4 * workers // n_panels)), M // (4 * MR)))
    return row_blocks, MR * -(-M // (MR * row_blocks))


def gemm_packed(a: np.ndarray, panels: np.ndarray, c: np.ndarray, *, trans_a: bool = False,
                accumulate: bool = False) -> np.ndarray:
    """c (+)= op(a) · B for B given as panels (:func:`pack`); c C-contiguous, a any 2-D array whose
    rows are contiguous (a row stride larger than its width is fine)."""
    n_panels, K, NR = panels.shape
    M = c.shape[0]
    workers = num_threads() if M * K * n_panels * NR >= MIN_SHARED_MACS else 1
    if workers == 1:
        gemm_here(a, trans_a, panels, c, accumulate)
        return c
    row_blocks, block = row_blocking(M, n_panels, workers, KC * a.itemsize)
    steps = -(-K // KC)
    pack_a = trans_a or n_panels >= PACK_A_PANELS
    job = GemmJob(panels, a, trans_a, pack_a, c, accumulate, row_blocks, block,
                  workspace.empty((workers, block * KC if pack_a else 0), c.dtype), np.full(workers, -1),
                  *plan(steps, [row_blocks * n_panels], workers, np.empty((workers, MR, NR), c.dtype)))
    launch((job,), workers)
    return c


def add_products(da: np.ndarray, blocks: list, grads: list, bias_grads: list) -> None:
    """grads[i] += DAᵀ B_i for each block B_i (K × n_i), and each of bias_grads += Σ DA (the
    column sums), with one product DAᵀ [B_0 | … | 1]: DA (K × M) is read once for all of them."""
    width = sum(b.shape[1] for b in blocks) + bool(bias_grads)
    nr = SHAPE.width(da.dtype)
    panels = workspace.empty((-(-width // nr), da.shape[0], nr), da.dtype)
    pack_blocks(tuple(blocks), bool(bias_grads), panels)
    c = workspace.empty((da.shape[1], width), da.dtype)
    gemm_packed(da, panels, c, trans_a=True)
    col = 0
    for b, g in zip(blocks, grads):
        g += c[:, col:col + b.shape[1]]
        col += b.shape[1]
    for g in bias_grads:
        g += c[:, col]


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
         accumulate: bool = False) -> np.ndarray:
    """c (+)= op(a) · op(b) with op(x) = xᵀ when its flag is set; all C-contiguous 2-D arrays."""
    return gemm_packed(a, pack(b, trans_b), c, trans_a=trans_a, accumulate=accumulate)
