"""Matrix products in bfloat16 with float32 accumulation: ``C (+)= op(A) · op(B)``, A and B rounded
to bfloat16, C float32, on AVX512_BF16's dot products (:mod:`rnnkit.engine.bf16_tile`).

The structure is :mod:`rnnkit.engine.gemm`'s: op(B) packed once into panels of NR columns, K walked
in blocks, the output cut into chunks (a block of rows × one panel) that the workers claim. Two
things differ, both because the instruction multiplies *pairs* of bfloat16 along k:

- a panel (:func:`pair_panels`) holds k in pairs: ``panels[p, κ, 2j + t] = bf16(B[2κ + t, p·NR + j])``,
  (P, ⌈K/2⌉, 2·NR) uint16 — any float32 panel layout of the engine (the general products' panels,
  a recurrent layer's gate panels) becomes the bfloat16 one by pairing its rows;
- op(A) is first rounded to bfloat16 row by row (:func:`round_rows`), K padded to even with a zero:
  pair κ of a row is then one 32-bit value, broadcast to the tile's lanes.

Rounding is Intel's (``VCVTNE2PS2BF16``): to nearest, ties to even; NaN stays NaN (quiet); float32
denormals become zeros of their sign, as the dot product would read them anyway (it takes denormal
inputs as zero). Weights stay float32 everywhere else: only their panels are bfloat16.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.engine import workspace
from rnnkit.engine.amx import COLUMNS, PAIRS, ROWS, amx_grid
from rnnkit.engine.amx import enable as enable_amx
from rnnkit.engine.bf16_tile import (SHAPE, SHAPE3, SHAPE4, row_dp, row_dp3, row_dp4, tile_dp, tile_dp3,
                                       tile_dp4)
from rnnkit.engine.gemm import MIN_SHARED_MACS, edge_in, edge_out, row_blocking
from rnnkit.engine.gemm import pack as pack_float32
from rnnkit.engine.isa import bf16_units
from rnnkit.engine.jit import jit
from rnnkit.engine.pack import pack_gates as pack_gates_float32
from rnnkit.engine.prepack import kept
from rnnkit.engine.vector import VecType, lanes_below, vector_pointer
from rnnkit.engine.schedule import job_record, launch, num_threads, plan, region_threads, register_tasks

MR, MR3, MR4 = SHAPE.mr, SHAPE3.mr, SHAPE4.mr
KC = 256                # K block in pairs: 256 rows of 2·NR bfloat16 (32 KiB at NR = 32) fit in L1
PARALLEL_ROUND = 1 << 18         # elements of A from which rounding is shared between the threads
# AMX's chunks take a group of panels whose K block fills about this much of the second-level
# cache: the row blocks of A pass over the group, C is written in strips of the group's width.
GROUP_BYTES = 1 << 19


class Unavailable(RuntimeError):
    """No bfloat16 unit here: the CPU (or the target Numba was given) lacks AVX512_BF16 and AMX."""


def units() -> tuple[str, ...]:
    """The bfloat16 units the compiled code may use, the fastest first: "amx" (AMX's tiles, where
    Linux grants them), "avx512bf16" (AVX512_BF16's vdpbf16ps)."""
    return tuple(u for u, usable in (("amx", enable_amx()), ("avx512bf16", "avx512bf16" in bf16_units()))
                 if usable)


def available() -> bool:
    return bool(units())


def unit(requested: str | None = None) -> str:
    """The unit a product runs on: ``requested`` if usable here, else the fastest usable one."""
    usable = units()
    if not usable:
        raise Unavailable("bfloat16 products need AVX512_BF16 (vdpbf16ps: Intel Cooper Lake, "
                          "Sapphire Rapids and later, AMD Zen 4 and later) or AMX, which this CPU "
                          "(or NUMBA_CPU_NAME / NUMBA_CPU_FEATURES) does not have; use float32")
    if requested is None:
        return usable[0]
    if requested not in usable:
        raise Unavailable(f"the bfloat16 unit {requested!r} is not usable here (usable: {', '.join(usable)})")
    return requested


@jit(inline=True)
def bf16_bits(u):
    """The bfloat16 bits (in the low 16) of the float32 with bits ``u`` (a uint32). Written with
    selects, not branches, so that a loop over a row vectorises."""
    exponent = u & numba.uint32(0x7F800000)
    rounded = (u + numba.uint32(0x7FFF) + ((u >> 16) & numba.uint32(1))) >> 16    # nearest, ties to even
    special = (u >> 16) | (numba.uint32(0x40) if u & numba.uint32(0x007FFFFF) else numba.uint32(0))
    zero = (u >> 16) & numba.uint32(0x8000)                        # zero and denormals: ±0
    out = special if exponent == numba.uint32(0x7F800000) else rounded      # ∞ as it is, NaN quiet
    return numba.uint16(zero if exponent == 0 else out)


TRANSPOSE_BLOCK = 16    # a transposed rounding goes by blocks of 16 × 16: A read along its rows,
                        # out's 16 rows of the block in L1 (measured 1.6× faster than 64 rows × all k)


@intrinsic
def vstore_bf16(typingctx, array, offset, value, count):
    """array[offset : offset + count] = bfloat16 bits of the first ``count`` lanes of ``value`` (a
    float32 vector of :mod:`.vector`; array uint16): :func:`bf16_bits` lane by lane, in vector
    registers (integer adds, shifts and selects; no AVX512_BF16 needed)."""
    if not (isinstance(value, VecType) and value.dtype == types.float32 and array.dtype == types.uint16):
        return None
    sig = types.void(array, types.intp, value, types.intp)

    def codegen(context, builder, signature, args):
        width = signature.args[2].width
        i32v, i16v = ir.VectorType(ir.IntType(32), width), ir.VectorType(ir.IntType(16), width)

        def splat(x):
            return ir.Constant(i32v, [x] * width)
        u = builder.bitcast(args[2], i32v)
        exponent, high = builder.and_(u, splat(0x7F800000)), builder.lshr(u, splat(16))
        rounded = builder.lshr(builder.add(builder.add(u, splat(0x7FFF)), builder.and_(high, splat(1))), splat(16))
        quiet = builder.select(builder.icmp_unsigned("!=", builder.and_(u, splat(0x007FFFFF)), splat(0)),
                               splat(0x40), splat(0))
        out = builder.select(builder.icmp_unsigned("==", exponent, splat(0x7F800000)), builder.or_(high, quiet), rounded)
        out = builder.select(builder.icmp_unsigned("==", exponent, splat(0)), builder.and_(high, splat(0x8000)), out)
        ptr = vector_pointer(context, builder, signature.args[0], args[0], args[1], i16v)
        mask_type = ir.VectorType(ir.IntType(1), width)
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i16v, ptr.type, ir.IntType(32), mask_type]),
            f"llvm.masked.store.v{width}i16.p0")
        builder.call(store, [builder.trunc(out, i16v), ptr, ir.Constant(ir.IntType(32), 2),
                             lanes_below(builder, args[3], width)])
        return context.get_dummy_value()
    return sig, codegen


