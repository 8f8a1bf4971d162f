"""The engine's int8 product (dynamic quantisation, rnnkit.engine.int8) against its float32 product
(rnnkit.engine.gemm) and the peers' dynamically quantised products, at an LSTM layer's shapes:
the input projection (M, K, N) = (T·B, I, 4H) and the step's recurrent product (B, H, 4H).

    python scripts/int8_gemm.py [--threads 1 2] [--rounds N] [--peers] [--cpu-time]

GFLOP/s count 2·M·K·N whatever the precision; the int8 time includes quantising A (every call)
but not W (once). ``--peers`` adds onnxruntime's DynamicQuantizeMatMul (com.microsoft; int8
weights per column) and PyTorch's dynamically quantised Linear (per-channel int8 weights), both
with their own A quantisation inside the call. Contenders are timed in turns (round-robin, the
median of each), so that a change in the machine's load touches them all alike. ``--cpu-time``
counts the calling thread's CPU time instead of the wall clock (one thread only: every contender
then runs on the calling thread), the work itself, much less disturbed by other processes.

On this project's Intel Xeon (AMX, AVX512_VNNI) onnxruntime's product runs on AMX (its MLAS has
AMX int8 kernels since 1.14), the engine's on VNNI: see docs/engine.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rnnkit.engine import gemm, int8, quantize, schedule

SHAPES = [("input T50 B32 I128 H256", 1600, 128, 1024), ("input T50 B64 I256 H512", 3200, 256, 2048),
          ("input T25 B64 I512 H1024", 1600, 512, 4096), ("step B32 H256", 32, 256, 1024),
          ("step B64 H512", 64, 512, 2048), ("step B64 H1024", 64, 1024, 4096)]


def _ort(w: np.ndarray, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    qw = int8.quantize(w)                                     # the same int8 weights and scales
    K, N = w.shape
    inits = [numpy_helper.from_array(quantize.unpack(qw).copy(), "B"),
             numpy_helper.from_array(qw.scale[:N].copy(), "b_scale"),
             numpy_helper.from_array(np.zeros(N, np.int8), "b_zero_point")]
    node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale", "b_zero_point"], ["Y"],
                            domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, K])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda a: session.run(None, {"A": a})


def _torch(w: np.ndarray, threads: int):
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    torch.set_num_threads(threads)
    linear = torch.nn.Linear(w.shape[0], w.shape[1], bias=False)
    linear.weight.data = torch.from_numpy(np.ascontiguousarray(w.T))
    model = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear: per_channel_dynamic_qconfig})

    def call(a):
        with torch.inference_mode():
            return model(torch.from_numpy(a))
    return call


def contenders(a: np.ndarray, w: np.ndarray, threads: int, peers: bool) -> dict:
    c = np.empty((a.shape[0], w.shape[1]), np.float32)
    panels, qw = gemm.pack(w, own=True), int8.quantize(w)
    out = {"float32": lambda: gemm.gemm_packed(a, panels, c), "int8": lambda: int8.matmul(a, qw, c)}
    if peers:
        ort_call, torch_call = _ort(w, threads), _torch(w, threads)
        out["ort int8"], out["torch int8"] = (lambda: ort_call(a)), (lambda: torch_call(a))
    return out


def measure(fns: dict, rounds: int, calls: int, clock) -> dict:
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t = clock()
            for _ in range(calls):
                fn()
            times[name].append((clock() - t) / calls)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--peers", action="store_true")
    parser.add_argument("--cpu-time", action="store_true")
    args = parser.parse_args()
    if args.cpu_time and args.threads != [1]:
        parser.error("--cpu-time measures one thread: give --threads 1")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    rng = np.random.default_rng(0)
    for threads in args.threads:
        schedule.set_num_threads(threads)
        print(f"threads={threads}  loadavg before: {' '.join(open('/proc/loadavg').read().split()[:3])}")
        for name, M, K, N in SHAPES:
            a = np.tanh(rng.standard_normal((M, K))).astype(np.float32)
            w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
            fns = contenders(a, w, threads, args.peers)
            times = measure(fns, args.rounds, max(1, int(2e8 / (2 * M * K * N))), clock)
            cells = "  ".join(f"{k} {2 * M * K * N / t / 1e9:6.1f} ({t * 1e6:7.1f} µs)" for k, t in times.items())
            print(f"  {name:25s} ({M}, {K}, {N})  {cells}  int8/float32 ×{times['float32'] / times['int8']:.2f}")
        print(f"  loadavg after: {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
