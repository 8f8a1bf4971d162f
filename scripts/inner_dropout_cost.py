"""What dropout inside the recurrence costs: a training step (forward + backward, masks drawn) of
one layer with ``recurrent_dropout`` and/or ``zoneout`` against the plain layer, on the engine.

    python scripts/inner_dropout_cost.py [--size T B I H] [--repeats N] [--cells lstm gru rnn]
                                         [--cpu-time]

``--cpu-time`` runs the engine on one thread and counts the calling thread's CPU time instead of
the wall clock: the work itself, much less disturbed by other processes on a loaded machine.

The contenders are timed in turns (round-robin, N rounds, the median of each), so that a change in
the machine's load touches them all alike; each ratio is a time over the plain layer's, for the
median and for the fastest step (the one least disturbed by other work on a shared machine).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from rnnkit.kinds import layer_class

VARIANTS = {"plain": {}, "recurrent_dropout=0.25": {"recurrent_dropout": 0.25}, "zoneout=0.1": {"zoneout": 0.1},
            "both": {"recurrent_dropout": 0.25, "zoneout": 0.1}}


def step(layer, x, dout) -> None:
    layer(x)
    layer.backward(dout)


def measure(cell: str, size: tuple[int, int, int, int], repeats: int, clock=time.perf_counter) -> dict[str, list[float]]:
    T, B, I, H = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)
    layers = {name: layer_class(cell)(I, H, rng=1, **kw).train() for name, kw in VARIANTS.items()}
    for layer in layers.values():                       # compile and warm the pools
        step(layer, x, dout)
        step(layer, x, dout)
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(repeats):
        for name, layer in layers.items():
            start = clock()
            step(layer, x, dout)
            times[name].append(clock() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=4, default=(50, 32, 128, 256), metavar=("T", "B", "I", "H"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--cpu-time", action="store_true", help="one thread, its CPU time")
    args = parser.parse_args()
    clock = time.perf_counter
    if args.cpu_time:
        rnnkit.engine.BACKEND.set_num_threads(1)
        clock = time.thread_time
    print(f"engine threads {rnnkit.engine.BACKEND.num_threads()}, size (T, B, I, H) = {tuple(args.size)}, "
          f"float32, {args.repeats} training steps each, {'CPU time' if args.cpu_time else 'wall clock'}")
    for cell in args.cells:
        times = measure(cell, tuple(args.size), args.repeats, clock)
        for stat in (np.median, np.min):
            value = {name: float(stat(t)) for name, t in times.items()}
            print(f"{cell} {stat.__name__:6s}: " + ", ".join(
                f"{name} {v * 1e3:.1f} ms ({v / value['plain']:.3f}x)" for name, v in value.items()))


if __name__ == "__main__":
    main()
