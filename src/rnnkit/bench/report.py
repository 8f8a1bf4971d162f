"""The benchmark's tables, as Markdown rows printed while the run goes on."""

from __future__ import annotations

LAYER_HEADER = (
    "| point | train rnnkit | torch | torch/rnnkit | GEMM floor | rnnkit GFLOP/s | of peak | floor/rnnkit "
    "| infer rnnkit | torch | onnxruntime | torch/rnnkit | ort/rnnkit | train peak MiB rnnkit / torch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)
LOW_HEADER = (
    "| low precision | train rnnkit | torch | torch/rnnkit | rnnkit float32/this "
    "| infer rnnkit | torch | onnxruntime | torch/rnnkit | ort/rnnkit | rnnkit float32/this |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)
STREAM_HEADER = "| streaming step | rnnkit | torch | torch/rnnkit |\n|---|---|---|---|"


def ms(result: dict, key: str) -> str:
    if "skipped" in result:
        return "skipped"
    if "error" in result:
        return "failed"
    value = result.get(key)
    if value is None:
        return "—"
    return f"{value * 1e3:.3g} ms" if value >= 1e-3 else f"{value * 1e6:.3g} µs"


def ratio(derived: dict, key: str, percent: bool = False) -> str:
    value = derived.get(key)
    if value is None:
        return "—"
    return f"{value:.0%}" if percent else f"{value:.2f}×"


def mib(result: dict) -> str:
    value = result.get("train_peak_mib")
    return "—" if value is None else f"{value:.1f}"


def layer_row(row: dict) -> str:
    r, d = row["results"], row["derived"]
    gflops = d.get("train_gflops")
    cells = [
        row["name"], ms(r["rnnkit"], "train"), ms(r["torch"], "train"), ratio(d, "train_vs_torch"),
        ms(r["floor"], "train"), "—" if gflops is None else f"{gflops:.1f}", ratio(d, "train_peak_share", True),
        ratio(d, "train_floor_fraction", True),
        ms(r["rnnkit"], "infer"), ms(r["torch"], "infer"), ms(r["onnxruntime"], "infer"),
        ratio(d, "infer_vs_torch"), ratio(d, "infer_vs_onnxruntime"), f"{mib(r['rnnkit'])} / {mib(r['torch'])}",
    ]
    return "| " + " | ".join(cells) + " |"


def low_row(row: dict) -> str:
    """A low-precision point: rnnkit against each peer at that precision and against its own float32."""
    r, d = row["results"], row["derived"]
    cells = [row["name"], ms(r["rnnkit"], "train"), ms(r["torch"], "train"), ratio(d, "train_vs_torch"),
             ratio(d, "train_vs_float32"), ms(r["rnnkit"], "infer"), ms(r["torch"], "infer"),
             ms(r["onnxruntime"], "infer"), ratio(d, "infer_vs_torch"), ratio(d, "infer_vs_onnxruntime"),
             ratio(d, "infer_vs_float32")]
    return "| " + " | ".join(cells) + " |"


def stream_row(row: dict) -> str:
    r = row["results"]
    return f"| {row['name']} | {ms(r['rnnkit'], 'step')} | {ms(r['torch'], 'step')} | {ratio(row['derived'], 'step_vs_torch')} |"


def notes(record: dict) -> list[str]:
    """Why a peer is missing, once per reason (e.g. torch not installed, no peephole LSTM)."""
    seen = []
    for row in record["layers"] + record["low_precision"] + record["stream"]:
        for name, result in row["results"].items():
            for kind in ("skipped", "error"):
                if kind in result:
                    line = f"{name} {kind} ({row['name']}): {result[kind]}"
                    if kind == "error" or all(result[kind] not in s for s in seen):
                        seen.append(line)
    return seen


def machine_line(machine: dict) -> str:
    v = machine["versions"]
    peers = ", ".join(f"{k} {v[k]}" for k in ("numpy", "numba", "torch", "onnxruntime") if v.get(k))
    return f"{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}; {peers}"


def engine_line(machine: dict) -> str:
    """Which GEMM provider and kernel rnnkit runs, and the BLAS NumPy loaded (unused by rnnkit)."""
    e = machine.get("engine", {})
    if not e.get("enabled"):
        return f"rnnkit: NumPy reference (the engine is off: {e.get('why', 'RNNKIT_ENGINE=0')})"
    line = (f"rnnkit engine: its own micro-kernel, {e['isa']} ({e['vector_bits']}-bit vectors, "
            f"{e['float32_lanes']} float32 lanes), tiles {'/'.join(e['tiles'])}, {e['threads']} threads "
            f"(Numba {e['numba']}, {e['threading_layer']})")
    blas = e.get("numpy_blas")
    if blas:
        line += f"; NumPy's BLAS: {blas['internal_api']} {blas['version']} ({blas['architecture']}), not used by rnnkit"
    return line


def peak_line(peak: dict) -> str:
    from rnnkit.bench.contenders import PEAK_SHAPE
    m, k, n = PEAK_SHAPE
    parts = ", ".join(f"{name} {r['gflops']:.0f}" if "gflops" in r else f"{name} {r.get('skipped', 'failed')}"
                      for name, r in peak["results"].items())
    if not peak.get("gflops"):
        return f"machine float32 GEMM peak: not measured ({parts})"
    return (f"machine float32 GEMM peak: {peak['gflops']:.0f} GFLOP/s, by {peak['by']} "
            f"(({m}×{k})·({k}×{n}); {parts} GFLOP/s)")
