"""rnnkit's engine: the recurrent layers compiled, on the machine's full-width vector units.

The readable reference (:mod:`rnnkit.kernels` driven by :mod:`rnnkit.scan`, NumPy, mirroring
docs/bptt.md) says what every layer computes; this package computes the same thing fast, with no
Python and no NumPy call per time step:

- :mod:`~rnnkit.engine.tile` — the one matrix-product micro-kernel (LLVM IR through Numba,
  the widest vectors the CPU has), :mod:`~rnnkit.engine.gemm` — general products on it;
- :mod:`~rnnkit.engine.bf16` — products in bfloat16 with float32 sums, on AMX's tiles
  (:mod:`~rnnkit.engine.amx`) or AVX512_BF16's dot products (:mod:`~rnnkit.engine.bf16_tile`);
- :mod:`~rnnkit.engine.lstm`, :mod:`~rnnkit.engine.gru`, :mod:`~rnnkit.engine.rnn` — each cell's
  whole-sequence recurrences: per step, the recurrent product of a panel of units with its
  element-wise step fused behind it, written with the cell's equations
  (:mod:`~rnnkit.engine.vector`, :mod:`~rnnkit.engine.activations`);
- :mod:`~rnnkit.engine.int8` — dynamically quantised int8 products for inference, on the VNNI
  micro-kernel of :mod:`~rnnkit.engine.int8_tile` (:mod:`~rnnkit.engine.quantize`: how, and
  the error it costs);
- :mod:`~rnnkit.engine.schedule` — the step loop and how work is shared between threads;
- :mod:`~rnnkit.engine.layer` — a layer's directions: input projection, recurrences, gradients;
- :class:`EngineBackend` — all of it as the engine's side of :class:`rnnkit.backend.Backend`.

:func:`enabled` says whether the engine may run: Numba must be importable and ``RNNKIT_ENGINE``
not ``0`` (:func:`rnnkit.backend.current` then chooses it). Everything here is imported on first
use, so ``import rnnkit`` stays light.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

# Below this many multiply-adds in one step of the recurrent product (B · G·H · H_out), sharing a
# step between threads costs more in synchronisation than it saves; measured on the benchmark
# machine: LSTM B=8, H=64 (2^17) runs 0.66 ms on one thread, 0.70 ms on two (T=100).
MIN_SHARED_STEP = 1 << 18
# Below this many multiply-adds in a whole call, starting a second thread (~15-30 µs) costs more
# than it saves even for independent recurrences (the two directions of a bidirectional layer).
MIN_PARALLEL_CALL = 1 << 21


# The variables that give the engine's thread count, first found first: rnnkit's own, then OpenMP's.
THREAD_VARIABLES = ("RNNKIT_NUM_THREADS", "OMP_NUM_THREADS")


def threads_from_environment() -> int | None:
    """The positive thread count the first of :data:`THREAD_VARIABLES` holds, or None."""
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def available_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity, where the system has one)."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


@functools.cache
def enabled() -> bool:
    """True if the engine may run: Numba importable and ``RNNKIT_ENGINE`` not "0" (read once)."""
    if os.environ.get("RNNKIT_ENGINE", "1") == "0":
        return False
    return importlib.util.find_spec("numba") is not None


def workers_for(steps: int, batch: int, gates_width: int, h_out: int, jobs: int) -> int:
    """Threads for a layer call of ``jobs`` independent recurrences of this size."""
    from rnnkit.engine.schedule import num_threads
    threads = num_threads()
    step = batch * gates_width * h_out
    if threads <= 1 or steps * step * jobs < MIN_PARALLEL_CALL:
        return 1
    if jobs >= 2:
        return min(threads, jobs)
    return threads if step >= MIN_SHARED_STEP else 1


def _workers(ws: list, steps: int, batch: int) -> int:
    return workers_for(steps, batch, ws[0].weight_hh.shape[0], ws[0].weight_hh.shape[1], len(ws))


@functools.cache
def _callplan():
    """:mod:`.callplan`, imported on first use (an import statement costs ~0.4 µs a call)."""
    from rnnkit.engine import callplan
    return callplan


class EngineBackend:
    """The engine's side of :class:`rnnkit.backend.Backend`: each cell's jobs (registered against
    its reference kernel, :func:`rnnkit.kinds.jobs_for`) run by :mod:`~rnnkit.engine.layer`, the
    compiled streaming step, products and Adam on the micro-kernel's threads."""

    name = "engine"

    def layer_forward(self, kernel, ws: list, xs: list[np.ndarray], states0: list[tuple], mask,
                      keep_tape: bool = True, masks: list | None = None) -> list:
        """Without ``keep_tape`` only the states are written (inference), not what backward needs.
        A call of a shape seen before replays its records (:mod:`.callplan`)."""
        from rnnkit.engine import callplan
        from rnnkit.kinds import jobs_for
        T, B, _ = xs[0].shape
        return callplan.forward(jobs_for(kernel), ws, xs, states0, mask, _workers(ws, T, B), keep_tape, masks)

    def planned_stack_forward(self, kernel, layers: list[tuple], x: np.ndarray, keep_tape: bool):
        """A plain stack's call replayed from its layers' plans, or None (:func:`.callplan.stack_forward`)."""
        return _callplan().stack_forward(kernel, layers, x, keep_tape)

    def layer_backward(self, kernel, ws: list, dws: list, tapes: list, douts: list, dfinals: list) -> list:
        from rnnkit.engine.backplan import backward
        from rnnkit.kinds import jobs_for
        T, B, _ = tapes[0].x.shape
        return backward(jobs_for(kernel), ws, dws, tapes, douts, dfinals, _workers(ws, T, B))

    def stepper(self, kernel, dtype):
        """The compiled step where the cell's jobs name one (:mod:`.step`), else a one-step sequence."""
        from rnnkit.backend import SequenceStepper
        from rnnkit.kinds import jobs_for
        step_kind = jobs_for(kernel).step_kind()
        return SequenceStepper(self, kernel) if step_kind is None else CellStepper(step_kind, kernel, dtype)

    def matmul(self, a, b, trans_a, trans_b, out, accumulate) -> np.ndarray:
        from rnnkit.engine.gemm import gemm
        a = a if a.strides[-1] == a.itemsize else np.ascontiguousarray(a)
        b = np.ascontiguousarray(b)
        return gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate)

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bias1, bias2) -> None:
        """In one compiled pass (:mod:`.optim`); arrays that are not C-ordered through NumPy."""
        if not (p.flags.c_contiguous and g.flags.c_contiguous):
            from rnnkit.backend import NUMPY
            NUMPY.adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bias1, bias2)
            return
        from rnnkit.engine.optim import adam_update
        adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr, beta1, beta2, eps,
                    weight_decay, decoupled, bias1, bias2)

    def num_threads(self) -> int:
        from rnnkit.engine.schedule import num_threads
        return num_threads()

    def set_num_threads(self, count: int | None) -> None:
        from rnnkit.engine.schedule import set_num_threads
        set_num_threads(count)


