"""Data-parallel throughput on this machine, and an estimate for more machines
(the figures of docs/distributed.md).

    python scripts/mpi_scaling.py [--steps 60] [--bandwidth-gbit 10] [--latency-us 30]

1. `rnnkit train` with the default model and batch (no validation, --max-steps STEPS) as one
   process with 2 engine threads and as `mpiexec -n 2` processes with 1 thread each; a step's
   time is read from timings.jsonl (the median after the first 10 steps, best of 3 runs).
2. The compute time of a step at the per-process batches B/N of N machines (one process, every
   core of this machine), and the allreduce volume, parameter count × 4 bytes (float32).
3. The estimate: a step on N machines takes compute(B/N) + allreduce with the default global
   batch B = 128, or compute(128) + allreduce with 128 streams per machine (a global batch of
   128·N), where a ring allreduce of V bytes moves 2(N-1)/N · V in and out of each machine and
   pays 2(N-1) network latencies; nothing overlaps the allreduce with computation.

Run it on a quiet machine: it measures the machine, not rnnkit alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

QUICK = ["--eval-every", "100000", "--sample-chars", "0", "--val-fraction", "0.001"]
B, T = 128, 32                                            # the default batch and window


def train(processes: int, threads: int, steps: int, out: Path, batch: int = B, repeat: int = 3) -> float:
    """Seconds per training step: the median of the steps after the first 10, the best of
    ``repeat`` runs (on a shared machine the others' work only ever adds time)."""
    return min(_train(processes, threads, steps, out / str(r), batch) for r in range(repeat))


def _train(processes: int, threads: int, steps: int, out: Path, batch: int) -> float:
    args = ["-m", "rnnkit.cli", "train", *QUICK, "--max-steps", str(steps), "--threads", str(threads),
            "--batch-size", str(batch), "--out", str(out)]
    launcher = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(processes)] if processes > 1 else []
    subprocess.run(launcher + [sys.executable] + args, check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in (out / "timings.jsonl").read_text().splitlines()]
    clock = [r["train_seconds"] for r in records if "train_seconds" in r]
    return statistics.median(b - a for a, b in zip(clock[10:], clock[11:]))


ALLREDUCE = """
import sys, time, numpy as np
from mpi4py import MPI
buf, times = np.ones(int(sys.argv[1]), np.float32), []
for _ in range(60):
    MPI.COMM_WORLD.Barrier(); t = time.perf_counter()
    MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf)
    times.append(time.perf_counter() - t)
if MPI.COMM_WORLD.rank == 0: print(sorted(times[10:])[25])
"""


def allreduce_seconds(count: int) -> float:
    """The median time of one Allreduce of ``count`` float32 between 2 processes of this machine."""
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    out = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", ALLREDUCE, str(count)], check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def parameter_count() -> int:
    from rnnkit.lm.config import TrainConfig
    from rnnkit.lm.data import Vocab, default_corpus_files, read_corpus, split_text
    from rnnkit.lm.model import CharLM
    text, _, _ = read_corpus([str(f) for f in default_corpus_files()])
    vocab = Vocab.from_text(split_text(text, 0.05)[0])
    return sum(p.data.size for p in CharLM(TrainConfig().model_config(vocab.size), rng=0).parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--bandwidth-gbit", type=float, default=10.0)
    ap.add_argument("--latency-us", type=float, default=30.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print("| processes × threads | step (ms) | chars/s |\n|---|---|---|")
    for n, threads in ((1, 2), (2, 1)):
        s = train(n, threads, args.steps, tmp / f"run{n}")
        print(f"| {n} × {threads} | {s * 1e3:.0f} | {B * T / s:,.0f} |", flush=True)

    params = parameter_count()
    volume = 4 * params
    bw = args.bandwidth_gbit * 1e9 / 8
    print(f"\nparameters {params:,}: allreduce volume {volume / 1e6:.2f} MB per step; between the two "
          f"processes of this machine one Allreduce takes {allreduce_seconds(params) * 1e3:.2f} ms")
    print(f"estimate at {args.bandwidth_gbit:g} Gbit/s and {args.latency_us:g} µs latency, each machine like "
          "this one running 1 process x 2 threads\n")
    print("| machines N | streams per machine | compute (ms) | allreduce (ms) | chars/s | speed-up "
          "| 128 streams per machine: chars/s | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    full = train(1, 2, args.steps, tmp / "b128")
    for n in (1, 2, 4, 8, 16):
        b = B // n
        compute = full if n == 1 else train(1, 2, args.steps, tmp / f"b{b}", batch=b)
        ring = 0.0 if n == 1 else 2 * (n - 1) / n * volume / bw + 2 * (n - 1) * args.latency_us * 1e-6
        strong, weak = B * T / (compute + ring), n * B * T / (full + ring)
        print(f"| {n} | {b} | {compute * 1e3:.0f} | {ring * 1e3:.1f} | {strong:,.0f} | "
              f"{strong * full / (B * T):.2f}× | {weak:,.0f} | {weak * full / (B * T):.2f}× |", flush=True)

if __name__ == "__main__":
    main()
