"""``rnnkit bench``: every contender on every point, each in its own process, side by side.

For each point the contenders run one after another, each in a fresh process (a library's thread
pool keeps spinning after its call and would steal the cores from the next one), so that the
ratios printed compare runs made minutes, not hours, apart on the same machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, replace
from importlib import metadata

from rnnkit.bench.points import Point, StreamPoint, grid, low_precision_grid, stream_grid

LAYER_CONTENDERS = ("rnnkit", "torch", "onnxruntime", "floor")
PEAK_CONTENDERS = ("rnnkit", "numpy", "torch")
STREAM_CONTENDERS = ("rnnkit", "torch")
MEMORY_CONTENDERS = ("rnnkit", "torch")


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False          # three small points and one stream point: a smoke test in seconds
    threads: int = 2             # every contender gets the same count: the machine's two cores
    min_time: float = 1.0        # seconds of repetitions per measurement, after warm-up
    timeout: float = 900.0       # a worker that hangs this long is reported as failed
    precisions: tuple[str, ...] = ("float32",)   # low precisions add their own points (and their
                                                 # float32 twins where the grid lacks them)


def thread_env(threads: int) -> dict:
    """The environment of a benchmark process: every library's thread pool set to ``threads``."""
    n = str(threads)
    return dict(os.environ, RNNKIT_BENCH_THREADS=n, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
                NUMBA_NUM_THREADS=n, RNNKIT_NUM_THREADS=n)


def run_worker(job: dict, options: BenchOptions, memory: bool = False) -> dict:
    """Run one job in a fresh interpreter and return its JSON answer (or the error it died with)."""
    env = thread_env(options.threads)
    if memory:
        env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    try:
        proc = subprocess.run([sys.executable, "-m", "rnnkit.bench.worker", json.dumps(job)], env=env,
                              capture_output=True, text=True, timeout=options.timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {options.timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"error": tail[0]}
    return json.loads(lines[-1])


def measure_peak(options: BenchOptions) -> dict:
    """The machine's float32 GEMM peak: one large product by each library, each in its own process."""
    results = {name: run_worker({"contender": name, "kind": "peak", "point": {}, "min_time": options.min_time},
                                options) for name in PEAK_CONTENDERS}
    speeds = {name: r["gflops"] for name, r in results.items() if "gflops" in r}
    best = max(speeds, key=speeds.get) if speeds else None
    return {"results": results, "gflops": speeds.get(best), "by": best}


def bench_point(point: Point, options: BenchOptions, peak: float | None = None) -> dict:
    """Times (and training peak memory) of every contender on one point, with the derived figures."""
    results = {}
    for name in LAYER_CONTENDERS:
        job = {"contender": name, "kind": "layer", "point": point.to_json(), "min_time": options.min_time}
        results[name] = run_worker(job, options)
        if name in MEMORY_CONTENDERS and "skipped" not in results[name] and "error" not in results[name]:
            results[name].update(run_worker(dict(job, kind="memory"), options, memory=True))
    return {"point": point.to_json(), "name": point.name, "results": results,
            "derived": derive(point, results, peak)}


def derive(point: Point, results: dict, peak: float | None = None) -> dict:
    """GFLOP/s, its share of the machine's GEMM peak, fraction of the GEMM floor and speed ratios
    (peer time / rnnkit time: > 1 = we win)."""
    ours, floor, out = results.get("rnnkit", {}), results.get("floor", {}), {}
    for mode in ("train", "infer"):
        if mode not in ours:
            continue
        out[f"{mode}_gflops"] = point.gemm_flops(mode == "train") / ours[mode] / 1e9
        if peak:
            out[f"{mode}_peak_share"] = out[f"{mode}_gflops"] / peak
        if mode in floor:
            out[f"{mode}_floor_fraction"] = floor[mode] / ours[mode]
        for peer in ("torch", "onnxruntime"):
            if mode in results.get(peer, {}):
                out[f"{mode}_vs_{peer}"] = results[peer][mode] / ours[mode]
    return out


def compare_with_float32(rows: list[dict], low: dict) -> None:
    """``low``'s rnnkit speed-up over its float32 twin in ``rows`` (float32 time / this time)."""
    twin = replace(Point(**low["point"]), precision="float32").to_json()
    ours = next((r["results"]["rnnkit"] for r in rows if r["point"] == twin), {})
    for mode in ("train", "infer"):
        if mode in ours and mode in low["results"]["rnnkit"]:
            low["derived"][f"{mode}_vs_float32"] = ours[mode] / low["results"]["rnnkit"][mode]


def bench_stream(point: StreamPoint, options: BenchOptions) -> dict:
    results = {name: run_worker({"contender": name, "kind": "stream", "point": point.to_json(),
                                 "min_time": options.min_time}, options) for name in STREAM_CONTENDERS}
    derived = {}
    if "step" in results["rnnkit"] and "step" in results.get("torch", {}):
        derived["step_vs_torch"] = results["torch"]["step"] / results["rnnkit"]["step"]
    return {"point": point.to_json(), "name": point.name, "results": results, "derived": derived}


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for package in ("rnnkit", "numpy", "numba", "torch", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    about = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
             "system": platform.platform(), "versions": versions}
    try:
        import rnnkit.engine
        about["engine"] = rnnkit.engine.describe()
    except ImportError as exc:                       # no Numba: the NumPy reference runs
        about["engine"] = {"enabled": False, "why": str(exc)}
    return about


def run_bench(options: BenchOptions, report) -> dict:
    """Run the grid, calling ``report(kind, row)`` after each row; returns the whole record."""
    record = {"machine": machine(), "threads": options.threads, "quick": options.quick,
              "layers": [], "low_precision": [], "stream": []}
    record["peak"] = measure_peak(options)
    report("peak", record["peak"])
    low = low_precision_grid(options.precisions, options.quick)
    points = grid(options.quick)
    points += [t for t in dict.fromkeys(replace(p, precision="float32") for p in low) if t not in points]
    for point in points:
        record["layers"].append(bench_point(point, options, record["peak"]["gflops"]))
        report("layer", record["layers"][-1])
    for point in low:
        row = bench_point(point, options)
        compare_with_float32(record["layers"], row)
        record["low_precision"].append(row)
        report("low", row)
    for point in stream_grid(options.quick):
        record["stream"].append(bench_stream(point, options))
        report("stream", record["stream"][-1])
    return record
