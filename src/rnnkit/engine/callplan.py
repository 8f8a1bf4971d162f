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

import operator
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from rnnkit.engine import mixed, workers_for, workspace
from rnnkit.engine.gemm import gemm_packed
from rnnkit.engine.gru import ChoGRUJobs, GRUJobs
from rnnkit.engine.jit import jit
from rnnkit.engine.layer import forward_directions, input_panels
from rnnkit.engine.lstm import LSTMJobs
from rnnkit.engine.prepack import PACKED
from rnnkit.engine.rnn import RNNJobs
from rnnkit.engine.schedule import launch, num_threads
from rnnkit.kernels.base import Tape, flat
from rnnkit.kinds import jobs_for

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


class Kept(NamedTuple):
    """A record kept for replaying: its values but the call's arrays (None there, so that a plan
    holds on to no call's arrays), and where those go."""

    values: tuple                # the record's fields, None at those of slots and own
    slots: tuple                 # ((field, k), ...): field ``field`` takes the call's array k
    own: tuple                   # ((field, shape, dtype), ...): the record's own work arrays, new per call
    make: object                 # the record type's constructor from a list of its values


def keep(record: tuple, fresh: tuple, others: tuple, own: tuple = ()) -> Kept | None:
    """``record`` kept, its fields that are the call's arrays ``fresh`` found by identity; None
    when another field shares memory with them or with ``others`` (the input), as then the record
    cannot be replayed. ``own``: the names of the fields to make anew (:func:`rebuild`)."""
    own = tuple((i, record[i].shape, record[i].dtype) for i in map(record._fields.index, own))
    values, slots, call = list(record), [], fresh + others
    for i, v in enumerate(record):
        k = next((k for k, f in enumerate(fresh) if v is f), None)
        if k is not None:
            slots.append((i, k))
            values[i] = None
        elif (isinstance(v, np.ndarray) and v is not record.counters and i not in {j for j, *_ in own}
              and any(np.shares_memory(v, f) for f in call)):
            return None
    for i, *_ in own:
        values[i] = None
    return Kept(tuple(values), tuple(slots), own, type(record)._make)


def rebuild(kept: Kept, fresh: tuple) -> tuple:
    """The kept record with this call's arrays in their fields, new work arrays, counters at 0."""
    values = list(kept.values)
    for i, k in kept.slots:
        values[i] = fresh[k]
    for i, shape, dtype in kept.own:
        values[i] = workspace.empty(shape, dtype)
    record = kept.make(values)
    record.counters.fill(0)
    return record


def tape_arrays(tape: Tape) -> tuple:
    """A tape's arrays (gates, states, aux), in the order a Kept record's slots count them."""
    aux = tape.aux
    parts = () if aux is None else aux if isinstance(aux, tuple) else vars(aux).values()     # record or dataclass
    return (tape.gates, *tape.states, *(a for a in parts if isinstance(a, np.ndarray)))


class Direction(NamedTuple):
    """One direction's forward record, kept, its input product and the shapes of its arrays."""

    kept: Kept
    input_panels: np.ndarray     # W_ihᵀ as the input product's panels
    gates: tuple                 # (T, B, G·H)
    states: tuple                # ((T+1, B, n), ...) each part of the state
    empty: object                # what makes them (workspace.allocator)


class CallPlan(NamedTuple):
    """What a layer call of one shape keeps, valid while its weights hold the bits of ``kept``."""

    kernel: object               # the reference kernel the records were built for
    weights: tuple               # the arrays the call read (identity)
    kept: tuple                  # bits of their copies, as at the plan's making
    live: tuple                  # bits of the weights themselves (views: they read what is there now)
    directions: tuple            # (Direction, ...) forward, or (Kept, ...) backward
    sizes: tuple                 # the sizes of the state's parts (h, or h and c)


def new_plan(kernel, arrays: tuple, directions: list) -> CallPlan:
    """A plan of these records, keeping a copy of the weights' bits."""
    return CallPlan(kernel, arrays, tuple(bits(a.copy()) for a in arrays), tuple(bits(a) for a in arrays),
                    tuple(directions), tuple(kernel.state_sizes()))


def plain(jobs, dtype, mask=None, masks=None) -> bool:
    """Plain cells (their forward_job computes nothing from the input), no lengths, no masks, the
    products in the layer's own precision (not under autocast or quantize_dynamic: :mod:`.mixed`)."""
    return (type(jobs) in PLAIN_JOBS and mask is None and not (masks and any(m is not None for m in masks))
            and mixed.precision_of(dtype) is None)


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
            and all(map(operator.is_, arrays, plan.weights)) and same_bits(plan.kept, plan.live))


