"""The step loop every recurrence of the engine shares, and how it is spread over the cores.

A *job* is one recurrence over a whole sequence (one direction of one layer, forward or backward),
held in a small record (a ``NamedTuple`` of arrays) whose type says which cell it is. Every record
ends with the fields of a :class:`Plan` (``@job_record`` appends them; :func:`plan` fills them):
``steps``, ``chunks``, ``counters`` and ``scratch`` (a private work area for each worker,
``scratch[worker]``). Its work is a sequence of ``steps``, each made of ``len(job.chunks)`` phases;
phase ``ph`` of a step is cut into ``job.chunks[ph]`` independent chunks (panels of hidden units).
:func:`run` walks the steps and phases, claiming chunks and calling :func:`task` on each
(:mod:`rnnkit.engine.sync`); every engine module names the work function of each of its record
types once, ``register_tasks({RecordType: work, ...})``, so this loop is written once and compiled
for each record type.

:func:`launch` runs jobs on ``workers`` threads of Numba's threading layer (OpenMP where the
system has it, whose threads spin for a while after a parallel region, so that the next launch of
a training step finds them awake): one job is shared by all of them, chunk by chunk; two
independent jobs (the two directions of a bidirectional layer) get a thread each. Work is claimed,
never assigned, so a thread that starts late only finds less left to do, and nothing waits for a
thread that never starts.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import prange
from numba.extending import overload

from rnnkit.engine import available_cpus, threads_from_environment
from rnnkit.engine.jit import jit
from rnnkit.engine.sync import claim, counter_size, finish, wait_all
from rnnkit.ranges import THREAD_COUNT

SCRATCH_COLUMNS = 64        # the widest panel a task computes into its scratch (4 gates × 16)


class Plan(NamedTuple):
    """How a job's work is cut and shared: the fields that end every job record (:func:`job_record`)."""

    steps: int                  # done one after the other
    chunks: np.ndarray          # (phases,) int64: the independent chunks of each phase of a step
    counters: np.ndarray        # int64: the claim and done counters of every phase of every step (sync)
    scratch: np.ndarray         # (workers, ...) each worker's own work area, scratch[worker]


def job_record(fields: type | None = None, *, extra: tuple[type, ...] = ()):
    """Class decorator: the ``NamedTuple`` of ``fields``' annotated fields, then those of each
    record type in ``extra`` (a set of fields several records share, such as
    :class:`rnnkit.engine.mixed.LowOperands`), then :class:`Plan`'s.

    The record stays flat — Numba's parallel launch does not unpack a record nested in a record —
    while shared fields are declared once and filled from one value: ``Record(..., *extra, *plan)``.
    ``@job_record`` or ``@job_record(extra=(...,))``.
    """
    def make(fields: type) -> type:
        shared = [item for e in extra for item in e.__annotations__.items()]
        record = NamedTuple(fields.__name__, [*fields.__annotations__.items(), *shared, *Plan.__annotations__.items()])
        record.__module__, record.__qualname__ = fields.__module__, fields.__qualname__     # pickled by name
        record.__doc__ = fields.__doc__ or record.__doc__
        return record
    return make if fields is None else make(fields)


def plan(steps: int, chunks: list, workers: int, scratch: np.ndarray) -> Plan:
    """``steps`` steps of ``len(chunks)`` phases shared by ``workers``, each with its ``scratch[worker]``."""
    return Plan(steps, np.array(chunks), counters_for(steps, len(chunks), workers), scratch)


def task(job, step, phase, chunk, worker):
    """Do chunk ``chunk`` of phase ``phase`` of step ``step`` (the work registered for the job's type)."""
    raise NotImplementedError("task is only defined inside compiled code, per job type")


_TASKS: dict[type, object] = {}         # job record type → its compiled work function


def register_tasks(tasks: dict) -> None:
    """``{RecordType: work, ...}``: inside compiled code, ``task(job, step, phase, chunk, worker)``
    on a job of that type is ``work(job, step, phase, chunk, worker)``."""
    _TASKS.update(tasks)


@overload(task)
def _task(job, step, phase, chunk, worker):
    work = _TASKS.get(getattr(job, "instance_class", None))
    if work is None:
        return None
    return lambda job, step, phase, chunk, worker: work(job, step, phase, chunk, worker)


@jit(refcount=False)
def run(job, worker, workers):
    """Every step of ``job``, sharing each phase's chunks with ``workers`` − 1 other workers."""
    phases = job.chunks.shape[0]
    for step in range(job.steps):
        for phase in range(phases):
            slot, n = step * phases + phase, job.chunks[phase]
            k = claim(job.counters, slot, worker, workers, n)
            while k >= 0:
                task(job, step, phase, k, worker)
                finish(job.counters, slot, workers)
                k = claim(job.counters, slot, worker, workers, n)
            wait_all(job.counters, slot, workers, n)


def counters_for(steps: int, phases: int, workers: int) -> np.ndarray:
    return np.zeros(counter_size(steps * phases, workers), np.int64)


def recurrence_scratch(workers: int, batch: int, dtype) -> np.ndarray:
    """(workers, B, SCRATCH_COLUMNS): each worker's partial sums of a panel (a tile never writes
    rows past the ones it is given)."""
    return np.empty((workers, batch, SCRATCH_COLUMNS), dtype)


def _threads_from_environment() -> int:
    return threads_from_environment() or len(available_cpus())


_threads = _threads_from_environment()          # read once, at import


def num_threads() -> int:
    """Threads the engine spreads its work over: ``set_num_threads``, else ``RNNKIT_NUM_THREADS``,
    else ``OMP_NUM_THREADS`` (as the process started), else the CPUs this process may run on."""
    return _threads


def set_num_threads(count: int | None) -> None:
    """Use ``count`` threads from now on (None: back to the environment's choice)."""
    global _threads
    count = THREAD_COUNT.check("count", count)
    _threads = _threads_from_environment() if count is None else count


def region_threads(size: int = 0, minimum: int = 0) -> int:
    """Threads a parallel region over ``size`` elements may use: the engine's count, capped by
    Numba's pool; 1 below ``minimum`` (too little work to start the others for)."""
    return min(num_threads(), numba.config.NUMBA_NUM_THREADS) if size >= minimum else 1


@numba.njit(cache=True, parallel=True, nogil=True)
def _launch_shared(job, workers):
    """One job, its chunks shared by ``workers`` threads (Numba's threading layer)."""
    for worker in prange(workers):
        run(job, worker, workers)


@numba.njit(cache=True, parallel=True, nogil=True)
def _launch_pair(job0, job1):
    """Two independent jobs (a bidirectional layer's directions), a thread each."""
    for j in prange(2):
        if j == 0:
            run(job0, 0, 1)
        else:
            run(job1, 0, 1)


@numba.njit(parallel=True)
def _touch_threads(out):
    for i in prange(out.shape[0]):
        out[i] = i


def threading_layer() -> str:
    """Numba's threading layer ("omp", "tbb" or "workqueue"), after starting it."""
    _touch_threads(np.zeros(2))
    return numba.threading_layer()


def launch(jobs: tuple, workers: int) -> None:
    """Run ``jobs`` (one, or two of the same type) to completion on ``workers`` threads."""
    workers = min(workers, numba.config.NUMBA_NUM_THREADS)
    if workers <= 1:
        for job in jobs:
            run(job, 0, 1)
    elif len(jobs) == 2:
        _launch_pair(*jobs)
    else:
        for job in jobs:
            _launch_shared(job, workers)
