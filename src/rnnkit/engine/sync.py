"""Work sharing between the engine's workers: atomic counters, and chunks claimed step by step.

A recurrence cannot be split over time, only within a step: each step's work is cut into chunks
(panels of hidden units) that the workers *claim* from a counter and then *mark done*; a worker
that has no chunk left waits until every chunk of the step is done, because the next step reads
all of them. Each worker first claims from its own share of the chunks (so its share of the weights
stays in its own cache) and then helps with the others'. Nothing ever waits for a worker that
has not started: if the threading layer runs the workers one after the other, the first simply does
every chunk itself, so the scheme cannot deadlock whatever the scheduling.

Each slot (one phase of one step) has one claim counter per worker share and one done counter, in
an int64 array of ``counter_size(slots, workers)`` zeros; each counter sits on its own cache line.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.engine.jit import jit

LINE = 8                    # int64 counters per cache line: one counter per line


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value atomically (sequentially consistent); returns the old value."""
    if not isinstance(array, types.Array) or array.dtype != types.int64:
        return None
    sig = types.int64(array, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        a, i, v = args
        ptr = builder.gep(context.make_array(signature.args[0])(context, builder, a).data, [i])
        return builder.atomic_rmw("add", ptr, v, "seq_cst")
    return sig, codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """array[index] read with acquire ordering: what another worker wrote before its release is seen."""
    if not isinstance(array, types.Array) or array.dtype != types.int64:
        return None
    sig = types.int64(array, types.intp)

    def codegen(context, builder, signature, args):
        a, i = args
        ptr = builder.gep(context.make_array(signature.args[0])(context, builder, a).data, [i])
        return builder.load_atomic(ptr, "acquire", 8)
    return sig, codegen


@intrinsic
def spin_pause(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``): lets the sibling hyperthread run, saves power."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


def counter_size(slots: int, workers: int) -> int:
    """Entries of the counter array for ``slots`` (step phases) shared by ``workers``."""
    return slots * (workers + 1) * LINE


@jit
def claim(counters, slot, worker, workers, chunks):
    """The next chunk of ``slot`` for ``worker``: from its own share first, then the others'; −1 if none."""
    base = slot * (workers + 1) * LINE
    for j in range(workers):
        side = (worker + j) % workers
        first, last = side * chunks // workers, (side + 1) * chunks // workers
        if atomic_load(counters, base + side * LINE) < last - first:      # skip exhausted shares
            k = atomic_add(counters, base + side * LINE, 1)
            if k < last - first:
                return first + k
    return -1


@jit
def finish(counters, slot, workers):
    """Mark one chunk of ``slot`` done (after its results are written)."""
    atomic_add(counters, (slot * (workers + 1) + workers) * LINE, 1)


@jit
def wait_all(counters, slot, workers, chunks):
    """Return once every chunk of ``slot`` is done."""
    while atomic_load(counters, (slot * (workers + 1) + workers) * LINE) < chunks:
        spin_pause()