def forward(jobs, ws: list, xs: list, states0: list, mask, workers: int, keep_tape: bool = True,
            masks: list | None = None) -> list[Tape]:
    """:func:`~rnnkit.engine.layer.forward_directions`, replayed from a plan where one applies."""
    if not plain(jobs, xs[0].dtype, mask, masks):
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
        kept = keep(record, tape_arrays(tape), (tape.x,))
        if kept is None:
            return tapes, None
        directions.append(Direction(kept, PACKED.get(w.weight_ih, "input", input_panels), tape.gates.shape,
                                    tuple(s.shape for s in tape.states),
                                    workspace.allocator(tape.gates.shape, tape.gates.dtype)))
    return tapes, new_plan(jobs.kernel, arrays, directions)


def replay(jobs, plan: CallPlan, xs: list, states0: list, workers: int) -> list[Tape]:
    """The plan's records on this call's input, states and fresh arrays (what forward_directions
    would compute, in the same order)."""
    records, tapes = [], []
    for direction, x, state0 in zip(plan.directions, xs, states0):
        x = np.ascontiguousarray(x)
        T, B, _ = x.shape
        empty, dtype = direction.empty, x.dtype
        gates = empty(direction.gates, dtype)                                        # (T, B, G·H)
        gemm_packed(flat(x), direction.input_panels, flat(gates))
        states = tuple(empty(shape, dtype) for shape in direction.states)           # (T+1, B, n) each
        for s, s0 in zip(states, state0):
            s[0] = s0
        tape = Tape(x, gates, states, jobs.new_aux(T, B, dtype), None)
        records.append(rebuild(direction.kept, tape_arrays(tape)))
        tapes.append(tape)
    launch(tuple(records), workers)
    return tapes


def layer_workers(arrays: tuple, x: np.ndarray) -> int:
    """The threads of one direction's call over x (T, B, ·) (:func:`rnnkit.engine.workers_for`)."""
    T, B, _ = x.shape
    return workers_for(T, B, arrays[1].shape[0], arrays[1].shape[1], 1)


class StackPlan(NamedTuple):
    """A stack's layers' plans, kept together for its plain calls (:func:`stack_forward`)."""

    layers: tuple                # ((layer key, CallPlan, workers), ...)
    jobs: object                 # the cell's job builder
    state0: tuple                # each layer's initial state: zeros


def take_layers(kernel, layers: list[tuple], x: np.ndarray, keep_tape: bool) -> StackPlan | None:
    """The plans of every layer of a stack of one direction per layer, taken out of :data:`PLANS`
    (``layers[k]``: the arrays of layer k's Weights record, in its fields' order); None, every
    plan put back, unless each layer has one."""
    T, B, _ = x.shape
    taken = []
    for arrays in layers:
        workers = layer_workers(arrays, x)
        key = (id(kernel), id(arrays[0]), 1, (T, B, arrays[0].shape[1]), x.dtype.str, keep_tape, workers)
        plan = PLANS.take(key)
        if plan is None:
            put_layers(taken)
            return None
        taken.append((key, plan, workers))
    state0 = tuple(tuple(np.zeros((B, n), x.dtype) for n in plan.sizes) for _, plan, _ in taken)
    return StackPlan(tuple(taken), jobs_for(kernel), state0)


def put_layers(taken) -> None:
    """Each layer's plan back under its own key (where :func:`forward` finds it)."""
    for key, plan, _ in taken:
        PLANS.put(key, plan)


def serve_stack(kernel, stack: StackPlan, layers: list[tuple], x: np.ndarray) -> bool:
    """Every layer's plan serves its weights, on the threads the call would have."""
    if len(stack.layers) != len(layers):
        return False
    for (_, plan, workers), arrays in zip(stack.layers, layers):
        if not (serves(plan, kernel, arrays) and workers == layer_workers(arrays, x)):
            return False
    return True


def stack_forward(kernel, layers: list[tuple], x: np.ndarray, keep_tape: bool):
    """A stack of one direction per layer from zero states, every layer replayed from its plan:
    (output (T, B, H_out), the layers' tapes), or None with nothing computed. The layers' plans
    are kept together, under the stack's own key, from the first call that finds them all."""
    if mixed.precision_of(x.dtype) is not None:
        return None
    key = ("stack", id(kernel), id(layers[0][0]), x.shape, x.dtype.str, keep_tape, num_threads())
    stack = PLANS.take(key) or take_layers(kernel, layers, x, keep_tape)
    if stack is None:
        return None
    if not serve_stack(kernel, stack, layers, x):
        put_layers(stack.layers)            # changed weights: the general path makes them anew
        return None
    tapes, layer_in = [], x
    for (_, plan, workers), state0 in zip(stack.layers, stack.state0):
        tape, = replay(stack.jobs, plan, [layer_in], [state0], workers)
        tapes.append(tape)
        layer_in = tape.states[0][1:].copy()            # the layer's output (scan.scan_output)
    PLANS.put(key, stack)
    return layer_in, tapes
