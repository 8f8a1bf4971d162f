"""Short vectors in compiled code, so that a cell's element-wise step is written once, with its
equations, and runs on whole SIMD registers.

``vload(array, offset, count)`` reads ``count`` ≤ L consecutive elements as one :class:`VecType`
value of L lanes, one vector register's worth (16 float32 or 8 float64 with AVX-512),
``vstore(array, offset, v, count)`` writes them back (masked, so a panel's last, partial group of
units needs no separate code); +, −, ×, ÷, unary −, ``min`` and ``max`` act lane by
lane, and a Python scalar on either side of an operator is broadcast. The gate functions of
:mod:`rnnkit.engine.activations` accept these values as well as scalars, so

    c = f * c_prev + i * g

means the same thing on one unit or on a register's worth of units. Loops over a panel's units do
not need LLVM's loop vectoriser (which gives up when a loop touches more than a few arrays that
might overlap, as a cell step does); the code says which values travel together.

Every operation is rounded as written, with no fast-math flags (:mod:`rnnkit.engine.jit` says
why): ``fma(a, b, c)`` is the one fused multiply-add, and ``vsum`` adds the lanes in one fixed
order, so a value does not depend on how LLVM optimised the function that computes it.
``fixed_load`` and ``fixed_zero`` give vectors of a fixed 32 bytes whatever the CPU, for sums (the
streaming step's dot products) whose lanes ``vsum`` adds at the end: with register-wide vectors
the products each lane sums, and so the result, would change with the CPU.
"""

from __future__ import annotations

import operator

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from rnnkit.engine.isa import host_isa


class VecType(types.Type):
    """``width`` lanes of a float type, held as one LLVM vector (one or more SIMD registers)."""

    def __init__(self, dtype: types.Float, width: int) -> None:
        self.dtype, self.width = dtype, width
        super().__init__(name=f"Vec[{dtype} x {width}]")


@register_model(VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        scalar = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(scalar, fe_type.width))


def vector_pointer(context, builder, array_type, array, offset, vec_type):
    """A pointer to ``array[offset]`` as one of ``vec_type`` (LLVM codegen)."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [offset]), vec_type.as_pointer())


def lanes_below(builder, count, width: int):
    """The i1 mask of the lanes k < count (count an int64 value)."""
    lanes = ir.Constant(ir.VectorType(ir.IntType(64), width), list(range(width)))
    bound = _splat(builder, count, ir.VectorType(ir.IntType(64), width))
    return builder.icmp_signed("<", lanes, bound)


def _masked(builder, name: str, vec_type, pointer_type):
    elem = "f64" if isinstance(vec_type.element, ir.DoubleType) else "f32"
    suffix = f"v{vec_type.count}{elem}.p0"
    mask_type = ir.VectorType(ir.IntType(1), vec_type.count)
    if name == "load":
        fn_type = ir.FunctionType(vec_type, [pointer_type, ir.IntType(32), mask_type, vec_type])
    else:
        fn_type = ir.FunctionType(ir.VoidType(), [vec_type, pointer_type, ir.IntType(32), mask_type])
    return cgutils.get_or_insert_function(builder.module, fn_type, f"llvm.masked.{name}.{suffix}")


# The width of the vectors that hold a sum whose lanes are added together at the end
# (``fixed_load``): fixed, so that which products each lane sums — and so the sum — does not depend
# on the CPU. AVX2's register: the x86-64 CPUs of the last decade have it (AVX-512 runs these
# vectors in the lower half of its registers, SSE in two registers each).
FIXED_BYTES = 32


def lanes(dtype) -> int:
    """L: the lanes of one vector register for ``dtype``."""
    return host_isa().lanes(dtype)


def lanes_of(array):
    """L for ``array``'s elements, inside compiled code (a compile-time constant)."""
    return lanes(array.dtype)


@overload(lanes_of)
def _lanes_of(array):
    width = lanes(array.dtype)
    return lambda array: width


