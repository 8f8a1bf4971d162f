"""Data-parallel training over MPI: one model replicated on N processes that share each batch.

Each process (a *rank*) holds a whole copy of the model and takes an equal, contiguous share of
every batch. It computes g_r, the gradient of the mean loss over its share; one ``Allreduce`` on a
single flat buffer of every gradient sums them, and each rank divides by N:

    g = (1/N) Σ_r g_r  =  ∇ (mean loss over the whole batch)          (equal shares)

so every rank takes the same optimizer step from the same gradient, and the replicas stay equal:
the single-process run with the same global batch, up to the order of the float32 sums. A cheap
check (:meth:`World.check_replicas`, a hash of every replica) says so, or stops the job loudly.

Processes are started by an MPI launcher (``mpiexec -n N ...``, ``srun``); :func:`world` tells a
process its place. Without a launcher it is a world of one whose operations do nothing, so one
code path serves both. mpi4py is imported only when a launcher started the process (or
``RNNKIT_MPI=1``; ``RNNKIT_MPI=0`` never imports it): ``import rnnkit`` and single-process
training never need it. Install it with ``pip install "rnnkit[mpi]"`` (mpi4py and the MPICH
wheel, which provides ``mpiexec``).

In your own loop, with any rnnkit module and optimizer::

    from rnnkit.distributed import world, broadcast_parameters, allreduce_gradients
    w = world()
    params = model.parameters()
    broadcast_parameters(params)          # every rank starts from rank 0's weights
    opt = Adam(params, lr=1e-3)
    for x, y in batches:                  # the same global batches (T, B) on every rank
        share = w.share(x.shape[1])       # this rank's streams: B/N contiguous columns
        logits, _ = model(x[:, share])
        loss, dlogits = softmax_cross_entropy(logits, y[:, share])
        model.zero_grad(); model.backward(dlogits)
        allreduce_gradients(params)       # the mean of the ranks' gradients, on every rank
        opt.step()                        # the same step everywhere
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from rnnkit.engine import available_cpus, threads_from_environment
from rnnkit.errors import EXIT_FAILED, EXIT_INTERRUPTED, UserError, exit_code, user_message

# Variables by which MPI launchers tell a process how many were started and which one it is:
# MPICH's and Intel MPI's hydra and Slurm's srun --mpi=pmi2 (PMI), Open MPI, MVAPICH. For a
# launcher that sets none of them, RNNKIT_MPI=1.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


class MPIUnavailable(UserError):
    """An MPI launcher started this process, but mpi4py or an MPI library is missing."""


class ReplicaDrift(RuntimeError):
    """The replicas of the model are no longer equal on every rank."""


def _env_int(names: Sequence[str]) -> tuple[str, int] | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return name, int(value)
    return None


def launcher_rank() -> int:
    """This process's rank as the launcher's environment says (0 without a launcher); known
    before MPI starts, so that a failure to start it is reported once, by rank 0."""
    found = _env_int(RANK_VARIABLES)
    return found[1] if found else 0


class _FlatGradients(NamedTuple):
    """Where each gradient of a parameter set lies in the one buffer an Allreduce sums."""
    params: tuple                        # the set (held: recognised by identity the next step)
    spans: tuple[tuple[int, int], ...]   # [start, stop) of each parameter's gradient
    size: int                            # the gradients' total size; the extras follow
    buffer: np.ndarray                   # (size + extras,), in the gradients' common dtype


class World:
    """The processes training one model: this one's ``rank`` among ``size``, its ``local_rank``
    among the ``local_size`` of them on this machine, and ``threads``, the engine threads each should use by default (the CPUs
    this process may run on, divided among the processes of this machine that may run on them
    too, so N processes on one machine never start more threads than it has cores)."""

    def __init__(self, comm=None) -> None:
        self.comm = comm                  # mpi4py.MPI.Comm, or None: a single process
        self._flat: _FlatGradients | None = None    # the last parameter set's buffer, reused each step
        self._agreed: BaseException | None = None   # the last failure every rank raised together
        if comm is None:
            self.rank, self.size, self.local_rank, self.local_size, self.threads = 0, 1, 0, 1, len(available_cpus())
            return
        from mpi4py import MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            mine = available_cpus()
            others = node.allgather(sorted(mine))
            self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
            self.threads = max(1, len(mine) // sum(1 for cpus in others if mine & set(cpus)))
        finally:
            node.Free()

    @property
    def root(self) -> bool:
        """Rank 0: the one that prints, validates and writes the run directory."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, local_size={self.local_size}, threads={self.threads})"

    def share(self, n: int, what: str = "batch") -> slice:
        """This rank's contiguous share of ``n`` items (streams of a batch): n/size of them."""
        if n % self.size:
            raise UserError(f"the {what} of {n} cannot be split evenly among {self.size} MPI processes: "
                            f"give a {what} that is a multiple of the number of processes (mpiexec -n)")
        b = n // self.size
        return slice(self.rank * b, (self.rank + 1) * b)

    def engine_threads(self, requested: int = 0) -> int | None:
        """The engine threads of each process: ``requested`` (--threads) if given; else, for a single
        process or if RNNKIT_NUM_THREADS / OMP_NUM_THREADS gives a count, None (the engine's own
        choice: that count, else every CPU); else :attr:`threads`, the CPUs this process may use
        divided among the processes of its machine that may use them too."""
        if requested:
            return requested
        if self.size == 1 or threads_from_environment() is not None:
            return None
        return self.threads

    def sharded_random(self, rng: np.random.Generator, n: int):
        """The draws of this rank's share of a batch of ``n`` streams from ``rng``
        (:class:`ShardedRandom`; ``rng`` itself for a single process)."""
        return rng if self.size == 1 else ShardedRandom(rng, self.share(n), n)

    # -- collectives on arrays -------------------------------------------------------------------
    def broadcast_parameters(self, params, root: int = 0) -> None:
        """Every parameter's ``data`` set to rank ``root``'s, in place."""
        self.broadcast_arrays([p.data for p in params], root)

    def broadcast_arrays(self, arrays: Sequence[np.ndarray], root: int = 0) -> None:
        """Each (C-contiguous) array overwritten in place with rank ``root``'s."""
        if self.size == 1:
            return
        for a in arrays:
            if not a.flags.c_contiguous:
                raise ValueError(f"broadcast needs C-contiguous arrays, got one of shape {a.shape}")
            self.comm.Bcast(a, root=root)

    def broadcast_new_arrays(self, arrays: Sequence[np.ndarray], root: int = 0) -> tuple[np.ndarray, ...]:
        """Rank ``root``'s (C-contiguous) arrays on every rank: the others, which need not know
        how many there are or their shapes, allocate them from rank ``root``'s (their own
        ``arrays`` are ignored)."""
        if self.size == 1:
            return tuple(arrays)
        mine = self.rank == root
        specs = self.broadcast_object([(a.shape, a.dtype.str) for a in arrays] if mine else None, root)
        out = tuple(arrays) if mine else tuple(np.empty(shape, dtype) for shape, dtype in specs)
        self.broadcast_arrays(out, root)
        return out

    def allreduce_gradients(self, params, *, average: bool = True, extras: Sequence[float] = ()) -> tuple[float, ...]:
        """Every ``p.grad`` replaced by its sum over the ranks (divided by ``size`` if ``average``),
        with one Allreduce on one flat buffer; ``extras``, a few numbers (a loss, a count) summed
        over the ranks in the same call, are returned summed (never divided)."""
        if self.size == 1:
            return tuple(float(e) for e in extras)
        flat = self._flat_gradients(params, len(extras))
        buf, n = flat.buffer, flat.size
        for p, (start, stop) in zip(flat.params, flat.spans):                  # pack
            buf[start:stop] = p.grad.ravel()
        buf[n:] = extras
        from mpi4py import MPI
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        summed = tuple(float(e) for e in buf[n:])
        if average:
            np.divide(buf[:n], self.size, out=buf[:n])
        for p, (start, stop) in zip(flat.params, flat.spans):                  # unpack
            p.grad[...] = buf[start:stop].reshape(p.grad.shape)
        return summed

    def _flat_gradients(self, params, extras: int) -> _FlatGradients:
        """The flat buffer of this parameter set (the last one's, if it is the same set)."""
        params = tuple(params)
        flat = self._flat
        if flat is None or flat.params != params or flat.buffer.size != flat.size + extras:
            ends = np.cumsum([p.grad.size for p in params], dtype=np.int64)
            spans = tuple(zip([0, *ends[:-1].tolist()], ends.tolist()))
            size = int(ends[-1]) if len(ends) else 0
            dtype = np.result_type(*(p.grad for p in params))
            flat = self._flat = _FlatGradients(params, spans, size, np.empty(size + extras, dtype))
        return flat

    def gather_streams(self, states: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...] | None:
        """States (L, B/N, H) of this rank's streams → on rank 0 the whole batch's (L, B, H), in
        rank order (None on the other ranks)."""
        if self.size == 1:
            return states
        out = []
        for s in states:
            s = np.ascontiguousarray(s)
            recv = np.empty((self.size, *s.shape), s.dtype) if self.root else None
            self.comm.Gather(s, recv, root=0)
            out.append(np.concatenate(list(recv), axis=1) if self.root else None)
        return tuple(out) if self.root else None

    # -- agreement ------------------------------------------------------------------------------------
    def broadcast_object(self, obj, root: int = 0):
        """A small Python object (numbers, strings, dicts of them) from rank ``root`` to every rank."""
        return obj if self.size == 1 else self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    def in_turns(self, fn: Callable[[], None]) -> None:
        """``fn()`` on every rank in three turns, each after the previous one has ended: rank 0,
        then the first rank of every other machine, then the rest. For work that fills a cache on
        each machine's disk: no two processes of a machine write it at the same time, and each
        turn loads what the previous one wrote."""
        turn = 0 if self.root else (1 if self.local_rank == 0 else 2)
        for group in range(3 if self.size > 1 else 1):
            if group == turn:
                fn()
            self.barrier()

    def agreed(self, error: BaseException) -> BaseException:
        """``error``, which every rank raises at this point together (a failure shared by
        :meth:`together`, a drift found by :meth:`check_replicas`, a loss every rank agreed on):
        ``raise world.agreed(error)``. :func:`exit_together` then lets rank 0 report it once, and
        the other ranks end with its exit code, quietly."""
        self._agreed = error
        return error

    def raised_together(self, error: BaseException) -> bool:
        """Whether every rank raised ``error`` together (:meth:`agreed`)."""
        return error is self._agreed

    def together(self, fn: Callable, *, root_only: bool = False):
        """``fn()`` on every rank (or on rank 0 alone), then agree on how it went.

        If it raised on any rank, every rank raises: its own exception where it raised, else a copy
        of the one from the lowest rank that raised; each is :meth:`agreed`, so
        :func:`exit_together` lets rank 0 report it once and nobody waits for a rank that left.
        Otherwise each rank returns its own result (``root_only``: rank 0's, broadcast; keep it
        small). Use it around any work that may fail on some ranks only: a rank that failed alone
        would leave the others waiting forever in their next collective operation.
        """
        if self.size == 1:
            return fn()
        result, error = None, None
        if self.root or not root_only:
            try:
                result = fn()
            except Exception as exc:                     # noqa: BLE001 - every failure is shared
                error = exc
        if root_only:
            shared_error, shared_result = self.comm.bcast((error, result) if self.root else None, root=0)
            if not self.root:
                error, result = shared_error, shared_result
        else:
            errors = self.comm.allgather(error)
            error = error or next((e for e in errors if e is not None), None)
        if error is not None:
            raise self.agreed(error)
        return result

    def check_replicas(self, arrays: Sequence[np.ndarray], what: str = "parameters") -> None:
        """Raise :class:`ReplicaDrift` on every rank unless ``arrays`` are bit for bit equal on every
        rank (a BLAKE2 hash of each rank's, compared: ~3 ms per 10 MB)."""
        if self.size == 1:
            return
        h = hashlib.blake2b(digest_size=16)
        for a in arrays:
            h.update(np.ascontiguousarray(a).view(np.uint8))
        digests = self.comm.allgather(h.hexdigest())
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise self.agreed(ReplicaDrift(f"the model's replicas have drifted apart: the {what} on MPI rank(s) "
                                           f"{', '.join(map(str, differ))} differ from rank 0's; stopping every rank"))

    def abort(self, code: int) -> None:
        """End every process of the job now (MPI_Abort: the launcher kills them all)."""
        if self.size == 1:
            raise SystemExit(code)
        self.comm.Abort(code)


