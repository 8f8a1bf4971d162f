"""bfloat16 products on Intel's AMX tiles (``tdpbf16ps``, Sapphire Rapids and later).

A tile register holds up to 16 rows of 64 bytes; ``tdpbf16ps c, a, b`` adds to the float32 tile c
(16 × 16) the product of a (16 rows × 32 bfloat16: 16 pairs along k) and b (16 pairs along k ×
16 columns, each row 16 pairs): 8,192 multiply-adds in one instruction. b's layout is the paired
panel of :mod:`rnnkit.engine.bf16` — row κ of a 32-column panel is two b rows side by side — and a's
is a row of A rounded to bfloat16, so both operands are read where they lie. :func:`amx_grid` keeps
each 32 × 32 block of C in four tiles over the whole K loop (tiles 0-3), with two tiles of A (4, 5)
and two of the panel (6, 7): per 16 pairs, four loads feed four products. One call walks a grid of
such blocks — row blocks outer, panels inner, so that C is written in strips of whole rows rather
than down a column panel (a stride of N·4 bytes, a power of two here, which measured half as
fast) — under one ``ldtilecfg`` and one ``tilerelease``.

Intel leaves the order and the intermediate rounding of a tile's sums to the implementation (the
SDM gives a sequential order, the hardware here differs from it in a few percent of the outputs'
last bits), with denormal inputs taken as zero and results flushed: the result is a float32 sum
of the exact products, as close to them as a sum of K terms rounded to float32 is.

Linux hands AMX's 8 KiB of tile state to a process only on request (``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``, Linux 5.16); before that a tile instruction faults. :func:`enable` asks once.
"""

from __future__ import annotations

import ctypes
import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.engine.isa import bf16_units

I8, I64 = ir.IntType(8), ir.IntType(64)
PTR = ir.IntType(8).as_pointer()
ROWS = 32                       # rows of C a block computes (two tiles)
COLUMNS = 32                    # its columns: one panel of NR = 32 (two tiles)
PAIRS = 16                      # pairs of k per step (a tile of A is 16 pairs wide)
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18


@functools.cache
def enable() -> bool:
    """Whether AMX's tiles may be used: the CPU has them and Linux granted their state (asked once)."""
    if "amx" not in bf16_units():
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):                   # not Linux, or no syscall()
        return False


def _config() -> ir.Constant:
    """The 64-byte tile configuration: palette 1, tiles 0-7 of 16 rows × 64 bytes."""
    config = [0] * 64
    config[0] = 1
    for t in range(8):
        config[16 + 2 * t] = 64                          # bytes per row, little-endian uint16
        config[48 + t] = 16                              # rows
    return ir.Constant(ir.ArrayType(I8, 64), config)


def _declare(builder, name: str, *args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), list(args)), name)


def _grid(across: int):
    """The intrinsic of a grid of blocks of 32 rows × 16·across columns (across = 1 or 2)."""
    width = 16 * across

    def grid(typingctx, a, a_off, lda, p, p_off, p_ks, p_ps, pairs, c, c_off, ldc, blocks, n_panels, accumulate):
        if not (a.dtype == p.dtype == types.uint16 and c.dtype == types.float32):
            return None
        sig = types.void(a, types.intp, types.intp, p, *[types.intp] * 4, c, *[types.intp] * 4, types.boolean)
        return sig, functools.partial(_grid_code, across)

    grid.__name__ = grid.__qualname__ = f"amx_grid{'' if across == 2 else '_16'}"
    grid.__doc__ = (f"C[32·blocks × {width}·n_panels at c_off, rows ldc apart] (+)= A[32·blocks rows at "
                    "a_off, lda apart] · panels[n_panels panels of pairs rows at p_off, rows p_ks apart, "
                    "panels p_ps apart]: a, p uint16 (bfloat16 bits), c float32, pairs a multiple of 16, "
                    "A's rows all readable. Offsets and strides count elements of their own array.")
    return intrinsic(grid)


