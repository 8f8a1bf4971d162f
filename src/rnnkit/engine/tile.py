"""The one matrix-product micro-kernel every product of the engine runs on.

    C[i, 0:NR] (+)= Σ_{k < K} A[i, k] · P[k, 0:NR]          for the rows i < MR of one tile

``P`` is a *packed panel*: NR = NV·lanes consecutive columns of a weight matrix stored row after
row (K × NR, contiguous), so that each k reads NV whole vectors. ``A`` is read where it lies,
through a row stride and a k stride (so Aᵀ costs nothing), one element at a time, broadcast to a
vector. The MR × NV accumulators stay in registers for the whole K loop: per k, NV vector loads and
MR broadcasts feed MR·NV fused multiply-adds. This is the inner loop of every high-performance
GEMM (Goto & van de Geijn 2008; oneDNN's brgemm); we emit it as LLVM IR through a Numba intrinsic
so that it uses the widest vectors the CPU has (:mod:`rnnkit.engine.isa`) whatever BLAS NumPy
loaded.

Rows past ``nrows`` read and write row ``nrows − 1`` again (the same values, so the duplicate
stores are harmless): a tile never touches memory outside the rows it was given.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.engine.isa import TileShape, host_isa, tile_shape

I64 = ir.IntType(64)
I32 = ir.IntType(32)


def _const(n: int) -> ir.Constant:
    return ir.Constant(I64, n)


def _data(context, builder, array_type, array):
    return context.make_array(array_type)(context, builder, array).data


def emit_tile(builder, mr: int, nv: int, vec, args, broadcast, load_panel, multiply_add) -> None:
    """The tile's loop, whatever its arithmetic: MR × NV accumulators ``vec`` kept in registers
    over the K loop, then stored to C.

    ``args`` are the pointers and counts ``(A, a_rs, a_ks, nrows, P, p_ks, K, C, c_rs, accumulate)``
    (A, P, C at the tile's first element); per k, ``load_panel(row, v)`` gives vector v of the
    panel's row at ``row``, ``broadcast(address)`` A's value at ``address`` in every lane and
    ``multiply_add(acc, a, panel)`` the updated accumulator.
    """
    (A, a_rs_, a_ks_, nrows_, P, p_ks_, k_, C, c_rs_, acc_) = args
    lanes = vec.count
    last = builder.sub(nrows_, _const(1))
    a_rows, c_rows = [], []
    for i in range(mr):                                      # rows past nrows repeat the last one
        r = builder.select(builder.icmp_signed("<", _const(i), nrows_), _const(i), last)
        a_rows.append(builder.gep(A, [builder.mul(r, a_rs_)]))
        c_rows.append(builder.gep(C, [builder.mul(r, c_rs_)]))

    def c_vec(i, v):
        return builder.bitcast(builder.gep(c_rows[i], [_const(v * lanes)]), vec.as_pointer())

    zero = ir.Constant(vec, None)
    init = [builder.select(acc_, builder.load(c_vec(i, v), align=4), zero)
            for i in range(mr) for v in range(nv)]

    def step(k, acc):                                        # one k: NV panel vectors, MR broadcasts
        row = builder.gep(P, [builder.mul(k, p_ks_)])
        panel = [load_panel(row, v) for v in range(nv)]
        new = []
        for i in range(mr):
            a_ik = broadcast(builder.gep(a_rows[i], [builder.mul(k, a_ks_)]))
            new += [multiply_add(acc[i * nv + v], a_ik, panel[v]) for v in range(nv)]
        return new

    result = emit_loop(builder, k_, vec, init, step)
    for idx, out in enumerate(result):
        builder.store(out, c_vec(idx // nv, idx % nv), align=4)


def emit_loop(builder, count, vec, init: list, step) -> list:
    """``for k in range(count): acc = step(k, acc)`` with the accumulators ``acc`` (vectors
    ``vec``, ``init`` before the loop) kept in registers; returns them after it (``init`` when
    ``count`` is 0). Every tile's loop, whatever it multiplies."""
    entry = builder.block
    loop = builder.append_basic_block("tile.loop")
    done = builder.append_basic_block("tile.done")
    builder.cbranch(builder.icmp_signed(">", count, _const(0)), loop, done)

    builder.position_at_end(loop)
    k = builder.phi(I64)
    acc = [builder.phi(vec) for _ in init]
    new = step(k, acc)
    k_next = builder.add(k, _const(1))
    body_end = builder.block
    k.add_incoming(_const(0), entry)
    k.add_incoming(k_next, body_end)
    for phi, start, update in zip(acc, init, new):
        phi.add_incoming(start, entry)
        phi.add_incoming(update, body_end)
    builder.cbranch(builder.icmp_signed("<", k_next, count), loop, done)

    builder.position_at_end(done)
    result = [builder.phi(vec) for _ in init]
    for out, start, update in zip(result, init, new):
        out.add_incoming(start, entry)
        out.add_incoming(update, body_end)
    return result


def tile_args(context, builder, signature, args) -> tuple:
    """The intrinsic's arguments as :func:`emit_tile` takes them: the arrays' data pointers moved
    to their offsets."""
    (a_, a_off_, a_rs_, a_ks_, nrows_, p_, p_off_, p_ks_, k_, c_, c_off_, c_rs_, acc_) = args
    A = builder.gep(_data(context, builder, signature.args[0], a_), [a_off_])
    P = builder.gep(_data(context, builder, signature.args[5], p_), [p_off_])
    C = builder.gep(_data(context, builder, signature.args[9], c_), [c_off_])
    return (A, a_rs_, a_ks_, nrows_, P, p_ks_, k_, C, c_rs_, acc_)


def tile_signature(a, p, c):
    """``tile_mm``'s signature for arrays a, p, c (offsets, strides and counts are intp)."""
    return types.void(a, types.intp, types.intp, types.intp, types.intp, p, types.intp, types.intp,
                      types.intp, c, types.intp, types.intp, types.boolean)


def make_tile_kernel(shape: TileShape):
    """The intrinsic ``tile_mm(a, a_off, a_rs, a_ks, nrows, p, p_off, p_ks, K, c, c_off, c_rs, accumulate)``.

    Computes rows ``a_off + i·a_rs`` (i < MR, clamped to ``nrows``) of A, k stride ``a_ks``, times
    the K × NR panel at ``p[p_off:]`` whose rows are ``p_ks`` apart (NR, or more when the tile
    computes a slice of a wider panel), into C rows ``c_off + i·c_rs`` (NR contiguous columns each);
    ``accumulate`` adds to C instead of overwriting it. All offsets and strides count elements.
    """
    mr, nv = shape.mr, shape.nv

    @intrinsic
    def tile_mm(typingctx, a, a_off, a_rs, a_ks, nrows, p, p_off, p_ks, k_len, c, c_off, c_rs, accumulate):
        if not (a.dtype == p.dtype == c.dtype and a.dtype in (types.float32, types.float64)):
            return None

        def codegen(context, builder, signature, args):
            scalar = context.get_value_type(signature.args[0].dtype)
            lanes = host_isa().lanes(str(signature.args[0].dtype))
            vec = ir.VectorType(scalar, lanes)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                f"llvm.fma.v{lanes}{'f64' if isinstance(scalar, ir.DoubleType) else 'f32'}")
            undef = ir.Constant(vec, ir.Undefined)
            splat = ir.Constant(ir.VectorType(I32, lanes), [0] * lanes)

            def broadcast(address):
                a_ik = builder.load(address, align=4)
                return builder.shuffle_vector(builder.insert_element(undef, a_ik, ir.Constant(I32, 0)),
                                              undef, splat)

            def load_panel(row, v):
                return builder.load(builder.bitcast(builder.gep(row, [_const(v * lanes)]), vec.as_pointer()),
                                    align=4)

            emit_tile(builder, mr, nv, vec, tile_args(context, builder, signature, args), broadcast,
                      load_panel, lambda acc, a_ik, panel: builder.call(fma, [a_ik, panel, acc]))
            return context.get_dummy_value()

        return tile_signature(a, p, c), codegen

    return tile_mm


# The general products' tile is 2 vectors wide; a recurrent cell's panel holds one vector of units
# per gate: 3 (GRU) or 4 (LSTM) vectors. Each also comes one row high, for a batch of one (a full
# tile would compute the same row MR times).
SHAPE, SHAPE3, SHAPE4 = tile_shape(2), tile_shape(3), tile_shape(4)
tile_mm, tile_mm3, tile_mm4 = (make_tile_kernel(shape) for shape in (SHAPE, SHAPE3, SHAPE4))
row_mm, row_mm3, row_mm4 = (make_tile_kernel(TileShape(1, nv)) for nv in (2, 3, 4))
