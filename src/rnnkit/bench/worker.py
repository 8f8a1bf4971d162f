"""One benchmark job in its own process: ``python -m rnnkit.bench.worker '<json job>'``.

A job is ``{"contender", "kind": "layer"|"memory"|"stream"|"peak", "point", "min_time"}``; the
process prints one JSON line: seconds per training and inference call (``layer``), seconds per
cell step (``stream``), the peak memory of a training call (``memory``), the GFLOP/s of one large
product (``peak``), or ``{"skipped": reason}``.

Memory is measured in a process of its own, started with glibc's mmap threshold fixed at 64 KiB,
so that every large buffer is returned to the system when freed and the peak of one call shows;
that setting slows allocation, so timings never run under it. The thread count comes from
``RNNKIT_BENCH_THREADS``, which the runner also puts in ``OMP_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` before the process starts (:func:`rnnkit.bench.runner.thread_env`).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from rnnkit.bench.contenders import CONTENDERS, Skipped, bench_data, import_torch, peak_gflops
from rnnkit.bench.measure import median_time, peak_memory_mib
from rnnkit.bench.points import Point, StreamPoint
from rnnkit.kinds import KINDS, cell_class


def stream_fn(contender: str, point: StreamPoint):
    """One cell step on a batch of one, the state carried from call to call (no gradient)."""
    x = np.random.default_rng(1).standard_normal((1, point.H)).astype(np.float32)
    if contender == "rnnkit":
        import rnnkit
        cell = cell_class(point.cell)(point.H, point.H, rng=0)
        state, grad = None, rnnkit.no_grad
    elif contender == "torch":
        torch = import_torch()
        cell = getattr(torch.nn, KINDS[point.cell].title + "Cell")(point.H, point.H)
        x, state, grad = torch.from_numpy(x), None, torch.no_grad
    else:
        raise Skipped(f"{contender} has no streaming cell step")

    def step():
        nonlocal state
        with grad():
            state = cell(x, state)
    return step


def run_job(job: dict) -> dict:
    contender, min_time = job["contender"], job["min_time"]
    if job["kind"] == "peak":
        return {"gflops": peak_gflops(contender)}
    if job["kind"] == "stream":
        step = stream_fn(contender, StreamPoint(**job["point"]))
        return {"step": median_time(step, min_time, min_reps=20, inner=100)}
    point = Point(**job["point"])
    x, dout = bench_data(point)
    train, infer = CONTENDERS[contender](point, x, dout)
    if job["kind"] == "memory":
        if train is None:
            return {}
        train()                                        # warm-up: one-time buffers are not the step's
        if contender == "rnnkit":                      # but the arrays the engine keeps between calls
            from rnnkit.engine import workspace        # are: measure the step as if they were new
            workspace.release()
        return {"train_peak_mib": peak_memory_mib(train)}
    result = {}
    if infer is not None:
        result["infer"] = median_time(infer, min_time)
    if train is not None:
        result["train"] = median_time(train, min_time)
    return result


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    try:
        result = run_job(job)
    except Skipped as exc:
        result = {"skipped": str(exc)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
