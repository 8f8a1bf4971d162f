"""Inference time of exported graphs in onnxruntime next to rnnkit's forward (docs/deploy.md).

    python scripts/bench_deploy.py [--min-time 1] [--threads 2]

Every row runs each contender in a fresh process (``rnnkit.bench.runner.thread_env``: the same
thread count for every library), times the median call with ``rnnkit.bench.measure.median_time``
and prints a Markdown table. Inference only: rnnkit under ``no_grad``, onnxruntime's session of
``rnnkit.onnx.to_model`` of the same module (same weights, same input).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROWS = [  # name, module kind and arguments, input (T, B) or "step": one token, state carried
    ("LSTM 1×32, T=100, B=1", {"kind": "LSTM", "args": [32, 32]}, [100, 1]),
    ("LSTM 1×256, T=50, B=32", {"kind": "LSTM", "args": [128, 256]}, [50, 32]),
    ("GRU 2×256 bidirectional, T=50, B=32", {"kind": "GRU", "args": [128, 256], "kw": {"num_layers": 2, "bidirectional": True}}, [50, 32]),
    ("LSTM 1×256, peepholes, T=50, B=32", {"kind": "LSTM", "args": [128, 256], "kw": {"peephole": True}}, [50, 32]),
    ("LSTM 1×256, proj_size 128 (Scan), T=50, B=32", {"kind": "LSTM", "args": [128, 256], "kw": {"proj_size": 128}}, [50, 32]),
    ("GRU 1×256 float64 (Scan), T=50, B=32", {"kind": "GRU", "args": [128, 256], "kw": {"dtype": "float64"}}, [50, 32]),
    ("language model, 200 characters at once, B=1", {"kind": "CharLM"}, [200, 1]),
    ("language model, one generation step, B=1", {"kind": "CharLM"}, "step"),
]
CONTENDERS = ("rnnkit", "onnxruntime")


def build(spec: dict):
    import rnnkit
    from rnnkit.lm.model import CharLM, ModelConfig
    if spec["kind"] == "CharLM":          # the default `rnnkit train` model on the stdlib's 164 symbols
        return CharLM(ModelConfig(165, "gru", embed=64, hidden=256, layers=2), rng=0).eval()
    kw = dict(spec.get("kw", {}))
    kw["dtype"] = np.dtype(kw.get("dtype", "float32"))
    return getattr(rnnkit, spec["kind"])(*spec["args"], rng=0, **kw).eval()


def worker(contender: str, spec: dict, shape, min_time: float) -> float:
    import rnnkit
    import rnnkit.onnx
    from rnnkit.bench.measure import median_time
    module = build(spec)
    rng = np.random.default_rng(1)
    lm = spec["kind"] == "CharLM"
    T, B = (1, 1) if shape == "step" else shape
    x = rng.integers(1, 165, (T, B)) if lm else rng.standard_normal((T, B, spec["args"][0])).astype(module.dtype)
    if contender == "rnnkit":
        state = module.initial_state(B) if lm else None

        def call():
            nonlocal state
            with rnnkit.no_grad():
                _, new = module(x, state)
            if shape == "step":
                state = new
        return median_time(call, min_time, inner=20 if shape == "step" else 1)
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(module), threads=int(os.environ["RNNKIT_BENCH_THREADS"]))
    feeds = {"tokens" if lm else "input": x, **rnnkit.onnx.zero_state_feeds(sess, B)}

    def call_ort():
        nonlocal feeds
        out = sess.run(None, feeds)
        if shape == "step":
            feeds = {"tokens": x, **dict(zip([i.name for i in sess.get_inputs()][1:], out[1:]))}
    return median_time(call_ort, min_time, inner=20 if shape == "step" else 1)


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> int:
    from rnnkit.bench.runner import thread_env
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(worker(job["contender"], job["spec"], job["shape"], args.min_time)))
        return 0
    print("| model and input | rnnkit | onnxruntime | rnnkit / onnxruntime |\n|---|---|---|---|")
    for name, spec, shape in ROWS:
        times = {}
        for contender in CONTENDERS:
            job = json.dumps({"contender": contender, "spec": spec, "shape": shape})
            proc = subprocess.run([sys.executable, __file__, "--min-time", str(args.min_time), "--worker", job],
                                  env=thread_env(args.threads), capture_output=True, text=True, check=True)
            times[contender] = float(proc.stdout.strip().splitlines()[-1])
        ratio = times["rnnkit"] / times["onnxruntime"]
        print(f"| {name} | {fmt(times['rnnkit'])} | {fmt(times['onnxruntime'])} | {ratio:.2f}× |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
