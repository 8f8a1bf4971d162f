"""Call plans: a small layer call of a shape seen before, with the same weights, replayed.

An inference call of a small layer, (T, B, H) = (100, 1, 32), spends longer in Python than in its
compiled loop: packing and checking the weights, building a record of some twenty fields per
direction, the absent arrays, the scheduler's plan. Everything in a direction's record but its
per-call arrays depends only on the weights, the call's shape and the thread count, so the first
call of a shape keeps the records :func:`rnnkit.engine.layer.forward_directions` built (a
:class:`CallPlan`) and the next ones replay them:

    gates = x W_ihᵀ           (the same product on the same panels of W_ih)
    gates, states, aux        fresh per call (the caller keeps the tape and its outputs)
    record = kept record with those arrays in their fields, its counters set to 0; launch

A plan serves a call only while the weights are the very arrays it read (identity) and hold the
bits it read (compared with a copy, as :data:`rnnkit.engine.prepack.PACKED` does; NumPy writes in
place without a version counter, so ``p.data[...] = v`` and an optimizer step are only seen by
looking): a changed weight builds the plan anew, so a result never depends on what was kept and
is bit-identical to the unplanned call. Only the plain cells take plans (their ``forward_job``
builds a record and computes nothing), without lengths or masks inside the recurrence, and with
small weights (the size rule of :data:`PACKED`).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.gemm import gemm_packed
from rnnkit.engine.gru import ChoGRUJobs, GRUJobs
from rnnkit.engine.jit import jit
from rnnkit.engine.layer import forward_directions, input_panels
from rnnkit.engine.lstm import LSTMJobs
from rnnkit.engine.prepack import PACKED
from rnnkit.engine.rnn import RNNJobs
from rnnkit.engine.schedule import launch
from rnnkit.kernels.base import Tape, flat

PLAN_ENTRIES = 32            # plans kept at most (the least recently used go first)
BLOCK = 256                  # values compared between two looks for a difference
PLAIN_JOBS = (LSTMJobs, GRUJobs, ChoGRUJobs, RNNJobs)     # their forward_job only builds a record


@jit
def same_bits(kept, live):
    """True when each live[k] holds kept[k]'s bits (1-D unsigned views). A block's differences
    are OR-ed together, a loop LLVM vectorises (over slices, whose indices start at 0: measured
    1.7 µs for the 8,448 values of an LSTM of 32 units, 6 µs indexing the whole arrays), and the
    first block that differs stops it."""
    for k in range(len(kept)):
        a, b = kept[k], live[k]
        for k0 in range(0, a.size, BLOCK):
            x, y = a[k0:k0 + BLOCK], b[k0:k0 + BLOCK]
            d = x[0] ^ y[0]
            for j in range(1, x.size):
                d |= x[j] ^ y[j]
            if d != 0:
                return False
    return True


def weight_arrays(ws: list) -> tuple:
    """Every array of the directions' Weights records, in field order."""
    return tuple(a for w in ws for a in vars(w).values() if a is not None)


def bits(a: np.ndarray) -> np.ndarray:
    """A C-ordered array's bits as a 1-D unsigned view of its width (compared exactly, NaN included)."""
    return a.reshape(-1).view(np.uint32 if a.itemsize == 4 else np.uint64)


class Direction(NamedTuple):
    """One direction's kept record and where a call's own arrays go in it."""

    record: tuple                # the record forward_directions built (its per-call arrays replaced)
    slots: tuple                 # ((field, k), ...): field ``field`` takes the call's array k
    make: object                 # the record type's constructor from a list of its values
    input_panels: np.ndarray     # W_ihᵀ as the input product's panels
    width: int                   # G·H: the gates' width


class CallPlan(NamedTuple):
    kernel: object               # the reference kernel the records were built for
    weights: tuple               # the arrays the call read (identity)
    kept: tuple                  # bits of their copies, as at the plan's making
    live: tuple                  # bits of the weights themselves (views: they read what is there now)
    directions: tuple            # (Direction, ...)
    sizes: tuple                 # the sizes of the state's parts (h, or h and c)


def fresh_arrays(gates: np.ndarray, states: tuple, aux) -> tuple:
    """A call's own arrays, in the order a Direction's slots count them."""
    parts = () if aux is None else aux if isinstance(aux, tuple) else vars(aux).values()     # record or dataclass
    return (gates, *states, *(a for a in parts if isinstance(a, np.ndarray)))


def slots_of(record: tuple, fresh: tuple, others: tuple) -> tuple | None:
    """The fields of ``record`` that are the call's arrays ``fresh``; None when another field
    shares memory with them or with ``others`` (the input): the record cannot then be replayed."""
    slots, own = [], fresh + others
    for i, v in enumerate(record):
        k = next((k for k, f in enumerate(fresh) if v is f), None)
        if k is not None:
            slots.append((i, k))
        elif isinstance(v, np.ndarray) and v is not record.counters and any(np.shares_memory(v, f) for f in own):
            return None
    return tuple(slots)


def plain(jobs, mask, masks) -> bool:
    """Plain cells (their forward_job computes nothing from the input), no lengths, no masks."""
    return type(jobs) in PLAIN_JOBS and mask is None and not (masks and any(m is not None for m in masks))


def small(arrays: tuple, dtype) -> bool:
    """Weights a plan may keep: C-ordered, of the call's dtype, each small (:data:`PACKED`'s rule)."""
    return all(a.flags.c_contiguous and a.dtype == dtype and PACKED.keeps(a) for a in arrays)


class PlanCache:
    """Plans by call: a plan in use is taken out, so two threads never share one."""

    def __init__(self, entries: int = PLAN_ENTRIES) -> None:
        self.entries = entries
        self._plans: OrderedDict[tuple, CallPlan] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: tuple) -> CallPlan | None:
        with self._lock:
            return self._plans.pop(key, None)

    def put(self, key: tuple, plan: CallPlan) -> None:
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self.entries:
                self._plans.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()


