"""The step loop every recurrence of the engine shares, and how it is spread over the cores.

A *job* is one recurrence over a whole sequence (one direction of one layer, forward or backward),
held in a small record (a ``NamedTuple`` of arrays) whose type says which cell it is. Every record
has the fields ``steps``, ``chunks``, ``counters`` and ``scratch`` (a private work area for each
worker, ``scratch[worker]``). Its work is a
sequence of ``steps``, each made of ``len(job.chunks)`` phases; phase ``ph`` of a step is cut into
``job.chunks[ph]`` independent chunks (panels of hidden units). :func:`run` walks the steps and
phases, claiming chunks and calling :func:`task` on each (:mod:`rnnkit.engine.sync`); every cell
module registers its own ``task`` for its record type with ``numba.extending.overload``, so this loop
is written once and compiled, with the cell's arithmetic inlined, for each cell.

:func:`launch` runs jobs on ``workers`` threads of Numba's threading layer (OpenMP where the
system has it, whose threads spin for a while after a parallel region, so that the next launch of
a training step finds them awake): one job is shared by all of them, chunk by chunk; two
independent jobs (the two directions of a bidirectional layer) get a thread each. Work is claimed,
never assigned, so a thread that starts late only finds less left to do, and nothing waits for a
thread that never starts.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange
from numba.extending import overload

from rnnkit.engine import available_cpus, threads_from_environment
from rnnkit.engine.jit import jit
from rnnkit.engine.isa import host_isa
from rnnkit.engine.microkernel import SHAPE, SHAPE3, SHAPE4, row_mm, row_mm3, row_mm4, tile_mm, tile_mm3, tile_mm4
from rnnkit.engine.sync import claim, counter_size, finish, wait_all

MR, MR3, MR4 = SHAPE.mr, SHAPE3.mr, SHAPE4.mr
VECTOR_BYTES = host_isa().vector_bits // 8
SCRATCH_COLUMNS = 64        # the widest panel a task computes into its scratch (4 gates × 16)
# K block of a recurrent product: the block of a panel that every row tile passes over. Measured
# (one core, tiles alone): 4-vector panels 5-10% faster at 128 than at 256 (64 KiB, more than the
# first-level cache), narrower panels fastest at 256.
KC_WIDE, KC = 128, 256


def lanes_of(array):
    """L: the elements of ``array`` that one vector register holds (a compile-time constant)."""
    return VECTOR_BYTES // array.itemsize


@overload(lanes_of)
def _lanes_of(array):
    lanes = VECTOR_BYTES // np.dtype(str(array.dtype)).itemsize
    return lambda array: lanes


@jit
def panel_product(a, a_off, lda, rows, panels, p, acc):
    """acc[:rows, :NR] = A[:rows] · panel p (A's rows ``lda`` apart from ``a[a_off]``).

    K is walked in blocks so that each block of the panel stays in the first-level cache while
    every row tile passes over it; ``acc`` holds the row tiles' partial sums in between.
    """
    n_panels, K, NR = panels.shape
    ldc = acc.shape[1]
    nv = NR * panels.itemsize // VECTOR_BYTES
    mr = MR4 if nv == 4 else (MR3 if nv == 3 else MR)
    block = KC_WIDE if nv == 4 else KC
    for k0 in range(0, K, block):
        kc = min(block, K - k0)
        for r in range(0, rows, mr):
            a0, n, p0, c0 = a_off + r * lda + k0, min(mr, rows - r), (p * K + k0) * NR, r * ldc
            if n == 1:                                            # one row: the one-row tile
                if nv == 4:
                    row_mm4(a, a0, lda, 1, 1, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
                elif nv == 3:
                    row_mm3(a, a0, lda, 1, 1, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
                else:
                    row_mm(a, a0, lda, 1, 1, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
            elif nv == 4:
                tile_mm4(a, a0, lda, 1, n, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
            elif nv == 3:
                tile_mm3(a, a0, lda, 1, n, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)
            else:
                tile_mm(a, a0, lda, 1, n, panels, p0, NR, kc, acc, c0, ldc, k0 > 0)


def task(job, step, phase, chunk, worker):
    """Do chunk ``chunk`` of phase ``phase`` of step ``step`` (each job type overloads this)."""
    raise NotImplementedError("task is only defined inside compiled code, per job type")


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
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive int or None, got {count!r}")
    _threads = _threads_from_environment() if count is None else count


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