@jit(inline=True)
def _round_row_range(bits, trans, out, r0, r1):
    """out[m, k] = bf16(op(A)[m, k]) for rows r0 ≤ m < r1, zero in the padding. Transposed (A
    stored K × M), by blocks of TRANSPOSE_BLOCK², k outer."""
    K, M = bits.shape if trans else (bits.shape[1], bits.shape[0])
    for m in range(r0, r1):
        out[m, K:] = 0
        if m >= M:
            out[m, :K] = 0
        elif not trans:
            row, src = out[m], bits[m]
            for k in range(K):
                row[k] = bf16_bits(src[k])
    if trans:
        n = TRANSPOSE_BLOCK
        for k0 in range(0, K, n):
            for m0 in range(r0, min(r1, M), n):
                for k in range(k0, min(k0 + n, K)):
                    src = bits[k]
                    for m in range(m0, min(m0 + n, r1, M)):
                        out[m, k] = bf16_bits(src[m])


@jit
def _round_rows(bits, trans, out):
    _round_row_range(bits, trans, out, 0, out.shape[0])


def round_into(bits: np.ndarray, out: np.ndarray) -> None:
    """out (M', K') uint16 = bf16 of the float32 bits (M, K) (uint32), zero past M and K; one thread."""
    _round_rows(bits, False, out)


@numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _round_rows_parallel(bits, trans, out, workers):
    """The same, rows cut into ``workers`` contiguous ranges, a thread each."""
    M = out.shape[0]
    for w in numba.prange(workers):
        _round_row_range(bits, trans, out, w * M // workers, (w + 1) * M // workers)


def round_rows(a: np.ndarray, trans: bool = False) -> np.ndarray:
    """op(a) (float32, M × K; a stored K × M when ``trans``) in bfloat16 bits, from the pool:
    (M, K) padded with zeros to whole AMX tiles, rows to a multiple of 32 and K of 32 (16 pairs), so
    that either unit reads it. a's rows must be contiguous (a longer row stride is fine)."""
    M, K = (a.shape[1], a.shape[0]) if trans else a.shape
    out = workspace.empty((-(-M // ROWS) * ROWS, -(-K // (2 * PAIRS)) * 2 * PAIRS), np.uint16)
    bits = np.asarray(a, np.float32).view(np.uint32)
    workers = region_threads(a.size, PARALLEL_ROUND)
    if workers > 1:
        _round_rows_parallel(bits, trans, out, workers)
    else:
        _round_rows(bits, trans, out)
    return out


@jit
def _pair(bits, out):
    """out[p, κ, 2j + t] = bf16(panels[p, 2κ + t, j]), zero past K."""
    n_panels, K, NR = bits.shape
    for p in range(n_panels):
        for kappa in range(out.shape[1]):
            row = out[p, kappa]
            for t in range(2):
                k = 2 * kappa + t
                if k < K:
                    src = bits[p, k]
                    for j in range(NR):
                        row[2 * j + t] = bf16_bits(src[j])
                else:
                    for j in range(NR):
                        row[2 * j + t] = 0


def pair_panels(panels: np.ndarray, *, own: bool = False) -> np.ndarray:
    """Float32 panels (P, K, NR) as bfloat16 panels in pairs along k: (P, pairs, 2·NR) uint16, the
    pairs padded with zeros to a multiple of 16 (an AMX tile's)."""
    n_panels, K, NR = panels.shape
    out = (workspace.aligned_empty if own else workspace.empty)((n_panels, -(-K // (2 * PAIRS)) * PAIRS, 2 * NR), np.uint16)
    _pair(np.asarray(panels, np.float32).view(np.uint32), out)
    return out


def pack(b: np.ndarray, trans_b: bool = False) -> np.ndarray:
    """op(B) (float32, K × N) as bfloat16 panels for :func:`gemm_packed`."""
    return pair_panels(pack_float32(np.asarray(b, np.float32), trans_b))


def pack_gates(w_hh: np.ndarray, gates: int, *, inference: bool = False) -> np.ndarray:
    """W_hh (G·H, K) as bfloat16 gate panels (:func:`rnnkit.engine.pack.pack_gates`'s, paired),
    kept from call to call while the weights stay the same (:func:`rnnkit.engine.prepack.kept`)."""
    return kept(w_hh, ("gates", gates, "bfloat16"),
                lambda w, own: pair_panels(pack_gates_float32(w, gates), own=own), inference=inference)


def pack_input(w_ih: np.ndarray, *, inference: bool = False) -> np.ndarray:
    """W_ihᵀ as the bfloat16 panels of the input product, kept as :func:`pack_gates`' are."""
    return kept(w_ih, ("input", "bfloat16"),
                lambda w, own: pair_panels(pack_float32(w, trans_b=True), own=own), inference=inference)


@job_record
class Bf16GemmJob:
    panels: np.ndarray          # (P, pairs, 2·NR) uint16: op(B) in pairs
    a: np.ndarray               # (≥ M, 2·pairs) uint16: op(A) rounded (round_rows)
    c: np.ndarray               # (M, N) float32
    accumulate: bool            # add into C instead of overwriting it
    row_blocks: int
    block: int                  # rows per block, whole tiles
    group: int                  # panels per chunk (1 on vdpbf16ps)
    # the plan: steps = K blocks, one phase of row blocks × panel groups; scratch (workers, tile
    # rows, NR) float32 the edges' tile


class AmxGemmJob(Bf16GemmJob):
    """The same product on AMX's tiles (its own type: its code is compiled only where AMX is)."""

    __slots__ = ()


@jit(inline=True)
def _chunk_rows(job, kb, chunk):
    """(first row, end row, first panel, end panel, first pair, pairs, add) of K block kb of one chunk."""
    n_panels, pairs, W = job.panels.shape
    n_groups, k0 = -(-n_panels // job.group), kb * KC
    rb, p0 = chunk // n_groups, chunk % n_groups * job.group
    r0 = rb * job.block
    return (r0, min(r0 + job.block, job.c.shape[0]), p0, min(p0 + job.group, n_panels), k0,
            min(KC, pairs - k0), job.accumulate or k0 > 0)


@jit(refcount=False)
def bf16_chunk(job, kb, phase, chunk, worker):
    """K block kb of one chunk on vdpbf16ps tiles: a block of rows times one panel."""
    r0, r1, p, _, k0, kc, add = _chunk_rows(job, kb, chunk)
    n_panels, pairs, W = job.panels.shape
    NR, N, lda = W // 2, job.c.shape[1], job.a.shape[1]
    n0, scratch = p * NR, job.scratch[worker]
    for r in range(r0, r1, MR):
        rows = min(MR, r1 - r)
        off, p_off = r * lda + 2 * k0, (p * pairs + k0) * W
        if n0 + NR <= N:
            tile_dp(job.a, off, lda, 2, rows, job.panels, p_off, W, kc, job.c, r * N + n0, N, add)
        else:                                        # the right edge: through a padded scratch tile
            edge_in(job.c, r, n0, rows, add, scratch)
            tile_dp(job.a, off, lda, 2, rows, job.panels, p_off, W, kc, scratch, 0, NR, True)
            edge_out(scratch, job.c, r, n0, rows)


@jit(refcount=False)
def amx_chunk(job, kb, phase, chunk, worker):
    """The same on AMX: the whole blocks of 32 × 32 in one call of the tiles, the edges through a
    scratch block (A's rows are padded to whole blocks: always readable)."""
    r0, r1, p0, p1, k0, kc, add = _chunk_rows(job, kb, chunk)
    n_panels, pairs, W = job.panels.shape
    N, lda = job.c.shape[1], job.a.shape[1]
    whole_panels, whole_rows = max(0, min(p1, N // COLUMNS) - p0), (r1 - r0) // ROWS
    if whole_panels > 0 and whole_rows > 0:
        amx_grid(job.a, r0 * lda + 2 * k0, lda, job.panels, (p0 * pairs + k0) * W, W, pairs * W, kc,
                 job.c, r0 * N + p0 * COLUMNS, N, whole_rows, whole_panels, add)
    scratch = job.scratch[worker]
    for r in range(r0, r1, ROWS):
        rows = min(ROWS, r1 - r)
        for p in range(p0 + whole_panels if rows == ROWS else p0, p1):       # the edges
            edge_in(job.c, r, p * COLUMNS, rows, add, scratch)
            amx_grid(job.a, r * lda + 2 * k0, lda, job.panels, (p * pairs + k0) * W, W, 0, kc,
                     scratch, 0, COLUMNS, 1, 1, True)
            edge_out(scratch, job.c, r, p * COLUMNS, rows)


register_tasks({Bf16GemmJob: bf16_chunk, AmxGemmJob: amx_chunk})


def gemm_packed(a16: np.ndarray, panels: np.ndarray, c: np.ndarray, *, accumulate: bool = False,
                on: str | None = None) -> np.ndarray:
    """c (+)= A · B for A rounded (:func:`round_rows`) and B packed (:func:`pack`), on the unit
    ``on`` (:func:`unit`); c float32, C-contiguous."""
    amx = unit(on) == "amx"
    n_panels, pairs, W = panels.shape
    M = c.shape[0]
    if a16.shape[0] < -(-M // ROWS) * ROWS or a16.shape[1] != 2 * pairs or c.shape[1] > n_panels * W // 2 \
            or c.dtype != np.float32 or W != 2 * COLUMNS:
        raise ValueError(f"shapes do not match: A {a16.shape}, panels {panels.shape}, C {c.shape} {c.dtype}")
    workers = num_threads() if M * pairs * n_panels * W >= MIN_SHARED_MACS else 1
    group = max(1, min(n_panels, GROUP_BYTES // (2 * W * min(KC, pairs)))) if amx else 1
    if workers > 1:
        group = min(group, -(-n_panels // (2 * workers)))           # chunks enough for every worker
    n_groups = -(-n_panels // group)
    row_blocks, block = row_blocking(M, n_groups, workers, 4 * KC) if workers > 1 else (1, M)
    tile_rows = ROWS if amx else MR
    block = -(-block // tile_rows) * tile_rows                    # whole tiles of the unit
    row_blocks, steps = -(-M // block), -(-pairs // KC)
    job = (AmxGemmJob if amx else Bf16GemmJob)(
        panels, a16, c, accumulate, row_blocks, block, group,
        *plan(steps, [row_blocks * n_groups], workers, np.empty((workers, tile_rows, W // 2), np.float32)))
    launch((job,), workers)
    return c


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
         accumulate: bool = False, on: str | None = None) -> np.ndarray:
    """c (+)= op(a) · op(b) in bfloat16 with float32 accumulation; a, b float32 2-D, c float32."""
    unit(on)
    return gemm_packed(round_rows(a, trans_a), pack(b, trans_b), c, accumulate=accumulate, on=on)


@jit
def panel_product(a16, a_off, lda, rows, panels, p, acc):
    """acc[:rows, :NR] = A[:rows] · bfloat16 panel p: :func:`rnnkit.engine.gemm.panel_product`
    for rounded rows (``a16[a_off + r·lda:]``, lda even) and paired panels of 2, 3 or 4 vectors."""
    n_panels, pairs, W = panels.shape
    ldc = acc.shape[1]
    nv = W // 32                                                 # 32 bfloat16 per vector
    mr = MR4 if nv == 4 else (MR3 if nv == 3 else MR)
    for k0 in range(0, pairs, KC):
        kc = min(KC, pairs - k0)
        for r in range(0, rows, mr):
            a0, n, p0, c0 = a_off + r * lda + 2 * k0, min(mr, rows - r), (p * pairs + k0) * W, r * ldc
            if nv == 4:
                if n == 1:
                    row_dp4(a16, a0, lda, 2, 1, panels, p0, W, kc, acc, c0, ldc, k0 > 0)
                else:
                    tile_dp4(a16, a0, lda, 2, n, panels, p0, W, kc, acc, c0, ldc, k0 > 0)
            elif nv == 3:
                if n == 1:
                    row_dp3(a16, a0, lda, 2, 1, panels, p0, W, kc, acc, c0, ldc, k0 > 0)
                else:
                    tile_dp3(a16, a0, lda, 2, n, panels, p0, W, kc, acc, c0, ldc, k0 > 0)
            elif n == 1:
                row_dp(a16, a0, lda, 2, 1, panels, p0, W, kc, acc, c0, ldc, k0 > 0)
            else:
                tile_dp(a16, a0, lda, 2, n, panels, p0, W, kc, acc, c0, ldc, k0 > 0)
