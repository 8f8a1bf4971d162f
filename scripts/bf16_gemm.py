"""GFLOP/s of the engine's bfloat16 products against its float32 ones (and PyTorch's), at the
shapes of the layers' products.

    PYTHONPATH=src python scripts/bf16_gemm.py [--threads 1 2] [--torch]

Input projections: (M, K, N) = (T·B, I, 4H); per-step recurrent products: (B, H, 4H). Each product
is timed with its weights packed beforehand (a layer packs once per call), on each bfloat16 unit
the CPU has ("amx", "avx512bf16"): the unit's name alone includes rounding A to bfloat16 (a layer's
activations change every call), "<unit> kernel" does not. C starts on a 64-byte boundary, as
PyTorch's outputs do (NumPy's large arrays start 16 bytes past one, which splits every row of an AMX
tile store over two cache lines; "amx C+16" shows that case). The contenders of a shape are timed
in turn, one call each, for at least ``--seconds``; each one's fastest call is reported.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rnnkit.engine import bf16, gemm
from rnnkit.engine.schedule import set_num_threads

PROJECTIONS = [(50, 32, 128, 256), (50, 64, 256, 512), (25, 64, 512, 1024)]    # (T, B, I, H)
STEPS = [(32, 256), (64, 512), (64, 1024)]                                       # (B, H)


def fastest(fns: dict, seconds: float, min_rounds: int = 10) -> dict:
    """name → the shortest time of one call of fns[name], the calls taken in turn (so that the other
    work on the machine weighs on all alike) for at least ``seconds``, after a warm-up call each."""
    for fn in fns.values():
        fn()
    times, start, rounds = dict.fromkeys(fns, float("inf")), time.perf_counter(), 0
    while rounds < min_rounds or time.perf_counter() - start < seconds:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - t0)
        rounds += 1
    return times


def aligned(shape: tuple, offset: int = 0) -> np.ndarray:
    """An uninitialised float32 array starting ``offset`` bytes past a 64-byte boundary."""
    n = int(np.prod(shape))
    buf = np.empty(n + 32, np.float32)
    start = ((offset - buf.ctypes.data) % 64) // 4
    return buf[start:start + n].reshape(shape)


def torch_timers(a: np.ndarray, b: np.ndarray) -> dict:
    import torch
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ha, hb = ta.bfloat16(), tb.bfloat16()
    return {"torch f32": lambda: torch.mm(ta, tb), "torch bf16": lambda: torch.mm(ha, hb)}


def timers(M: int, K: int, N: int, with_torch: bool) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c, c16 = aligned((M, N)), aligned((M, N), 16)
    p32, p16 = gemm.pack(b, own=True), bf16.pack(b).copy()
    a16 = bf16.round_rows(a).copy()
    out = {"f32": lambda: gemm.gemm_packed(a, p32, c)}
    for on in bf16.units():
        out[on] = lambda on=on: bf16.gemm_packed(bf16.round_rows(a), p16, c, on=on)
        out[f"{on} kernel"] = lambda on=on: bf16.gemm_packed(a16, p16, c, on=on)
    if "amx" in out:
        out["amx C+16"] = lambda: bf16.gemm_packed(bf16.round_rows(a), p16, c16, on="amx")
    return out | (torch_timers(a, b) if with_torch else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--torch", action="store_true", help="also time torch.mm in float32 and bfloat16")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per shape")
    args = parser.parse_args()
    print("bfloat16 units here:", bf16.units())
    shapes = [(f"proj T={T} B={B} I={I} H={H}", T * B, I, 4 * H) for T, B, I, H in PROJECTIONS]
    shapes += [(f"step B={B} H={H}", B, H, 4 * H) for B, H in STEPS]
    with open("/proc/loadavg") as f:
        print("loadavg before:", f.read().strip())
    for threads in args.threads:
        set_num_threads(threads)
        if args.torch:
            import torch
            torch.set_num_threads(threads)
        for name, M, K, N in shapes:
            times = fastest(timers(M, K, N, args.torch), args.seconds)
            rates = {k: 2 * M * K * N / t / 1e9 for k, t in times.items()}
            cells = "  ".join(f"{k} {v:6.1f}" for k, v in rates.items())
            ratios = "  ".join(f"{on}/f32 {rates[on] / rates['f32']:.2f}x" for on in bf16.units())
            print(f"{threads} thr  {name:26s} ({M}, {K}, {N})  GFLOP/s: {cells}  {ratios}")
    with open("/proc/loadavg") as f:
        print("loadavg after:", f.read().strip())


if __name__ == "__main__":
    main()