def fixed_lanes(dtype) -> int:
    """W: the lanes of a ``FIXED_BYTES`` vector for ``dtype``, the same on every CPU."""
    return FIXED_BYTES // np.dtype(str(dtype)).itemsize


def fixed_lanes_of(array):
    """W for ``array``'s elements, inside compiled code (a compile-time constant, so that loads
    of W lanes need no mask)."""
    return fixed_lanes(array.dtype)


@overload(fixed_lanes_of)
def _fixed_lanes_of(array):
    width = fixed_lanes(array.dtype)
    return lambda array: width


def _make_load(width_of):
    @intrinsic
    def load(typingctx, array, offset, count):
        """array[offset : offset + count] as the first ``count`` lanes of a vector (the rest 0;
        nothing past ``count`` is read)."""
        if not isinstance(array, types.Array) or array.dtype not in (types.float32, types.float64):
            return None
        vt = VecType(array.dtype, width_of(array.dtype))
        sig = vt(array, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            vty = context.get_value_type(vt)
            ptr = vector_pointer(context, builder, signature.args[0], args[0], args[1], vty)
            mask = lanes_below(builder, args[2], vt.width)
            fn = _masked(builder, "load", vty, ptr.type)
            return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), 1), mask, ir.Constant(vty, None)])
        return sig, codegen
    return load


def _make_zero(width_of):
    @intrinsic
    def zero(typingctx, array):
        """A vector of zeros of ``array``'s element type."""
        if not isinstance(array, types.Array) or array.dtype not in (types.float32, types.float64):
            return None
        vt = VecType(array.dtype, width_of(array.dtype))

        def codegen(context, builder, signature, args):
            return ir.Constant(context.get_value_type(vt), None)
        return vt(array), codegen
    return zero


vload, fixed_load = _make_load(lanes), _make_load(fixed_lanes)      # count ≤ L, count ≤ W
vzero, fixed_zero = _make_zero(lanes), _make_zero(fixed_lanes)


@intrinsic
def vstore(typingctx, array, offset, value, count):
    """array[offset : offset + count] = the first ``count`` lanes of ``value``."""
    if not isinstance(value, VecType) or array.dtype != value.dtype:
        return None
    sig = types.void(array, types.intp, value, types.intp)

    def codegen(context, builder, signature, args):
        ptr = vector_pointer(context, builder, signature.args[0], args[0], args[1], args[2].type)
        mask = lanes_below(builder, args[3], signature.args[2].width)
        fn = _masked(builder, "store", args[2].type, ptr.type)
        builder.call(fn, [args[2], ptr, ir.Constant(ir.IntType(32), 1), mask])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def lane(typingctx, vec, index):
    """vec[index] as a scalar."""
    if not isinstance(vec, VecType):
        return None

    def codegen(context, builder, signature, args):
        return builder.extract_element(args[0], args[1])
    return vec.dtype(vec, types.intp), codegen


@intrinsic
def with_lane(typingctx, vec, index, value):
    """A copy of vec with lane ``index`` replaced by ``value``."""
    if not isinstance(vec, VecType):
        return None

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        return builder.insert_element(args[0], v, args[1])
    return vec(vec, types.intp, value), codegen


@intrinsic
def vsum(typingctx, vec):
    """The sum of vec's lanes, pairwise in a fixed order: the upper half of the lanes added to the
    lower half until one lane is left ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)) for 8."""
    if not isinstance(vec, VecType):
        return None

    def codegen(context, builder, signature, args):
        v, width = args[0], signature.args[0].width
        while width > 1:
            width //= 2
            lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), width), list(range(width))))
            hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), width),
                                                          list(range(width, 2 * width))))
            v = builder.fadd(lo, hi)
        return builder.extract_element(v, ir.Constant(ir.IntType(32), 0))
    return vec.dtype(vec), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a · b + c rounded once (``llvm.fma``): for vectors (scalars broadcast) or three floats of one
    type. The only multiply-add the engine's element-wise code fuses, so each is fused everywhere."""
    vt = _vec_of(a, b, c)
    if vt is None:
        if not (a == b == c and isinstance(a, types.Float)):
            return None

        def codegen(context, builder, signature, args):
            ty = args[0].type
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]),
                                                f"llvm.fma.{'f64' if isinstance(ty, ir.DoubleType) else 'f32'}")
            return builder.call(fn, list(args))
        return a(a, b, c), codegen

    def vcodegen(context, builder, signature, args):
        ops = [_operand(context, builder, v, t, vt) for v, t in zip(args, signature.args)]
        vty = ops[0].type
        name = f"llvm.fma.v{vty.count}{'f64' if isinstance(vty.element, ir.DoubleType) else 'f32'}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
        return builder.call(fn, ops)
    return vt(a, b, c), vcodegen


