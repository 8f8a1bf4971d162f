"""bfloat16 products on Intel's AMX tiles (``tdpbf16ps``, Sapphire Rapids and later).

A tile register holds up to 16 rows of 64 bytes; ``tdpbf16ps c, a, b`` adds to the float32 tile c
(16 × 16) the product of a (16 rows × 32 bfloat16: 16 pairs along k) and b (16 pairs along k ×
16 columns, each row 16 pairs): 8,192 multiply-adds in one instruction. b's layout is the paired
panel of :mod:`rnnkit.engine.bf16` — row κ of a 32-column panel is two b rows side by side — and a's
is a row of A rounded to bfloat16, so both operands are read where they lie. The block below keeps a
32 × 32 block of C in four tiles over the K loop (tiles 0-3), with two tiles of A (4, 5) and two of
the panel (6, 7): per 16 pairs, four loads feed four products.

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


@intrinsic
def amx_block(typingctx, a, a_off, lda, p, p_off, p_ks, pairs, c, c_off, ldc, accumulate):
    """C[32 × 32 at c_off, rows ldc apart] (+)= A[32 rows at a_off, lda apart] · panel[pairs rows
    at p_off, p_ks apart]: a, p uint16 (bfloat16 bits), c float32, pairs a multiple of 16, A's 32
    rows all readable. Offsets and strides count elements of their own array."""
    if not (a.dtype == p.dtype == types.uint16 and c.dtype == types.float32):
        return None
    sig = types.void(a, types.intp, types.intp, p, types.intp, types.intp, types.intp, c, types.intp,
                     types.intp, types.boolean)

    def codegen(context, builder, signature, args):
        (a_, a_off_, lda_, p_, p_off_, p_ks_, pairs_, c_, c_off_, ldc_, acc_) = args
        data = [context.make_array(t)(context, builder, v).data for t, v in
                ((signature.args[0], a_), (signature.args[3], p_), (signature.args[7], c_))]
        A, P, C = (builder.gep(d, [o]) for d, o in zip(data, (a_off_, p_off_, c_off_)))
        load = _declare(builder, "llvm.x86.tileloadd64", I8, PTR, I64)
        store = _declare(builder, "llvm.x86.tilestored64", I8, PTR, I64)
        dp = _declare(builder, "llvm.x86.tdpbf16ps", I8, I8, I8)
        config = cgutils.alloca_once(builder, ir.ArrayType(I8, 64))
        builder.store(_config(), config)
        builder.call(_declare(builder, "llvm.x86.ldtilecfg", PTR), [builder.bitcast(config, PTR)])

        def byte(ptr):
            return builder.bitcast(ptr, PTR)

        def const(n):
            return ir.Constant(I64, n)

        c_bytes, a_bytes, p_bytes = (builder.mul(s, const(k)) for s, k in ((ldc_, 4), (lda_, 2), (p_ks_, 2)))
        c_tiles = [builder.gep(C, [builder.add(builder.mul(ldc_, const(16 * (t // 2))), const(16 * (t % 2)))])
                   for t in range(4)]
        with builder.if_else(acc_) as (then, otherwise):
            with then:
                for t in range(4):
                    builder.call(load, [ir.Constant(I8, t), byte(c_tiles[t]), c_bytes])
            with otherwise:
                for t in range(4):
                    builder.call(_declare(builder, "llvm.x86.tilezero", I8), [ir.Constant(I8, t)])
        entry = builder.block
        loop, done = builder.append_basic_block("amx.loop"), builder.append_basic_block("amx.done")
        builder.cbranch(builder.icmp_signed(">", pairs_, const(0)), loop, done)
        builder.position_at_end(loop)                        # for κ in range(0, pairs, 16):
        k = builder.phi(I64)
        a_k = builder.gep(A, [builder.mul(k, const(2))])
        for t, row in ((4, const(0)), (5, builder.mul(lda_, const(16)))):
            builder.call(load, [ir.Constant(I8, t), byte(builder.gep(a_k, [row])), a_bytes])
        p_k = builder.gep(P, [builder.mul(k, p_ks_)])
        for t, column in ((6, 0), (7, 2 * 16)):
            builder.call(load, [ir.Constant(I8, t), byte(builder.gep(p_k, [const(column)])), p_bytes])
        for t, (ta, tb) in enumerate(((4, 6), (4, 7), (5, 6), (5, 7))):
            builder.call(dp, [ir.Constant(I8, t), ir.Constant(I8, ta), ir.Constant(I8, tb)])
        k_next = builder.add(k, const(PAIRS))
        k.add_incoming(const(0), entry)
        k.add_incoming(k_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", k_next, pairs_), loop, done)
        builder.position_at_end(done)
        for t in range(4):
            builder.call(store, [ir.Constant(I8, t), byte(c_tiles[t]), c_bytes])
        builder.call(_declare(builder, "llvm.x86.tilerelease"), [])
        return context.get_dummy_value()

    return sig, codegen