class ShardedRandom:
    """This rank's share of the draws a single process makes for the whole batch.

    Dropout draws ``rng.random((T, B, H))`` once per call; here each rank asks for
    ``(T, B/N, H)`` and gets exactly the slice ``[:, share]`` of the whole batch's draw, and the
    generator ends where the single process's would: every rank keeps the same generator state
    (one state to checkpoint) and the masks are those of the single-process run. With a
    generator that can skip ahead (PCG64, numpy's default) only the share is drawn; otherwise the
    whole draw is made and sliced.
    """

    def __init__(self, rng: np.random.Generator, share: slice, total: int) -> None:
        self.rng, self.share, self.total = rng, share, total

    def random(self, size, dtype=np.float64):
        shape = tuple(np.atleast_1d(size))
        b = self.share.stop - self.share.start
        if len(shape) < 2 or shape[1] != b:
            raise ValueError(f"a sharded draw needs (T, {b}, ...), got {shape}")
        full = (shape[0], self.total, *shape[2:])
        bg = self.rng.bit_generator
        if np.dtype(dtype) != np.float64 or not hasattr(bg, "advance"):
            return self.rng.random(full, dtype)[:, self.share]
        row = int(np.prod(shape[2:], dtype=np.int64))   # draws per stream and step
        out = np.empty(shape, np.float64)
        for t in range(shape[0]):                       # one float64 consumes one 64-bit draw
            bg.advance(self.share.start * row)
            out[t] = self.rng.random(b * row).reshape(shape[1:])
            bg.advance((self.total - self.share.stop) * row)
        return out

    def random_bits(self, shape, batch_axis: int) -> np.ndarray:
        """This rank's share, along ``batch_axis``, of the whole batch's draw of uint32 bits
        (:func:`rnnkit.inner_dropout.random_bits`: recurrent dropout's and zoneout's masks)."""
        from rnnkit.inner_dropout import random_bits
        shape = tuple(shape)
        b = self.share.stop - self.share.start
        if shape[batch_axis] != b:
            raise ValueError(f"a sharded draw needs {b} streams on axis {batch_axis}, got {shape}")
        full = shape[:batch_axis] + (self.total,) + shape[batch_axis + 1:]
        return np.take(random_bits(self.rng, full, batch_axis), np.arange(self.share.start, self.share.stop),
                       axis=batch_axis)