def _grid_code(across, context, builder, signature, args):
    """Each block of C stays in tiles (row tile r, column tile j: tile r·across + j) over the whole
    K loop (loaded or zeroed once, stored once); A's two row tiles are 4, 5, the panel's column
    tiles 6, 7. Row blocks outer, panels inner, so C is written in strips of whole rows. The tile
    configuration is loaded once per call and released at its end."""
    (a_, a_off_, lda_, p_, p_off_, p_ks_, p_ps_, pairs_, c_, c_off_, ldc_, blocks_, n_panels_, acc_) = args
    data = [context.make_array(t)(context, builder, v).data for t, v in
            ((signature.args[0], a_), (signature.args[3], p_), (signature.args[8], c_))]
    A0, P0, C0 = (builder.gep(d, [o]) for d, o in zip(data, (a_off_, p_off_, c_off_)))
    load = _declare(builder, "llvm.x86.tileloadd64", I8, PTR, I64)
    store = _declare(builder, "llvm.x86.tilestored64", I8, PTR, I64)
    dp = _declare(builder, "llvm.x86.tdpbf16ps", I8, I8, I8)
    zero = _declare(builder, "llvm.x86.tilezero", I8)
    config = cgutils.alloca_once(builder, ir.ArrayType(I8, 64))
    builder.store(_config(), config)
    builder.call(_declare(builder, "llvm.x86.ldtilecfg", PTR), [builder.bitcast(config, PTR)])

    def byte(ptr):
        return builder.bitcast(ptr, PTR)

    def const(n):
        return ir.Constant(I64, n)

    def tile(n):
        return ir.Constant(I8, n)

    blocks = [(r, j) for r in range(2) for j in range(across)]            # C's tiles in a block
    c_bytes, a_bytes, p_bytes = (builder.mul(s, const(k)) for s, k in ((ldc_, 4), (lda_, 2), (p_ks_, 2)))
    steps = builder.sdiv(pairs_, const(PAIRS))
    with cgutils.for_range(builder, blocks_) as row_block:           # 32 rows of A and C
        A = builder.gep(A0, [builder.mul(row_block.index, builder.mul(lda_, const(ROWS)))])
        C_rows = builder.gep(C0, [builder.mul(row_block.index, builder.mul(ldc_, const(ROWS)))])
        with cgutils.for_range(builder, n_panels_) as panel:          # 16·across columns: one panel
            P = builder.gep(P0, [builder.mul(panel.index, p_ps_)])
            C = builder.gep(C_rows, [builder.mul(panel.index, const(16 * across))])
            c_tiles = [byte(builder.gep(C, [builder.add(builder.mul(ldc_, const(16 * r)), const(16 * j))]))
                       for r, j in blocks]
            with builder.if_else(acc_) as (then, otherwise):
                with then:
                    for t in range(len(blocks)):
                        builder.call(load, [tile(t), c_tiles[t], c_bytes])
                with otherwise:
                    for t in range(len(blocks)):
                        builder.call(zero, [tile(t)])
            with cgutils.for_range(builder, steps) as step:          # 16 pairs of k a step
                a_k = builder.gep(A, [builder.mul(step.index, const(2 * PAIRS))])
                for t, row in ((4, const(0)), (5, builder.mul(lda_, const(16)))):
                    builder.call(load, [tile(t), byte(builder.gep(a_k, [row])), a_bytes])
                p_k = builder.gep(P, [builder.mul(builder.mul(step.index, const(PAIRS)), p_ks_)])
                for j in range(across):
                    builder.call(load, [tile(6 + j), byte(builder.gep(p_k, [const(2 * 16 * j)])), p_bytes])
                for t, (r, j) in enumerate(blocks):
                    builder.call(dp, [tile(t), tile(4 + r), tile(6 + j)])
            for t in range(len(blocks)):
                builder.call(store, [tile(t), c_tiles[t], c_bytes])
    builder.call(_declare(builder, "llvm.x86.tilerelease"), [])
    return context.get_dummy_value()


amx_grid = _grid(2)          # blocks of 32 × 32: the general products' and the gate panels'
amx_grid_16 = _grid(1)       # blocks of 32 × 16: a gate panel's last 16 columns (the GRU's 48)
