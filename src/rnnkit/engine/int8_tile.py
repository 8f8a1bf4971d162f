"""The int8 micro-kernel: u8 × s8 dot products of four, accumulated exactly in int32 (VNNI).

    acc[i, j] = Σ_{γ < G} Σ_{t < 4} Aq[i, 4γ + t] · Pq[4γ + t, j]          (i < MR, j < NR)

``vpdpbusd acc, x, y`` takes, in each 32-bit lane j, the four *unsigned* bytes x[4j..4j+3] and the
four *signed* bytes y[4j..4j+3], and adds the four products to acc[j]. Intel's SDM (VPDPBUSD)
computes the four products as 16-bit values, sums them in 32 bits and adds the sum to the lane
with wrap-around — no step saturates (``vpdpbusds`` is the saturating twin; the older
``vpmaddubsw`` saturates the sum of a *pair* to int16, which is why PyTorch's x86 dynamic
quantisation keeps activations to 7 bits). So the tile's result is the exact integer sum while
it stays below 2^31 in magnitude: K ≤ (2^31 − 1) / (255 · 128) for any bytes,
:data:`rnnkit.engine.quantize.MAX_K` for weights in ±127.

The panel holds k in groups of four: row γ of a panel is NR columns × 4 bytes, NV vectors, and
the four bytes of A's row i at group γ are one 32-bit value broadcast to every lane. A arrives
*packed in tiles* (``(tiles, G, MR, 4)`` bytes, written so by the quantiser of
:mod:`rnnkit.engine.int8`), so a tile reads one stream. Per γ: NV vector loads and MR broadcasts
feed MR·NV dot products of 4·lanes multiply-adds each (64 per instruction on 512 bits, four times
a float32 FMA's 16).

The tile writes float32, dequantised on the way out: the zero-point correction in integers first
(exact) and then two float32 products, in this order:

    C[i, j] (+)= float32(acc[i, j] − zp[i] · colsum[j]) · s_w[j] · s_a[i]

LLVM 22 types the operands ``<64 x i8>`` (it reads the older ``<16 x i32>`` form and upgrades it).
Rows past ``nrows`` read and write row ``nrows − 1`` again, as in :mod:`rnnkit.engine.tile`.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.engine.isa import TileShape, dot_bits
from rnnkit.engine.tile import emit_loop

I64, I32, I8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
BITS = dot_bits() or 512             # without VNNI the kernels are never called (int8.py falls back)
LANES = BITS // 32                   # int32 accumulators per vector
I32V = ir.VectorType(I32, LANES)
I8V = ir.VectorType(I8, 4 * LANES)
F32V = ir.VectorType(ir.FloatType(), LANES)
VPDPBUSD = f"llvm.x86.avx512.vpdpbusd.{BITS}"


def _const(n: int) -> ir.Constant:
    return ir.Constant(I64, n)


def _data(context, builder, array_type, array, offset):
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [offset])


def _splat(builder, value, vector_type):
    undef = ir.Constant(vector_type, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(I32, 0))
    return builder.shuffle_vector(first, undef, ir.Constant(ir.VectorType(I32, vector_type.count),
                                                            [0] * vector_type.count))


def _vector(builder, base, offset, vector_type):
    """The vector at ``base + offset`` (elements of base's type)."""
    return builder.bitcast(builder.gep(base, [_const(offset)]), vector_type.as_pointer())


def _clamped(builder, mr, nrows):
    """Row r of the tile reads and writes row min(r, nrows − 1)."""
    last = builder.sub(nrows, _const(1))
    return [builder.select(builder.icmp_signed("<", _const(r), nrows), _const(r), last) for r in range(mr)]


def _dot_loop(builder, mr, nv, a, rows, p, groups, init):
    """The group loop: returns the MR·NV accumulators after ``groups`` groups (``init`` before)."""
    dot = cgutils.get_or_insert_function(builder.module, ir.FunctionType(I32V, [I32V, I8V, I8V]), VPDPBUSD)
    a32 = builder.bitcast(a, I32.as_pointer())          # A's groups of four bytes as int32

    def step(g, acc):                                   # group γ: NV panel vectors, MR broadcasts
        row = builder.gep(p, [builder.mul(g, _const(nv * 4 * LANES))])
        panel = [builder.load(_vector(builder, row, v * 4 * LANES, I8V), align=1) for v in range(nv)]
        new = []
        for i in range(mr):
            group = builder.load(builder.gep(a32, [builder.add(builder.mul(g, _const(mr)), rows[i])]), align=1)
            a_i = builder.bitcast(_splat(builder, group, I32V), I8V)
            new += [builder.call(dot, [acc[i * nv + v], a_i, panel[v]]) for v in range(nv)]
        return new

    return emit_loop(builder, groups, I32V, init, step)      # for γ in range(G)


def _store_dequantised(builder, mr, nv, acc, zp, sa, colsum, sw, c_rows, accumulate):
    """C[i, j] (+)= float32(acc − zp[i]·colsum[j]) · s_w[j] · s_a[i] for the tile's rows."""
    sums = [builder.load(_vector(builder, colsum, v * LANES, I32V), align=4) for v in range(nv)]
    scales = [builder.load(_vector(builder, sw, v * LANES, F32V), align=4) for v in range(nv)]
    addresses = [_vector(builder, c_rows[i], v * LANES, F32V) for i in range(mr) for v in range(nv)]
    old = [builder.load(address, align=4) for address in addresses]   # all before any store: rows
    values = []                                                       # past nrows repeat the last
    for i in range(mr):
        zp_i = _splat(builder, builder.load(zp[i], align=4), I32V)
        sa_i = _splat(builder, builder.load(sa[i], align=4), F32V)
        for v in range(nv):
            exact = builder.sub(acc[i * nv + v], builder.mul(zp_i, sums[v]))
            value = builder.fmul(builder.fmul(builder.sitofp(exact, F32V), scales[v]), sa_i)
            values.append(builder.select(accumulate, builder.fadd(old[i * nv + v], value), value))
    for address, value in zip(addresses, values):
        builder.store(value, address, align=4)


def make_dequant_kernel(shape: TileShape):
    """The intrinsic ``tile_dq(a, a_off, nrows, p, p_off, groups, zp, sa, r_off, colsum, sw, n_off,
    c, c_off, c_rs, accumulate)``.

    ``a`` uint8: one tile of packed A at ``a[a_off:]`` (G × MR × 4 bytes); ``p`` int8: a panel at
    ``p[p_off:]`` (G × NR × 4 bytes); ``zp`` int32 and ``sa`` float32: each row's zero point and
    scale (row i of the tile at ``r_off + i``); ``colsum`` int32 and ``sw`` float32: each column's
    sum of quantised weights and scale (the panel's NR at ``n_off``); ``c`` float32: rows
    ``c_off + i·c_rs`` of NR contiguous values, overwritten or, with ``accumulate``, added to.
    Offsets count elements. With unit scales and zero points 0 the tile writes float32(acc): the
    integers themselves while they stay below 2^24.
    """
    mr, nv = shape.mr, shape.nv

    @intrinsic
    def tile_dq(typingctx, a, a_off, nrows, p, p_off, groups, zp, sa, r_off, colsum, sw, n_off, c, c_off, c_rs,
                accumulate):
        if not (a.dtype == types.uint8 and p.dtype == types.int8 and zp.dtype == colsum.dtype == types.int32
                and sa.dtype == sw.dtype == c.dtype == types.float32):
            return None
        ip = types.intp
        sig = types.void(a, ip, ip, p, ip, ip, zp, sa, ip, colsum, sw, ip, c, ip, ip, types.boolean)

        def codegen(context, builder, signature, args):
            (a_, a_off_, nrows_, p_, p_off_, groups_, zp_, sa_, r_off_, cs_, sw_, n_off_, c_, c_off_, c_rs_,
             acc_) = args
            t = signature.args
            rows = _clamped(builder, mr, nrows_)
            C = _data(context, builder, t[12], c_, c_off_)
            ZP, SA = _data(context, builder, t[6], zp_, r_off_), _data(context, builder, t[7], sa_, r_off_)
            zero = ir.Constant(I32V, None)
            out = _dot_loop(builder, mr, nv, _data(context, builder, t[0], a_, a_off_), rows,
                            _data(context, builder, t[3], p_, p_off_), groups_, [zero] * (mr * nv))
            _store_dequantised(builder, mr, nv, out, [builder.gep(ZP, [r]) for r in rows],
                               [builder.gep(SA, [r]) for r in rows], _data(context, builder, t[9], cs_, n_off_),
                               _data(context, builder, t[10], sw_, n_off_),
                               [builder.gep(C, [builder.mul(r, c_rs_)]) for r in rows], acc_)
            return context.get_dummy_value()

        return sig, codegen

    return tile_dq