BACKEND = EngineBackend()


class CellStepper:
    """One step of a cell on a few rows at a time, for streaming inference (:mod:`.step`).

    Built once per cell (the constants of its kind: zero biases, absent peepholes), then called
    with the cell's current weight arrays at each step; the weights are read as they lie, nothing
    is packed, and large cells split their units between threads.
    """

    def __init__(self, step_kind: int, kernel, dtype) -> None:
        from rnnkit.engine import step
        from rnnkit.engine.schedule import num_threads
        self.step, self.step_kind = step, step_kind          # the compiled step's code for the cell
        self.zeros = np.zeros(kernel.num_gates * kernel.hidden_size, dtype)       # bias=False
        self.none = np.zeros(0, dtype)
        self.no_cell = np.zeros((0, 0), dtype)
        self.threads = num_threads

    def weights(self, w) -> tuple:
        """The cell's arrays in the order the compiled step takes them (absent ones as zeros)."""
        return (w.weight_ih, w.weight_hh, self.zeros if w.bias_ih is None else w.bias_ih,
                self.zeros if w.bias_hh is None else w.bias_hh,
                *((w.weight_ci, w.weight_cf, w.weight_co) if w.weight_ci is not None else (self.none,) * 3))

    def __call__(self, arrays: tuple, x: np.ndarray, states: tuple) -> tuple:
        """New states ((B, H), …) after one step on x (B, I) from ``states``; ``arrays`` from
        :meth:`weights`. All C-contiguous arrays of the cell's dtype."""
        lstm = len(states) > 1
        h = states[0]
        c = states[1] if lstm else self.no_cell
        h_new, c_new = np.empty_like(h), np.empty_like(c)
        if arrays[0].size + arrays[1].size < self.step.MIN_SHARED_WEIGHTS or self.threads() < 2:
            pre = np.empty((h.shape[0], 4, h.shape[1]), h.dtype)
            self.step.step_here(self.step_kind, *arrays, x, h, c, h_new, c_new, pre)
        else:
            from rnnkit.engine.schedule import launch
            job = self.step.step_job(self.step_kind, *arrays, x, h, c, h_new, c_new, 2)
            launch((job,), 2)
        return (h_new, c_new) if lstm else (h_new,)


def matmul(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
           out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """op(a) · op(b) for 2-D arrays (op(x) = xᵀ when its flag is set), into ``out`` (added to it
    with ``accumulate``), on the backend in use (:func:`rnnkit.backend.current`): the engine's
    micro-kernel when the engine is enabled, else NumPy.

    The toolkit's own products go through here, so that every product rnnkit computes runs on the
    same full-width kernel and the same threads: NumPy's BLAS keeps its threads spinning after a
    call, and they would take the cores from the engine's next recurrence (measured: a character
    LSTM's training step took 125 ms instead of 70).
    """
    from rnnkit.backend import current
    rows = a.shape[1] if trans_a else a.shape[0]
    cols = b.shape[0] if trans_b else b.shape[1]
    if out is None:
        out = np.zeros((rows, cols), np.result_type(a, b)) if accumulate else np.empty((rows, cols), np.result_type(a, b))
    return current().matmul(a, b, trans_a, trans_b, out, accumulate)


def describe() -> dict:
    """What the engine runs on: the vector ISA and tiles of its micro-kernel, its threads, and
    (for comparison) the BLAS NumPy loaded, which the engine does not use."""
    import numba

    from rnnkit.engine.isa import host_isa, tile_rows
    from rnnkit.engine.schedule import num_threads
    isa = host_isa()
    about = {
        "enabled": enabled(), "numba": numba.__version__, "isa": isa.name, "vector_bits": isa.vector_bits,
        "float32_lanes": isa.lanes(np.float32),
        "tiles": [f"{tile_rows(nv)}x{nv}" for nv in (2, 3, 4)], "threads": num_threads(),
        "threading_layer": _threading_layer(),
    }
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            about["numpy_blas"] = {k: blas[0].get(k) for k in ("internal_api", "version", "architecture")}
    except ImportError:
        pass
    return about


def _threading_layer() -> str:
    """The threading layer Numba uses for the engine's parallel launches (starts it if needed)."""
    from rnnkit.engine.schedule import threading_layer
    return threading_layer()
