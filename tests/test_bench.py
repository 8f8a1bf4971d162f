"""`rnnkit bench`: its work counts, its workers and its command line.

These tests check what the benchmark computes, never how fast anything is.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import rnnkit
import rnnkit.engine
from rnnkit.bench.lm import _torch_model, _torch_score, run_lm_bench
from rnnkit.bench.points import Point, grid, low_precision_grid
from rnnkit.bench.report import engine_line, peak_line
from rnnkit.bench.runner import BenchOptions, compare_with_float32, derive, machine, measure_peak, run_worker
from rnnkit.cli import main

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

def test_gemm_flops_by_hand():
    p = Point("lstm", T=2, B=3, I=4, H=5)
    # forward: T·B rows × 4H outputs × (I + H) inputs multiply-adds = 6 · 20 · 9 = 1080.
    assert p.gemm_flops(train=False) == 2 * 1080
    assert p.gemm_flops(train=True) == 3 * 2 * 1080
    stack = Point("gru", T=2, B=3, I=4, H=5, layers=2, bidirectional=True)
    assert stack.cells() == [(4, 5), (4, 5), (10, 5), (10, 5)]
    assert stack.gemm_flops(train=False) == 2 * 6 * 15 * (2 * 9 + 2 * 15)


def test_grid_covers_the_issue():
    points = grid()
    assert {(p.cell, p.T, p.B, p.I, p.H) for p in points if p.layers == 1 and not p.peephole and not p.layer_norm} == {
        (c, *s) for c in ("lstm", "gru", "rnn")
        for s in [(100, 1, 32, 32), (100, 8, 64, 64), (50, 32, 128, 256), (50, 64, 256, 512), (25, 64, 512, 1024)]}
    assert any(p.bidirectional and p.layers == 2 for p in points) and any(p.peephole for p in points)
    assert {(p.T, p.B, p.I, p.H) for p in points if p.layer_norm} == {(50, 32, 128, 256), (50, 64, 256, 512)}


def test_layer_norm_contenders():
    """The layer-normalised LSTM: rnnkit's layer, the PyTorch loop of LayerNorm modules, and
    onnxruntime running its opset-17 export (LayerNormalization inside a Scan)."""
    options = BenchOptions(min_time=0.01)
    point = Point("lstm", 5, 2, 3, 4, layer_norm=True)
    assert point.name.startswith("lstm layer_norm T=5") and point.options() == {"layer_norm": True}
    job = {"kind": "layer", "point": point.to_json(), "min_time": 0.01}
    for name in ("rnnkit", "torch"):
        r = run_worker(dict(job, contender=name), options)
        assert 0 < r["infer"] < r["train"] < 1, (name, r)
    r = run_worker(dict(job, contender="onnxruntime"), options)
    assert "skipped" not in r and 0 < r["infer"] < 1, r


def test_derived_ratios():
    p = Point("rnn", T=10, B=2, I=3, H=4)
    d = derive(p, {"rnnkit": {"train": 0.5, "infer": 0.1}, "torch": {"train": 1.0, "infer": 0.05},
                   "onnxruntime": {"infer": 0.2}, "floor": {"train": 0.25, "infer": 0.1}})
    assert d["train_vs_torch"] == 2.0 and d["infer_vs_torch"] == 0.5 and d["infer_vs_onnxruntime"] == 2.0
    assert d["train_floor_fraction"] == 0.5 and d["infer_floor_fraction"] == 1.0
    assert d["train_gflops"] == pytest.approx(p.gemm_flops(True) / 0.5 / 1e9)
    assert "train_peak_share" not in d
    shared = derive(p, {"rnnkit": {"train": 0.5}}, peak=2e-5)
    assert shared["train_peak_share"] == pytest.approx(shared["train_gflops"] / 2e-5)


def test_peak_is_measured_by_each_library():
    options = BenchOptions(min_time=0.05)
    peak = measure_peak(options)
    assert set(peak["results"]) == {"rnnkit", "numpy", "torch"}
    assert all(r["gflops"] > 1 for r in peak["results"].values())
    assert peak["gflops"] == max(r["gflops"] for r in peak["results"].values())
    assert peak_line(peak).startswith(f"machine float32 GEMM peak: {peak['gflops']:.0f} GFLOP/s, by {peak['by']}")


def test_engine_line_names_the_kernel():
    line = engine_line(machine())
    isa = rnnkit.engine.describe()["isa"]
    assert line.startswith(f"rnnkit engine: its own micro-kernel, {isa} (") and "threads" in line
    assert engine_line({"engine": {"enabled": False, "why": "no numba"}}) == \
        "rnnkit: NumPy reference (the engine is off: no numba)"


def test_workers_time_and_skip():
    options = BenchOptions(min_time=0.01)
    job = {"kind": "layer", "point": Point("lstm", 5, 2, 3, 4, peephole=True).to_json(), "min_time": 0.01}
    for name in ("rnnkit", "floor"):
        r = run_worker(dict(job, contender=name), options)
        assert 0 < r["infer"] < r["train"] < 1, (name, r)
    assert run_worker(dict(job, contender="onnxruntime"), options).keys() == {"infer"}
    assert run_worker(dict(job, contender="torch"), options) == {"skipped": "PyTorch has no peephole LSTM"}
    stream = {"kind": "stream", "point": {"cell": "gru", "H": 8}, "min_time": 0.01}
    assert 0 < run_worker(dict(stream, contender="torch"), options)["step"] < 0.01
    assert "error" in run_worker({"contender": "nobody", **job}, options)


def test_peak_memory_sees_the_training_step():
    """A training step of T=50, B=32, H=256 keeps (T, B, 4H) float32 gates: 6.25 MiB at least."""
    options = BenchOptions(min_time=0.01)
    job = {"kind": "memory", "point": Point("lstm", 50, 32, 128, 256).to_json(), "min_time": 0.01}
    for name in ("rnnkit", "torch"):
        peak = run_worker(dict(job, contender=name), options, memory=True)["train_peak_mib"]
        assert 6.25 < peak < 200, (name, peak)


def test_bench_quick_command(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--min-time", "0.02", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [row["name"] for row in record["layers"]] == [p.name for p in grid(quick=True)]
    for row in record["layers"]:
        for name in ("rnnkit", "torch", "onnxruntime", "floor"):
            assert row["results"][name]["infer"] > 0
        assert row["derived"]["train_gflops"] > 0 and row["results"]["rnnkit"]["train_peak_mib"] >= 0
    assert record["stream"][0]["results"]["rnnkit"]["step"] > 0
    printed = capsys.readouterr().out
    assert "| lstm T=100 B=1 I=32 H=32 |" in printed and "| streaming step |" in printed


def test_torch_lm_is_scored_like_rnnkit():
    """The PyTorch side of --lm, given rnnkit's weights, scores held-out text exactly as rnnkit does."""
    from rnnkit.lm.infer import score
    from rnnkit.lm.model import CharLM, ModelConfig
    ids = np.random.default_rng(0).integers(0, 11, 5000)
    ours = CharLM(ModelConfig(11, "lstm", 8, 16, 2, 0.0, False), rng=0)
    theirs = _torch_model(11, embed=8, hidden=16, layers=2)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert _torch_score(theirs, ids) == pytest.approx(score(ours, ids).bits_per_char, rel=1e-5)


