"""Timing and peak memory inside one benchmark process.

Times are medians over repetitions after warm-up. Peak memory is the rise of the process's peak
resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) over one call: it counts
every allocator — NumPy's, PyTorch's, onnxruntime's — the same way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], min_time: float, min_reps: int = 5, max_reps: int = 10_000,
                inner: int = 1) -> float:
    """Median seconds per call of ``fn`` over repetitions lasting at least ``min_time`` in all.

    ``inner`` calls are timed together (for calls of a few microseconds, where the clock's own cost
    would show); the result is still per call.
    """
    for _ in range(2):
        fn()                                                     # warm-up: caches, pools, JIT
    samples, start = [], time.perf_counter()
    while len(samples) < max_reps and (len(samples) < min_reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mib(fn: Callable[[], object]) -> float | None:
    """How far one call of ``fn`` raises the resident set above where it started, in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                         # reset VmHWM to the current VmRSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0) / 1024