@functools.cache
def world() -> World:
    """This process's place among the processes training together (read once, then cached).

    Started by an MPI launcher (or with ``RNNKIT_MPI=1``): mpi4py's ``COMM_WORLD``; otherwise, or
    with ``RNNKIT_MPI=0``, a world of one process. Raises :class:`MPIUnavailable` (a
    :class:`~rnnkit.errors.UserError`) with what to install when a launcher started several
    processes but mpi4py or its MPI library cannot be loaded.
    """
    mode = os.environ.get("RNNKIT_MPI", "").strip()
    launched = _env_int(SIZE_VARIABLES)
    if mode == "0" or (mode != "1" and launched is None):
        return World()
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:
        if mode != "1" and launched is not None and launched[1] == 1:
            return World()                  # mpiexec -n 1: a single process either way
        started = f"{launched[0]}={launched[1]}" if launched else "RNNKIT_MPI=1"
        raise MPIUnavailable(
            f"this process was started for MPI ({started}) but MPI cannot be used here ({exc}): "
            "install it in this environment with  pip install \"rnnkit[mpi]\"  (mpi4py and the MPICH "
            "wheel, which provides mpiexec) and launch with that mpiexec") from None
    return World(MPI.COMM_WORLD)


def broadcast_parameters(params, root: int = 0) -> None:
    """Set every parameter's ``data`` to rank ``root``'s (all ranks call it together)."""
    world().broadcast_parameters(params, root)


