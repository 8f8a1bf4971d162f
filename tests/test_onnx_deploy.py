"""Exported graphs deploy cleanly: every input listed, the state fed like any other input, and
onnxruntime logs nothing at warning level when it loads any of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from rnnkit.lm.model import CharLM, ModelConfig
from rnnkit.pooling import AttentionPool

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]


def _estimators():
    from rnnkit.models import RNNClassifier, RNNForecaster, RNNRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 12, 2)).astype(np.float32)
    y = (X[:, :, 0].mean(axis=1) > 0).astype(int)
    kw = dict(hidden_size=6, epochs=2, verbose=0, random_state=0)
    series = (10 + np.sin(np.arange(80) / 4)).astype(np.float32)
    return [("classifier", RNNClassifier(**kw).fit(X, y), (False, True)),
            ("classifier, attention", RNNClassifier(pooling="attention", **kw).fit(X, y), (False, True)),
            ("regressor", RNNRegressor(**kw).fit(X, X[:, :, 1].sum(axis=1)), (False, True)),
            ("forecaster", RNNForecaster(window=12, **kw).fit(series), (False,))]


def _modules():
    """(name, module, lengths options): every kind of graph rnnkit exports."""
    return [
        ("lstm", rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, rng=0), (False, True)),
        ("lstm peephole batch_first", rnnkit.LSTM(3, 4, peephole=True, batch_first=True, rng=0), (False, True)),
        ("lstm proj (Scan)", rnnkit.LSTM(3, 4, proj_size=2, rng=0), (False, True)),
        ("gru float64 (Scan)", rnnkit.GRU(3, 4, dtype=np.float64, bidirectional=True, rng=0), (False, True)),
        ("gru cho", rnnkit.GRU(3, 4, reset_after=False, rng=0), (False,)),
        ("rnn relu", rnnkit.RNN(3, 4, nonlinearity="relu", num_layers=2, rng=0), (False, True)),
        ("lstm cell", rnnkit.LSTMCell(3, 4, rng=0), (False,)),
        ("gru cell", rnnkit.GRUCell(3, 4, rng=0), (False,)),
        ("language model lstm", CharLM(ModelConfig(11, "lstm", embed=4, hidden=6, layers=2), rng=0).eval(), (False,)),
        ("language model gru", CharLM(ModelConfig(11, "gru", embed=4, hidden=6, layers=1), rng=0).eval(), (False,)),
        ("conv1d", rnnkit.Conv1d(3, 4, 3, padding="same", rng=0), (False,)),
        ("batchnorm", rnnkit.BatchNorm1d(3).eval(), (False, True)),
        ("layernorm", rnnkit.LayerNorm(3), (False,)),
        ("attention pool", AttentionPool(4, rng=0), (False, True)),
    ] + _estimators()


def _warning_session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 2                     # warnings and worse
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_onnxruntime_logs_nothing_when_it_loads_any_exported_graph(capfd):
    loaded = []
    for name, module, lengths_options in _modules():
        for lengths in lengths_options:
            capfd.readouterr()
            sess = _warning_session(rnnkit.onnx.to_model(module, lengths=lengths))
            rnnkit.onnx.session(rnnkit.onnx.to_model(module, lengths=lengths))      # the library's own
            log = capfd.readouterr()
            assert log.err == "" and log.out == "", f"{name} lengths={lengths}: onnxruntime said\n{log.err}"
            loaded.append((name, [i.name for i in sess.get_inputs()]))
    assert len(loaded) >= 25
    # the states are inputs every runtime lists (no overridable initializers hide them)
    inputs = dict(loaded)
    assert inputs["language model lstm"] == ["tokens", "h0", "c0"]
    assert inputs["language model gru"] == ["tokens", "h0"]
    assert inputs["lstm cell"] == ["input", "h0", "c0"]
    for name, module, lengths_options in _modules():
        model = rnnkit.onnx.to_model(module, lengths=lengths_options[-1])
        initialisers = {t.name for t in model.graph.initializer}
        assert not initialisers & {i.name for i in model.graph.input}, name


def test_state_inputs_are_required_and_zeros_start_a_sequence():
    lstm = rnnkit.LSTM(3, 4, num_layers=2, rng=0).eval()
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(lstm))
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    assert shapes == {"input": ["time", "batch", 3], "h0": [2, "batch", 4], "c0": [2, "batch", 4]}
    x = np.random.default_rng(0).standard_normal((5, 3, 3)).astype(np.float32)
    zeros = rnnkit.onnx.zero_state_feeds(sess, 3)
    assert {k: v.shape for k, v in zeros.items()} == {"h0": (2, 3, 4), "c0": (2, 3, 4)}
    assert all(v.dtype == np.float32 and not v.any() for v in zeros.values())
    with rnnkit.no_grad():
        expected, (h, c) = lstm(x)                         # no state: zeros
    out, h_n, c_n = sess.run(None, {"input": x, **zeros})
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(h_n, h, atol=1e-6)
    with pytest.raises(Exception, match="Required inputs"):
        sess.run(None, {"input": x})
    f64 = rnnkit.onnx.session(rnnkit.onnx.to_model(rnnkit.GRU(3, 4, dtype=np.float64, rng=0)))
    assert rnnkit.onnx.zero_state_feeds(f64, 2)["h0"].dtype == np.float64


def test_generation_example_is_silent(tmp_path):
    """examples/onnx_generate.py prints the text and nothing on stderr (onnxruntime included)."""
    from rnnkit.cli import main
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 60, encoding="utf-8")
    assert main(["train", str(corpus), "--hidden", "8", "--embed", "4", "--layers", "1", "--batch-size", "4",
                 "--seq-len", "8", "--max-steps", "3", "--sample-chars", "0", "--out", str(tmp_path / "r")]) == 0
    assert main(["export", str(tmp_path / "r"), str(tmp_path / "lm.onnx")]) == 0
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_generate.py"), str(tmp_path / "lm.onnx"),
                           "--prime", "the", "--length", "20", "--seed", "0"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("the") and len(proc.stdout) == len("the") + 20 + 1