PLANS = PlanCache()


def serves(plan: CallPlan, kernel, arrays: tuple) -> bool:
    """The plan was made for this kernel and these very weights, which still hold its bits."""
    return (plan.kernel is kernel and len(arrays) == len(plan.weights)
            and all(a is b for a, b in zip(arrays, plan.weights)) and same_bits(plan.kept, plan.live))


def forward(jobs, ws: list, xs: list, states0: list, mask, workers: int, keep_tape: bool = True,
            masks: list | None = None) -> list[Tape]:
    """:func:`~rnnkit.engine.layer.forward_directions`, replayed from a plan where one applies."""
    if not plain(jobs, mask, masks):
        return forward_directions(jobs, ws, xs, states0, mask, workers, keep_tape, masks)
    x0, arrays = xs[0], weight_arrays(ws)
    key = (id(jobs.kernel), id(arrays[0]), len(ws), x0.shape, x0.dtype.str, keep_tape, workers)
    plan = PLANS.take(key)
    if plan is not None and serves(plan, jobs.kernel, arrays):
        tapes = replay(jobs, plan, xs, states0, workers)
    elif small(arrays, x0.dtype):
        tapes, plan = make(jobs, ws, xs, states0, workers, keep_tape, arrays)
    else:
        return forward_directions(jobs, ws, xs, states0, mask, workers, keep_tape, masks)
    if plan is not None:
        PLANS.put(key, plan)
    return tapes


def make(jobs, ws: list, xs: list, states0: list, workers: int, keep_tape: bool, arrays: tuple):
    """The call through forward_directions, keeping its records: (tapes, plan or None)."""
    records = []

    def start(built, threads):
        records.extend(built)
        launch(built, threads)

    tapes = forward_directions(jobs, ws, xs, states0, None, workers, keep_tape, None, start=start)
    directions = []
    for w, tape, record in zip(ws, tapes, records):
        slots = slots_of(record, fresh_arrays(tape.gates, tape.states, tape.aux), (tape.x,))
        if slots is None:
            return tapes, None
        directions.append(Direction(record, slots, type(record)._make,
                                    PACKED.get(w.weight_ih, "input", input_panels), w.weight_ih.shape[0]))
    kept = tuple(bits(a.copy()) for a in arrays)
    return tapes, CallPlan(jobs.kernel, arrays, kept, tuple(bits(a) for a in arrays), tuple(directions),
                           tuple(jobs.kernel.state_sizes()))


def replay(jobs, plan: CallPlan, xs: list, states0: list, workers: int) -> list[Tape]:
    """The plan's records on this call's input, states and fresh arrays (what forward_directions
    would compute, in the same order)."""
    records, tapes = [], []
    for direction, x, state0 in zip(plan.directions, xs, states0):
        x = np.ascontiguousarray(x)
        T, B, _ = x.shape
        gates = workspace.empty((T, B, direction.width), x.dtype)                   # (T, B, G·H)
        gemm_packed(flat(x), direction.input_panels, flat(gates))
        states = tuple(workspace.empty((T + 1, B, n), x.dtype) for n in plan.sizes)
        for s, s0 in zip(states, state0):
            s[0] = s0
        aux = jobs.new_aux(T, B, x.dtype)
        values = list(direction.record)
        fresh = fresh_arrays(gates, states, aux)
        for i, k in direction.slots:
            values[i] = fresh[k]
        record = direction.make(values)
        record.counters.fill(0)
        records.append(record)
        tapes.append(Tape(x, gates, states, aux, None))
    launch(tuple(records), workers)
    return tapes


@functools.lru_cache(maxsize=PLAN_ENTRIES)
def zero_state(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A read-only zero state of ``shape``: the initial state of a call given none, one constant."""
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


def take_stack(kernel, layers: list[tuple], x: np.ndarray, keep_tape: bool) -> list[tuple] | None:
    """[(key, plan, workers)] of every layer of a stack of one direction per layer (``layers[k]``:
    the arrays of layer k's Weights record, in its fields' order), taken out of :data:`PLANS`;
    None (and every plan put back) unless each layer has one that serves it."""
    from rnnkit.engine import workers_for
    T, B, _ = x.shape
    taken = []
    for arrays in layers:
        w_hh = arrays[1]
        workers = workers_for(T, B, w_hh.shape[0], w_hh.shape[1], 1)
        key = (id(kernel), id(arrays[0]), 1, (T, B, arrays[0].shape[1]), x.dtype.str, keep_tape, workers)
        plan = PLANS.take(key)
        if plan is not None:
            taken.append((key, plan, workers))
        if plan is None or not serves(plan, kernel, arrays):
            for key, plan, _ in taken:
                PLANS.put(key, plan)
            return None
    return taken


def stack_forward(kernel, layers: list[tuple], x: np.ndarray, keep_tape: bool):
    """A stack of one direction per layer from zero states, every layer replayed from its plan
    (:func:`take_stack`): (output (T, B, H_out), the layers' tapes), or None with nothing computed."""
    from rnnkit.kinds import jobs_for
    taken = take_stack(kernel, layers, x, keep_tape)
    if taken is None:
        return None
    jobs, tapes, layer_in = jobs_for(kernel), [], x
    B = x.shape[1]
    for key, plan, workers in taken:
        state0 = tuple(zero_state((B, n), x.dtype) for n in plan.sizes)
        tape, = replay(jobs, plan, [layer_in], [state0], workers)
        PLANS.put(key, plan)
        tapes.append(tape)
        layer_in = tape.states[0][1:].copy()            # the layer's output (scan.scan_output)
    return layer_in, tapes
