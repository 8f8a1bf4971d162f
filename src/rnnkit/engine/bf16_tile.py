"""The micro-kernel of :mod:`rnnkit.engine.tile` on AVX512_BF16's dot product.

    C[i, 0:NR] (+)= Σ_{κ < K/2} A[i, 2κ] · P[2κ, 0:NR] + A[i, 2κ+1] · P[2κ+1, 0:NR]     (i < MR)

with A and P in bfloat16 and C in float32. ``vdpbf16ps acc, x, y`` takes, in each of its 16 float32
lanes j, the *pair* x[2j], x[2j+1] of bfloat16 values and adds both products into acc[j]. So the
panel holds k in pairs: row κ of a panel is NR pairs ``(P[2κ, j], P[2κ+1, j])``, 2·NR bfloat16 —
the same NR columns, NV vectors of 16 float32 accumulators, as the float32 tile — and A's pair
``(A[i, 2κ], A[i, 2κ+1])`` is one 32-bit value broadcast to all lanes. Per κ: NV vector loads and
MR broadcasts feed MR·NV dot products of 32 multiply-adds each, twice a float32 FMA's 16.

Intel defines the instruction (SDM, VDPBF16PS) as, per lane, ``acc += x[2j+1]·y[2j+1]`` then
``acc += x[2j]·y[2j]``, each a float32 fused multiply-add rounded to nearest-even, denormal inputs
taken as zero and denormal results flushed to zero, MXCSR neither read nor written. A product of two
bfloat16 (8-bit significands) is exact in float32, so the result is the float32 sum of the exact
products taken in that order (tests/test_bf16.py emulates it, bit for bit).

LLVM (18 and later) types the operands ``<32 x bfloat>``; llvmlite has no bfloat type, so
:class:`BFloat` writes one, and the bfloat16 values are loaded as 16-bit integers and bit-cast.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.engine.isa import TileShape, tile_shape
from rnnkit.engine.tile import emit_tile, tile_args, tile_signature

I64, I32, I16 = ir.IntType(64), ir.IntType(32), ir.IntType(16)
LANES = 16                        # float32 accumulators per 512-bit vector: 32 bfloat16 in pairs


class BFloat(ir.Type):
    """LLVM's ``bfloat`` (16 bits: float32's sign and exponent, 7 bits of significand)."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, BFloat)

    def __hash__(self):
        return hash(BFloat)


F32V = ir.VectorType(ir.FloatType(), LANES)
BF16V = ir.VectorType(BFloat(), 2 * LANES)
I16V = ir.VectorType(I16, 2 * LANES)
I32V = ir.VectorType(I32, LANES)
DPBF16PS = "llvm.x86.avx512bf16.dpbf16ps.512"


def _broadcast_pair(builder, address):
    """The 32-bit pair at ``address`` (an i16 pointer) in every lane, as 32 bfloat16."""
    pair = builder.load(builder.bitcast(address, I32.as_pointer()), align=2)
    undef = ir.Constant(I32V, ir.Undefined)
    splat = builder.shuffle_vector(builder.insert_element(undef, pair, ir.Constant(I32, 0)), undef,
                                   ir.Constant(I32V, [0] * LANES))
    return builder.bitcast(splat, BF16V)


def make_dp_kernel(shape: TileShape):
    """The intrinsic ``tile_dp(a, a_off, a_rs, a_ks, nrows, p, p_off, p_ks, pairs, c, c_off, c_rs, accumulate)``.

    A and the panel are uint16 arrays holding bfloat16 bits, C a float32 array. Rows
    ``a_off + i·a_rs`` (i < MR, clamped to ``nrows``) of A, whose pair κ starts at ``κ·a_ks`` (2 for
    a row of A stored whole), times ``pairs`` rows of the panel at ``p[p_off:]``, ``p_ks`` apart
    (2·NR), into C rows ``c_off + i·c_rs`` (NR contiguous float32 each); ``accumulate`` adds to C
    instead of overwriting it. Offsets and strides count elements of their own array.
    """
    mr, nv = shape.mr, shape.nv

    @intrinsic
    def tile_dp(typingctx, a, a_off, a_rs, a_ks, nrows, p, p_off, p_ks, pairs, c, c_off, c_rs, accumulate):
        if not (a.dtype == p.dtype == types.uint16 and c.dtype == types.float32):
            return None

        def codegen(context, builder, signature, args):
            dp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F32V, [F32V, BF16V, BF16V]),
                                                DPBF16PS)

            def load_panel(row, v):
                address = builder.bitcast(builder.gep(row, [ir.Constant(I64, v * 2 * LANES)]), I16V.as_pointer())
                return builder.bitcast(builder.load(address, align=2), BF16V)

            emit_tile(builder, mr, nv, F32V, tile_args(context, builder, signature, args),
                      lambda address: _broadcast_pair(builder, address), load_panel,
                      lambda acc, a_pair, panel: builder.call(dp, [acc, a_pair, panel]))
            return context.get_dummy_value()

        return tile_signature(a, p, c), codegen

    return tile_dp


# The general products' tile (8 × 2 vectors), the gates' (3 or 4 vectors: a vector of units per
# gate), and the one-row tiles for a batch of one: the float32 kernel's shapes, as the registers
# are the same (MR·NV accumulators + NV panel vectors + one broadcast).
SHAPE, SHAPE3, SHAPE4 = tile_shape(2), tile_shape(3), tile_shape(4)
tile_dp, tile_dp3, tile_dp4 = (make_dp_kernel(shape) for shape in (SHAPE, SHAPE3, SHAPE4))
row_dp, row_dp3, row_dp4 = (make_dp_kernel(TileShape(1, nv)) for nv in (2, 3, 4))
