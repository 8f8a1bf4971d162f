"""ONNX export checked in onnxruntime against rnnkit's forward, ONNX import, `rnnkit export`.

Every configuration of the PyTorch parity grid (tests/test_torch_parity.py), plus the options
PyTorch lacks (peepholes, the Cho GRU), is exported once without and once with ``lengths``, and
each graph runs at two batch sizes and two sequence lengths, with and without initial states.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from helpers import Case, as_tuple, doc_block, from_tuple
from rnnkit.cli import main
from rnnkit.lm.model import CharLM, ModelConfig
from test_torch_parity import GRID

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
TOL = {np.float32: 1e-5, np.float64: 1e-12}        # max abs error, relative to max(1, |reference|)
WORST: dict[str, float] = {}
EXTRA = [                                           # what the torch grid cannot hold
    Case("lstm", T=5, B=3, I=3, H=4, peephole=True, bidirectional=True, num_layers=2, lengths=True),
    Case("lstm", T=5, B=2, I=3, H=5, peephole=True, proj_size=2, bidirectional=True, batch_first=True),
    Case("gru", T=5, B=3, I=3, H=4, reset_after=False, bidirectional=True, num_layers=2, lengths=True),
    Case("gru", T=4, B=2, I=2, H=3, reset_after=False, bias=False),
]


def run_both(layer, sess, x, state, lengths):
    """(rnnkit's output and final states, onnxruntime's) for one input; no state: zeros fed."""
    batch = x.shape[0] if layer.batch_first else x.shape[1]
    feeds = {"input": x, **rnnkit.onnx.zero_state_feeds(sess, batch)}
    for name, part in zip(("h0", "c0"), as_tuple(state) if state is not None else ()):
        feeds[name] = part
    if lengths is not None:
        feeds["lengths"] = lengths.astype(np.int64)
    with rnnkit.no_grad():
        out, fin = layer(x, state, lengths=lengths)
    return (out, *as_tuple(fin)), sess.run(None, feeds)


def inputs(case: Case, layer, T: int, B: int, rng, init: bool, lengths: bool):
    c = case.with_(T=T, B=B, unbatched=False, init_state=init, lengths=lengths)
    x, state, lens = c.inputs(rng)
    dtype = layer.dtype
    state = None if state is None else from_tuple(c, tuple(s.astype(dtype) for s in as_tuple(state)))
    return x.astype(dtype), state, lens


def assert_close(name, got, expected, dtype, where):
    assert got.shape == expected.shape, f"{where}: {name} shape {got.shape} vs {expected.shape}"
    assert got.dtype == expected.dtype, f"{where}: {name} dtype {got.dtype} vs {expected.dtype}"
    err = float(np.max(np.abs(got.astype(np.float64) - expected)) / max(1.0, np.max(np.abs(expected))))
    key = np.dtype(dtype).name
    WORST[key] = max(WORST.get(key, 0.0), err)
    assert err <= TOL[dtype], f"{where}: {name} error {err:.3g} > {TOL[dtype]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID + EXTRA, ids=lambda c: f"{c.mode}-L{c.num_layers}")
def test_export_matches_rnnkit(case, dtype):
    layer = case.make(dtype, seed=5).eval()
    rng = np.random.default_rng(3)
    for lengths in (False, True):
        model = rnnkit.onnx.to_model(layer, lengths=lengths)          # full onnx check inside
        sess = rnnkit.onnx.session(model, threads=1)
        for T, B in [(case.T, case.B), (case.T + 4, case.B + 2)]:
            for init in (False, True):
                x, state, lens = inputs(case, layer, T, B, rng, init, lengths)
                expected, got = run_both(layer, sess, x, state, lens)
                where = f"{case} lengths={lens} T={T} B={B} init={init}"
                names = ["output", "h_n", "c_n"]
                assert [o.name for o in sess.get_outputs()] == names[: len(expected)]
                for name, a, b in zip(names, got, expected):
                    assert_close(name, a, b, dtype, where)


def test_report_worst_onnx_error(capsys):
    """Runs after the grid: the largest errors measured (printed for the closing notes) are within
    tolerance in both dtypes, and not zero (which would mean a graph compared with itself)."""
    if not WORST:
        pytest.skip("the export grid did not run in this session")
    with capsys.disabled():
        print("\nlargest ONNX vs rnnkit error:", {k: f"{v:.2e}" for k, v in WORST.items()})
    assert set(WORST) <= {"float32", "float64"}
    for key, err in WORST.items():
        assert 0 < err <= TOL[np.dtype(key).type], f"{key}: largest error {err:.3g}"


def test_graph_uses_standard_recurrent_operators_where_they_fit():
    ops = lambda m: [n.op_type for n in rnnkit.onnx.to_model(m).graph.node]  # noqa: E731
    assert ops(rnnkit.LSTM(3, 4, num_layers=2, peephole=True, rng=0)).count("LSTM") == 2
    assert "GRU" in ops(rnnkit.GRU(3, 4, reset_after=False, rng=0))
    assert "RNN" in ops(rnnkit.RNN(3, 4, nonlinearity="relu", rng=0))
    assert "Scan" in ops(rnnkit.LSTM(3, 4, proj_size=2, rng=0)) and "LSTM" not in ops(rnnkit.LSTM(3, 4, proj_size=2, rng=0))
    assert "Scan" in ops(rnnkit.GRU(3, 4, dtype=np.float64, rng=0))           # onnxruntime's GRU is float32 only
    gru = rnnkit.onnx.to_model(rnnkit.GRU(3, 4, reset_after=False, rng=0))
    node = next(n for n in gru.graph.node if n.op_type == "GRU")
    assert onnx.helper.get_attribute_value(node.attribute[-1]) == 0 and node.attribute[-1].name == "linear_before_reset"


def test_gate_reorder_by_hand():
    """ONNX's LSTM W is [W_i; W_o; W_f; W_c], GRU's [W_z; W_r; W_h]; peepholes P = [i, o, f]."""
    lstm = rnnkit.LSTM(1, 1, peephole=True, bias=False, rng=0)
    lstm.load_state_dict({"weight_ih_l0": np.array([[1], [2], [3], [4]]), "weight_hh_l0": np.zeros((4, 1)),
                          "weight_ci_l0": [5], "weight_cf_l0": [6], "weight_co_l0": [7]})
    init = {t.name: onnx.numpy_helper.to_array(t) for t in rnnkit.onnx.to_model(lstm).graph.initializer}
    assert init["W_l0"].ravel().tolist() == [1, 4, 2, 3] and init["P_l0"].ravel().tolist() == [5, 7, 6]
    gru = rnnkit.GRU(1, 1, bias=False, rng=0)
    gru.load_state_dict({"weight_ih_l0": np.array([[1], [2], [3]]), "weight_hh_l0": np.zeros((3, 1))})
    init = {t.name: onnx.numpy_helper.to_array(t) for t in rnnkit.onnx.to_model(gru).graph.initializer}
    assert init["W_l0"].ravel().tolist() == [2, 1, 3]


@pytest.mark.parametrize("cell", [rnnkit.LSTMCell(3, 4, rng=1), rnnkit.LSTMCell(3, 4, peephole=True, rng=1),
                                  rnnkit.GRUCell(3, 4, rng=1), rnnkit.GRUCell(3, 4, reset_after=False, rng=1),
                                  rnnkit.RNNCell(3, 4, nonlinearity="relu", bias=False, rng=1)],
                         ids=lambda c: repr(c)[:12])
def test_cells(cell):
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(cell))
    rng = np.random.default_rng(0)
    for B in (1, 5):
        x = rng.standard_normal((B, 3)).astype(np.float32)
        state = tuple(rng.standard_normal((B, 4)).astype(np.float32) for _ in range(2 if isinstance(cell, rnnkit.LSTMCell) else 1))
        with rnnkit.no_grad():
            expected = as_tuple(cell(x, state if len(state) == 2 else state[0]))
        got = sess.run(None, {"input": x, **{f"{n}0": s for n, s in zip("hc", state)}})
        assert [o.name for o in sess.get_outputs()] == ["h1", "c1"][: len(expected)]
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, atol=1e-6)
        with rnnkit.no_grad():                                       # zeros fed: a fresh sequence
            zero = as_tuple(cell(x))
        assert [i.name for i in sess.get_inputs()] == ["input", "h0", "c0"][: 1 + len(state)]
        np.testing.assert_allclose(sess.run(None, {"input": x, **rnnkit.onnx.zero_state_feeds(sess, B)})[0],
                                   zero[0], atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_language_model_streams_one_step_at_a_time(cell):
    lm = CharLM(ModelConfig(13, cell, embed=5, hidden=8, layers=2, dropout=0.3), rng=0).eval()
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(lm))
    tokens = np.random.default_rng(1).integers(0, 13, (9, 3))
    with rnnkit.no_grad():
        logits, state = lm(tokens)
    got = sess.run(None, {"tokens": tokens, **rnnkit.onnx.zero_state_feeds(sess, 3)})
    assert [i.name for i in sess.get_inputs()] == ["tokens", "h0", "c0"][: 1 + len(as_tuple(state))]
    assert [o.name for o in sess.get_outputs()] == ["logits", "h_n", "c_n"][: 1 + len(as_tuple(state))]
    for a, b in zip(got, (logits, *as_tuple(state))):
        np.testing.assert_allclose(a, b, atol=1e-5)
    carried, steps = rnnkit.onnx.zero_state_feeds(sess, 3), []
    for t in range(9):                                              # streaming: the state carried
        out = sess.run(None, {"tokens": tokens[t:t + 1], **carried})
        steps.append(out[0][0])
        carried = {f"{name[0]}0": s for name, s in zip(("h_n", "c_n"), out[1:])}
    np.testing.assert_allclose(np.stack(steps), logits, atol=1e-5)


def test_opsets():
    layer = rnnkit.LSTM(3, 4, proj_size=2, bidirectional=True, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    with rnnkit.no_grad():
        expected, _ = layer(x)
    for opset in (14, 21):
        model = rnnkit.onnx.to_model(layer, opset=opset)
        assert model.opset_import[0].version == opset
        sess = rnnkit.onnx.session(model)
        np.testing.assert_allclose(sess.run(None, {"input": x, **rnnkit.onnx.zero_state_feeds(sess, 2)})[0],
                                   expected, atol=1e-6)
    assert rnnkit.onnx.to_model(layer).opset_import[0].version == rnnkit.onnx.DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    for bad, error, message in [(13, ValueError, f"opset must be an integer in [14, {newest}] or None, got 13"),
                                (newest + 1, ValueError, f"got {newest + 1} (the installed onnx knows up to {newest})"),
                                ("19", TypeError, "got str '19'"), (True, TypeError, "got bool")]:
        with pytest.raises(error, match=re.escape(message)):
            rnnkit.onnx.to_model(layer, opset=bad)


def test_export_errors_and_atomic_write(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=r"cannot export a Linear; supported module types: .*CellBase.*CharLM"):
        rnnkit.onnx.export(rnnkit.linear.Linear(2, 3), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="a cell takes one step"):
        rnnkit.onnx.export(rnnkit.GRUCell(2, 3), tmp_path / "m.onnx", lengths=True)
    with pytest.raises(TypeError, match="lengths must be True or False"):
        rnnkit.onnx.export(rnnkit.GRU(2, 3), tmp_path / "m.onnx", lengths=1)
    with pytest.raises(IsADirectoryError, match=re.escape(f"{tmp_path} is a directory")):
        rnnkit.onnx.export(rnnkit.GRU(2, 3), tmp_path)
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")

    def half_write(model, path):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(onnx, "save_model", half_write)
    with pytest.raises(OSError, match="disk full"):
        rnnkit.onnx.export(rnnkit.GRU(2, 3), target)
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    monkeypatch.undo()
    assert rnnkit.onnx.export(rnnkit.GRU(2, 3, rng=0), target) == target
    onnx.checker.check_model(str(target), full_check=True)


def test_without_onnx_import_works_and_export_says_what_to_install():
    code = ("import sys; sys.modules['onnx'] = sys.modules['onnxruntime'] = None\n"
            "import rnnkit, rnnkit.onnx, rnnkit.cli\n"
            "try:\n    rnnkit.onnx.export(rnnkit.GRU(2, 3), 'm.onnx')\n"
            "except rnnkit.onnx.MissingDependency as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'rnnkit[onnx]'" in out


# -- import ----------------------------------------------------------------------------------------
def torch_export(module, path: Path, x, exporter: str) -> None:
    """PyTorch's exporter: "dynamo" (torch's default; it needs onnxscript), "torchscript", or
    "unfolded" (TorchScript without constant folding: the weights are sliced and concatenated by
    nodes of the graph, not stored ready)."""
    torch = pytest.importorskip("torch")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    kw = {} if exporter == "dynamo" else {"dynamic_axes": {"input": {0: "a", 1: "b"}},
                                          "do_constant_folding": exporter == "torchscript"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")                 # torch's deprecation and progress notes
        torch.onnx.export(module, (torch.from_numpy(x),), str(path), dynamo=exporter == "dynamo",
                          input_names=["input"], **kw)


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("LSTM", {"bidirectional": True, "batch_first": True}),
                                     ("GRU", {"bidirectional": True}), ("GRU", {"bias": False}),
                                     ("RNN", {"nonlinearity": "relu", "bidirectional": True})])
@pytest.mark.parametrize("exporter", ["torchscript", "unfolded", "dynamo"])
def test_load_layer_from_pytorch(tmp_path, kind, kw, exporter):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 5, **kw).eval()
    x = np.random.default_rng(0).standard_normal((2, 6, 3) if kw.get("batch_first") else (6, 2, 3)).astype(np.float32)
    torch_export(module, tmp_path / "t.onnx", x, exporter)
    if exporter == "dynamo" and kind == "RNN":                  # the dynamo exporter unrolls nn.RNN into per-step MatMuls
        with pytest.raises(rnnkit.onnx.OnnxImportError, match=r"no LSTM, GRU or RNN node \(its operators: .*MatMul"):
            rnnkit.onnx.load_layer(tmp_path / "t.onnx")
        return
    layer = rnnkit.onnx.load_layer(tmp_path / "t.onnx")
    assert type(layer).__name__ == kind and layer.batch_first == kw.get("batch_first", False)
    assert layer.bidirectional == kw.get("bidirectional", False) and layer.bias == kw.get("bias", True)
    with torch.no_grad():
        t_out, t_fin = module(torch.from_numpy(x))
    out, fin = layer(x)
    np.testing.assert_allclose(out, t_out.numpy(), atol=1e-6)
    for a, b in zip(as_tuple(fin), t_fin if isinstance(t_fin, tuple) else (t_fin,)):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-6)
    graph_out = rnnkit.onnx.session(tmp_path / "t.onnx").run(None, {"input": x})[0]   # the graph itself
    np.testing.assert_allclose(out, graph_out, atol=1e-6)


@pytest.mark.parametrize("layer", [
    rnnkit.LSTM(3, 4, peephole=True, bidirectional=True, rng=1), rnnkit.GRU(3, 4, reset_after=False, rng=1),
    rnnkit.LSTM(3, 4, bias=False, batch_first=True, rng=2), rnnkit.RNN(3, 4, nonlinearity="relu", rng=3),
], ids=lambda m: repr(m)[:4])
def test_load_layer_round_trips_rnnkit_exports(tmp_path, layer):
    rnnkit.onnx.export(layer, tmp_path / "m.onnx")
    back = rnnkit.onnx.load_layer(tmp_path / "m.onnx")
    assert repr(back) == repr(layer) and getattr(back, "peephole", None) == getattr(layer, "peephole", None)
    assert getattr(back, "reset_after", None) == getattr(layer, "reset_after", None)
    for name, a in layer.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], a, err_msg=name)


def _edit_node(model, **attrs):
    node = next(n for n in model.graph.node if n.op_type in ("LSTM", "GRU", "RNN"))
    for key, value in attrs.items():
        node.attribute.append(onnx.helper.make_attribute(key, value))
    return model


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_text("not a model"), "{p}: not an ONNX model"),
    (lambda p: None, "{p}: no such file"),
    (lambda p: onnx.save_model(rnnkit.onnx.to_model(rnnkit.LSTM(2, 3, proj_size=1, rng=0)), p),
     "{p}: the graph has no LSTM, GRU or RNN node (its operators: "),
    (lambda p: rnnkit.onnx.export(rnnkit.GRU(2, 3, num_layers=2, rng=0), p),
     "{p}: the graph has 2 recurrent nodes (GRU 'node_gru_l0', GRU 'node_gru_l1')"),
    (lambda p: onnx.save_model(_edit_node(rnnkit.onnx.to_model(rnnkit.LSTM(2, 3, rng=0)), clip=3.0), p),
     "{p}: LSTM node 'node_lstm_l0' clips its pre-activations (clip=3.0)"),
    (lambda p: onnx.save_model(_edit_node(rnnkit.onnx.to_model(rnnkit.LSTM(2, 3, rng=0)), input_forget=1), p),
     "input_forget=1"),
    (lambda p: onnx.save_model(_edit_node(rnnkit.onnx.to_model(rnnkit.GRU(2, 3, rng=0)),
                                          activations=["HardSigmoid", "Tanh"]), p),
     "uses activations ['HardSigmoid', 'Tanh']; rnnkit supports ['Sigmoid', 'Tanh']"),
    (lambda p: onnx.save_model(_edit_node(rnnkit.onnx.to_model(rnnkit.RNN(2, 3, rng=0)), direction="reverse"), p),
     "runs direction='reverse'"),
])
def test_load_layer_errors(tmp_path, make, message):
    path = tmp_path / "m.onnx"
    make(path)
    with pytest.raises(rnnkit.onnx.OnnxImportError) as info:
        rnnkit.onnx.load_layer(path)
    assert message.format(p=path) in str(info.value)


# -- rnnkit export and generation with onnxruntime alone -------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lm")
    (tmp / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 80, encoding="utf-8")
    run = tmp / "run"
    assert main(["train", str(tmp / "corpus.txt"), "--cell", "lstm", "--hidden", "16", "--embed", "8",
                 "--layers", "2", "--batch-size", "4", "--seq-len", "16", "--max-steps", "40",
                 "--sample-chars", "0", "--out", str(run)]) == 0
    return run


def test_export_command_and_example_generate_identical_text(trained_run, tmp_path, capsys):
    model = tmp_path / "lm.onnx"
    assert main(["export", str(trained_run), str(model)]) == 0
    assert f"wrote {model}" in capsys.readouterr().out
    vocab = json.loads((tmp_path / "lm.vocab.json").read_text(encoding="utf-8"))
    assert vocab["chars"] == json.loads((trained_run / "vocab.json").read_text())["chars"] and vocab["cell"] == "lstm"
    onnx.checker.check_model(str(model), full_check=True)
    for args in (["--prime", "the ", "--length", "120", "--seed", "3"],
                 ["--prime", "fox", "--length", "60", "--seed", "1", "--temperature", "1.3", "--top-k", "5"]):
        assert main(["generate", str(trained_run), *args]) == 0
        expected = capsys.readouterr().out
        got = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_generate.py"), str(model), *args],
                             capture_output=True, text=True, check=True, encoding="utf-8").stdout
        assert got == expected and len(got) > 60


def test_docs_show_the_tested_example():
    """docs/deploy.md shows examples/onnx_generate.py, the script the test above runs, in full."""
    script = (ROOT / "examples" / "onnx_generate.py").read_text(encoding="utf-8")
    assert doc_block("docs/deploy.md", "onnx-generate") == script


@pytest.mark.parametrize("argv,message", [
    (["export", "{run}", "{tmp}/m.txt"], "MODEL.onnx must end in .onnx"),
    (["export", "{tmp}", "{tmp}/m.onnx"], "no checkpoint here"),
])                                   # --opset out of range: test_cli_errors sweeps every numeric option
def test_export_command_errors(trained_run, tmp_path, capsys, argv, message):
    assert main([a.format(run=trained_run, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit export: error: ") and message in err
    assert not list(tmp_path.glob("*.onnx"))


def test_example_refuses_a_vocabulary_that_does_not_match(trained_run, tmp_path):
    model = tmp_path / "lm.onnx"
    assert main(["export", str(trained_run), str(model)]) == 0
    vocab = tmp_path / "lm.vocab.json"
    data = json.loads(vocab.read_text())
    vocab.write_text(json.dumps(dict(data, token_bytes=data["token_bytes"][:-2])))    # what the example reads
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_generate.py"), str(model)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and f"{vocab}: {len(data['chars']) - 1} symbols, but the model predicts" in proc.stderr


def test_runtime_rejects_shapes_that_do_not_fit():
    """The graph declares the feature and state sizes, so onnxruntime names the input that is wrong."""
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(rnnkit.LSTM(3, 4, num_layers=2, rng=0)))
    x, zeros = np.zeros((5, 2, 3), np.float32), rnnkit.onnx.zero_state_feeds(sess, 2)
    with pytest.raises(Exception, match=r"(?s)input: input .*index: 2 Got: 7 Expected: 3"):
        sess.run(None, {"input": np.zeros((5, 2, 7), np.float32), **zeros})
    with pytest.raises(Exception, match=r"(?s)input: h0 .*index: 0 Got: 1 Expected: 2"):
        sess.run(None, {"input": x, **zeros, "h0": np.zeros((1, 2, 4), np.float32)})
    with pytest.raises(Exception, match=r"(?s)Required inputs .*'c0'.* are missing"):
        sess.run(None, {"input": x, "h0": zeros["h0"]})           # the state is an input like any other
    assert sess.run(None, {"input": x, **zeros})[0].shape == (5, 2, 4)


def test_a_new_module_type_plugs_in_with_one_function(monkeypatch):
    """How a model built on rnnkit's layers (a sequence estimator, say) gets exported: one function,
    registered by type, composing the shared pieces. Here a per-step tagger: GRU → Linear."""
    from rnnkit.onnx.graph import linear
    from rnnkit.onnx.interface import lengths_input, sequence_input, state_inputs
    from rnnkit.onnx.recurrent import stack
    from rnnkit.onnx.registry import EXPORTERS
    from rnnkit.onnx.spec import stack_spec

    class Tagger(rnnkit.Module):
        def __init__(self):
            super().__init__()
            self.rnn = self.register_module("rnn", rnnkit.GRU(3, 5, bidirectional=True, rng=0))
            self.head = self.register_module("head", rnnkit.linear.Linear(10, 4, rng=1))

        def __call__(self, x, lengths=None):
            return self.head(self.rnn(x, lengths=lengths)[0])

    def export_tagger(g, model, lengths):
        spec = stack_spec(model.rnn)
        x = sequence_input(g, spec, batch_first=False)
        y, _ = stack(g, spec, x, state_inputs(g, spec), lengths_input(g) if lengths else None)
        g.add_output(linear(g, y, model.head.weight.data, model.head.bias.data, "head"), "tags", g.elem_type,
                     ["time", "batch", 4])

    monkeypatch.setitem(EXPORTERS, Tagger, None)             # restored after the test
    rnnkit.onnx.register_exporter(Tagger)(export_tagger)
    tagger = type("SubTagger", (Tagger,), {})()              # a subclass uses its parent's exporter
    x, lens = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32), np.array([6, 3])
    with rnnkit.no_grad():
        expected = tagger(x, lens)
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(tagger, lengths=True))
    feeds = {"input": x, "lengths": lens, **rnnkit.onnx.zero_state_feeds(sess, 2)}
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected, atol=1e-6)