def allreduce_gradients(params, *, average: bool = True) -> None:
    """Replace every ``p.grad`` by the mean (``average=False``: the sum) of the ranks' gradients,
    with one Allreduce on one flat buffer (all ranks call it together, with the same parameters)."""
    world().allreduce_gradients(params, average=average)


def _describe(exc: BaseException) -> str:
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__


def exit_together(world: World, main: Callable[[], int], command: str) -> int:
    """Run a command's ``main()`` (→ exit code) so that every rank ends, with one exit code.

    An exception every rank raised together (:meth:`World.agreed`: :meth:`World.together`,
    :meth:`World.check_replicas`) is re-raised on rank 0, whose command line reports it, and turned
    into the same exit code on the others, quietly. An exception on some ranks only would leave the
    rest waiting forever in their next collective operation: it is printed with its rank and the
    whole job is aborted.
    """
    if world.size == 1:
        return main()
    try:
        return main()
    except (Exception, KeyboardInterrupt) as exc:
        message = user_message(exc)                      # None: a bug, reported with its traceback
        code = (EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt)        # as rnnkit.cli's
                else exit_code(exc) if message is not None else EXIT_FAILED)
        if world.raised_together(exc):
            if world.root:
                raise
            return code
        if message is None and not isinstance(exc, KeyboardInterrupt):
            traceback.print_exc()
        print(f"rnnkit {command}: error on MPI rank {world.rank} of {world.size}: "
              f"{message or _describe(exc)}; aborting every rank", file=sys.stderr, flush=True)
        world.abort(code)
        raise                                            # not reached: MPI_Abort ends the process