def test_lm_bench_trains_both(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x + 1\n" * 300, encoding="utf-8")
    lm = run_lm_bench(1.0, 2, str(tmp_path / "runs"), (str(text),))
    for name in ("rnnkit", "torch"):
        r = lm["results"][name]
        assert r["steps"] >= 1 and r["chars"] == r["steps"] * 32 * 64 and r["chars_per_s"] > 0
        assert 0 < r["bits_per_char"] < math.log2(20), (name, r)


def test_low_precision_points_are_the_gemm_bound_gated_cells():
    points = low_precision_grid(("float32", "bfloat16", "int8"))
    assert {(p.precision, p.cell, p.T, p.B, p.I, p.H) for p in points} == {
        (prec, cell, *size) for prec in ("bfloat16", "int8") for cell in ("lstm", "gru")
        for size in [(50, 32, 128, 256), (50, 64, 256, 512), (25, 64, 512, 1024)]}
    assert [p.name for p in low_precision_grid(("int8",), quick=True)] == ["lstm int8 T=50 B=32 I=128 H=256"]
    assert low_precision_grid(("float32",)) == []


def test_low_precision_contenders():
    """Each peer's own low precision runs, what a peer lacks is skipped with the reason."""
    options = BenchOptions(min_time=0.01)

    def job(cell, precision, contender):
        point = Point(cell, 6, 2, 8, 16, precision=precision).to_json()
        return run_worker({"contender": contender, "kind": "layer", "point": point, "min_time": 0.01}, options)
    from rnnkit.precision import bfloat16_usable
    r = job("lstm", "bfloat16", "torch")
    assert (0 < r["infer"] < r["train"] < 1) if bfloat16_usable() else "no bfloat16 unit" in r["skipped"], r
    r = job("gru", "bfloat16", "rnnkit")                                # under rnnkit.autocast
    assert (0 < r["infer"] < r["train"] < 1) if bfloat16_usable() else "no bfloat16 unit" in r["skipped"], r
    from rnnkit.precision import int8_usable
    r = job("lstm", "int8", "rnnkit")                                   # rnnkit.quantize_dynamic
    assert (r.keys() == {"infer"} and 0 < r["infer"] < 1) if int8_usable() else "no VNNI" in r["skipped"], r
    assert job("lstm", "int8", "torch").keys() == {"infer"}             # quantised: inference only
    assert job("lstm", "int8", "onnxruntime").keys() == {"infer"}
    assert job("rnn", "int8", "onnxruntime")["skipped"].startswith("onnxruntime's quantize_dynamic quantises none of ")
    assert job("gru", "bfloat16", "onnxruntime") == {"skipped": "onnxruntime's CPU provider has no bfloat16 recurrent operators"}
    assert job("gru", "int8", "floor") == {"skipped": "the GEMM floor is that of the float32 products"}


def test_low_precision_is_compared_with_its_float32_twin():
    twin = {"point": Point("lstm", 5, 2, 3, 4).to_json(), "results": {"rnnkit": {"train": 0.6, "infer": 0.2}}}
    low = {"point": Point("lstm", 5, 2, 3, 4, precision="bfloat16").to_json(),
           "results": {"rnnkit": {"train": 0.3, "infer": 0.1}}, "derived": {}}
    compare_with_float32([twin], low)
    assert low["derived"] == {"train_vs_float32": 2.0, "infer_vs_float32": 2.0}
    lone = dict(low, derived={})
    compare_with_float32([], lone)
    assert lone["derived"] == {}


def test_bench_refuses_an_unknown_precision(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--precision", "float32,fp8"])
    assert "precision must be one of float32, bfloat16, int8, got 'fp8'" in capsys.readouterr().err