@intrinsic
def positive(typingctx, x):
    """1 in the lanes where x > 0, 0 elsewhere (the derivative of relu)."""
    if not isinstance(x, VecType):
        return None

    def codegen(context, builder, signature, args):
        vty = args[0].type
        gt = builder.fcmp_ordered(">", args[0], ir.Constant(vty, None))
        return builder.select(gt, ir.Constant(vty, [1.0] * vty.count), ir.Constant(vty, None))
    return x(x), codegen


def _splat(builder, value, vec_type):
    undef = ir.Constant(vec_type, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), vec_type.count),
                                                          [0] * vec_type.count))


def _operand(context, builder, value, value_type, vt):
    """A vector operand: the vector itself, or a scalar converted to the lane type and broadcast."""
    if isinstance(value_type, VecType):
        return value
    lane = context.cast(builder, value, value_type, vt.dtype)
    return _splat(builder, lane, context.get_value_type(vt))


def _vec_of(*operand_types) -> VecType | None:
    vecs = [t for t in operand_types if isinstance(t, VecType)]
    if not vecs or any(v != vecs[0] for v in vecs):
        return None
    if not all(isinstance(t, (VecType, types.Number)) for t in operand_types):
        return None
    return vecs[0]


def _make_binary(instruction: str):
    @intrinsic
    def binary(typingctx, x, y):
        vt = _vec_of(x, y)
        if vt is None:
            return None

        def codegen(context, builder, signature, args):
            a = _operand(context, builder, args[0], signature.args[0], vt)
            b = _operand(context, builder, args[1], signature.args[1], vt)
            return getattr(builder, instruction)(a, b)
        return vt(x, y), codegen
    return binary


def _make_select(predicate: str):
    """Python's min / max lane by lane: y where ``y predicate x``, else x — so a NaN in x stays."""
    @intrinsic
    def select(typingctx, x, y):
        vt = _vec_of(x, y)
        if vt is None:
            return None

        def codegen(context, builder, signature, args):
            a = _operand(context, builder, args[0], signature.args[0], vt)
            b = _operand(context, builder, args[1], signature.args[1], vt)
            return builder.select(builder.fcmp_ordered(predicate, b, a), b, a)
        return vt(x, y), codegen
    return select


_add, _sub, _mul, _div = (_make_binary(name) for name in ("fadd", "fsub", "fmul", "fdiv"))
_min, _max = _make_select("<"), _make_select(">")


@intrinsic
def _neg(typingctx, x):
    if not isinstance(x, VecType):
        return None

    def codegen(context, builder, signature, args):
        return builder.fneg(args[0])
    return x(x), codegen


def _register(python_op, implementation) -> None:
    @overload(python_op)
    def _impl(x, y):
        if _vec_of(x, y) is not None:
            return lambda x, y: implementation(x, y)
        return None


for _op, _impl_fn in ((operator.add, _add), (operator.sub, _sub), (operator.mul, _mul),
                      (operator.truediv, _div), (min, _min), (max, _max)):
    _register(_op, _impl_fn)
for _op, _impl_fn in ((operator.iadd, _add), (operator.isub, _sub), (operator.imul, _mul)):
    _register(_op, _impl_fn)


@overload(operator.neg)
def _neg_impl(x):
    if isinstance(x, VecType):
        return lambda x: _neg(x)
    return None
