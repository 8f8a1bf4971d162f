"""ONNX export of the sequence estimators (rnnkit.models) and of the pooling layers, in onnxruntime.

Each fitted estimator is exported once without and once with ``lengths``; each graph passes onnx's
full check and runs at two batch sizes and two sequence lengths, against ``predict`` /
``predict_proba`` on the same data (with lengths: ragged lists, the padding of the graph's input
filled with large values that would show if any reached the output). Labels must be equal;
probabilities and values within TOL (float32 graph, float64 predict). Fits are tiny: the graphs
must compute what predict computes, whatever the weights.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from helpers import doc_block
from rnnkit.cli import main
from rnnkit.models import RNNClassifier, RNNForecaster, RNNRegressor
from rnnkit.models.persist import decode_labels
from rnnkit.pooling import AttentionPool, LastStep, MaxPool, MeanPool

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = 2e-5                          # max abs error relative to max(1, |value|): float32 against float64
WORST: dict[str, float] = {}
PAD = 50.0                          # what fills the graph input's padding: far outside the data
TINY = dict(hidden_size=6, conv_filters=(4, 3), conv_kernels=(3, 2), epochs=2, n_estimators=1, lr=0.02,
            verbose=0, random_state=0)
FORECAST_TINY = {k: v for k, v in TINY.items() if not k.startswith("conv")}      # no conv branch there
SHAPES = [(3, 9), (6, 14)]          # (B, T) fed to one export


def close(name: str, got, expected) -> None:
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, f"{name}: shape {got.shape} vs {expected.shape}"
    err = float(np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected))))
    WORST[name] = max(WORST.get(name, 0.0), err)
    assert err <= TOL, f"{name}: error {err:.3g} > {TOL}"


def batch(rng, B: int, T: int, F: int, lengths: bool):
    """(graph input (B, T, F) float32, lengths (B,) or None, what predict gets: an array or a list)."""
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    if not lengths:
        return x, None, x
    lens = rng.integers(1, T + 1, B)
    lens[0] = T
    padded = np.where(np.arange(T)[None, :, None] < lens[:, None, None], x, np.float32(PAD))
    return padded, lens.astype(np.int64), [x[i, :n] for i, n in enumerate(lens)]


def sessions(est):
    """(lengths, onnxruntime session) for the graphs exported without and with lengths."""
    for lengths in (False, True):
        model = rnnkit.onnx.to_model(est, lengths=lengths)             # onnx's full check inside
        yield lengths, rnnkit.onnx.session(model, threads=1)


def feeds(x, lens) -> dict:
    return {"input": x} | ({} if lens is None else {"lengths": lens})


# -- classifier ------------------------------------------------------------------------------------
def series_data(n: int, T: int, F: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F)).astype(np.float32) + np.linspace(0, 1, F, dtype=np.float32)
    return X, rng


CONFIGS = {                                         # cell, direction, frames (frame=k stacks k steps)
    "gru": dict(cell="gru"),
    "lstm-bi-frame4": dict(cell="lstm", bidirectional=True, frame=4),
    "rnn-2layers-frame3": dict(cell="rnn", num_layers=2, frame=3),
}


@pytest.mark.parametrize("pooling", ["last", "max", "mean", "attention"])
@pytest.mark.parametrize("config", ["gru", "lstm-bi-frame4"])
def test_classifier_equals_predict(pooling, config):
    X, rng = series_data(40, 12, 2, seed=1)
    y = np.where(X[:, :, 0].mean(axis=1) > 0, 7, 3)
    clf = RNNClassifier(pooling=pooling, **CONFIGS[config], **TINY).fit(X, y)
    for lengths, sess in sessions(clf):
        assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
        for B, T in SHAPES:
            x, lens, X_pred = batch(rng, B, T, 2, lengths)
            label, proba = sess.run(None, feeds(x, lens))
            assert label.dtype == np.int64 and label.tolist() == clf.predict(X_pred).tolist()
            close("probabilities", proba, clf.predict_proba(X_pred))
            assert proba.std() > 1e-3                              # not a constant: the check can fail


@pytest.mark.parametrize("network", [
    dict(hidden_size=0, n_estimators=2),                                   # FCN alone, an ensemble
    dict(conv_filters=(), conv_kernels=(), n_estimators=3, frame=2),       # GRU alone, an ensemble
], ids=["fcn-ensemble", "gru-ensemble"])
def test_ensembles_and_single_branches_equal_predict(network):
    X, rng = series_data(40, 12, 2, seed=4)
    y = np.where(X[:, :, 0].mean(axis=1) > 0, "up", "down")
    clf = RNNClassifier(**TINY | network).fit(X, y)
    assert len(clf.net_) == network["n_estimators"]
    for lengths, sess in sessions(clf):
        for B, T in SHAPES:
            x, lens, X_pred = batch(rng, B, T, 2, lengths)
            label, proba = sess.run(None, feeds(x, lens))
            assert label.tolist() == clf.predict(X_pred).tolist()
            close("probabilities", proba, clf.predict_proba(X_pred))
            assert proba.std() > 1e-3


@pytest.mark.parametrize("labels", [
    np.array(["cat", "dog", "émeu"]), np.array([0.5e1, 2.0, -1.0]), np.array([True, False, True]),
    np.array([3, 1, 2], np.uint8), np.array(["b", "a", "c"], dtype=object),
], ids=["str", "float", "bool", "uint8", "object-str"])
def test_labels_keep_their_type(labels):
    X, rng = series_data(30, 8, 1, seed=2)
    y = labels[np.arange(30) % len(labels)]
    clf = RNNClassifier(pooling="mean", **CONFIGS["rnn-2layers-frame3"], **TINY).fit(X, y)
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(clf))
    x = rng.standard_normal((7, 8, 1)).astype(np.float32)
    label, proba = sess.run(None, {"input": x})
    expected = clf.predict(x)
    assert label.tolist() == expected.tolist()
    assert [type(v) for v in label.tolist()] == [type(v) for v in expected.tolist()]
    close("probabilities", proba, clf.predict_proba(x))
    meta = sess.get_modelmeta().custom_metadata_map
    assert decode_labels(json.loads(meta["rnnkit.classes"])).tolist() == clf.classes_.tolist()


def test_labels_onnx_cannot_hold_go_beside_the_model(tmp_path):
    """Integers beyond int64 (an object array): the graph returns indices, the labels go to JSON."""
    X, rng = series_data(30, 8, 1, seed=3)
    y = np.array([1, 2 ** 70], dtype=object)[np.arange(30) % 2]
    clf = RNNClassifier(**TINY).fit(X, y)
    path = rnnkit.onnx.export(clf, tmp_path / "clf.onnx")
    classes = decode_labels(json.loads((tmp_path / "clf.classes.json").read_text()))
    assert classes.tolist() == [1, 2 ** 70]
    sess = rnnkit.onnx.session(path)
    assert [o.name for o in sess.get_outputs()] == ["label_index", "probabilities"]
    x = rng.standard_normal((5, 8, 1)).astype(np.float32)
    index, _ = sess.run(None, {"input": x})
    assert classes[index].tolist() == clf.predict(x).tolist()
    # Exported again to the same path with labels ONNX holds: the old JSON must not stay beside it.
    rnnkit.onnx.export(RNNClassifier(**TINY).fit(X, np.arange(30) % 2), path)
    assert not (tmp_path / "clf.classes.json").exists()
    assert [o.name for o in rnnkit.onnx.session(path).get_outputs()] == ["label", "probabilities"]


# -- regressor -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling,config,k", [("max", "lstm-bi-frame4", 1), ("attention", "gru", 2),
                                              ("last", "rnn-2layers-frame3", 1), ("mean", "lstm-bi-frame4", 3)])
def test_regressor_equals_predict(pooling, config, k):
    X, rng = series_data(40, 12, 3, seed=4)
    y = 100.0 + 5.0 * X[:, :, :k].sum(axis=1)                        # offset and scale to undo
    reg = RNNRegressor(pooling=pooling, **CONFIGS[config], **TINY).fit(X, y[:, 0] if k == 1 else y)
    for lengths, sess in sessions(reg):
        for B, T in SHAPES:
            x, lens, X_pred = batch(rng, B, T, 3, lengths)
            (pred,) = sess.run(None, feeds(x, lens))
            expected = reg.predict(X_pred)
            assert pred.shape == expected.shape == ((B,) if k == 1 else (B, k))
            close("prediction", pred, expected)
            assert np.ptp(pred) > 1e-3


# -- forecaster ------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize,F,E,H,pooling,season", [
    ("global", 1, 0, 1, "last", 1), ("last", 2, 1, 3, "max", 12), ("both", 1, 2, 2, "attention", 12)])
@pytest.mark.parametrize("correction", [0.0, 0.5])
def test_forecaster_equals_predict(normalize, F, E, H, pooling, season, correction):
    """The graph: Box-Cox (a positive series with a multiplicative season: Log / Pow), seasonal
    offsets (Gather, with the ``start`` input), the AR map (MatMul), the network correction."""
    rng = np.random.default_rng(5)
    t = np.arange(120)
    x = np.stack([50 * np.exp(0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) * np.exp(0.02 * rng.standard_normal(120)),
                  10 + np.sin(t / 3) + 0.02 * t][:F], axis=1).astype(np.float32)
    e = rng.standard_normal((120, E)).astype(np.float32) if E else None
    fc = RNNForecaster(window=24, output_steps=H, season=season, normalize=normalize, pooling=pooling,
                       **FORECAST_TINY).fit(x if F > 1 else x[:, 0], exog=e)
    fc.correction_ = correction                                   # both graphs: with and without the network
    if season > 1:                                                # offsets, whether or not fit kept them
        fc.path_ = dataclasses.replace(fc.path_, offsets=rng.standard_normal((F, 12)) * 0.1)
    assert fc.path_.lam[0] == 0.0
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(fc))
    assert [i.name for i in sess.get_inputs()] == ["input"] + (["start"] if season > 1 else []) + (["exog"] if E else [])
    for B in (1, 4):
        ends = rng.integers(24, 110, B)                               # windows x[end-24:end]
        fed = {"input": np.stack([x[s - 24:s] for s in ends])} | \
              ({"start": (ends - 24).astype(np.int64)} if season > 1 else {}) | \
              ({"exog": np.stack([e[s - 24:s + H] for s in ends])} if E else {})
        forecast, one_step = sess.run(None, fed)
        assert forecast.shape == (B, H, F) and one_step.shape == (B, F)
        for b, s in enumerate(ends):
            kw = dict(history_exog=e[:s], exog=e[s:s + H]) if E else {}
            expected = fc.predict(H, history=x[:s] if F > 1 else x[:s, 0], **kw)
            close("forecast", forecast[b], np.reshape(expected, (H, F)))
            nxt = x[s:s + 1] if F > 1 else x[s:s + 1, 0]                 # the row after the window
            kw = dict(history_exog=e[:s], exog=e[s:s + 1]) if E else {}
            close("one_step", one_step[b], np.reshape(fc.predict(nxt, history=x[:s] if F > 1 else x[:s, 0], **kw), F))
    assert np.ptp(forecast) > 1e-3


def test_forecaster_one_step_forecasts_along_a_series():
    """predict(new_rows) — the one-step forecasts along observed rows — from sliding windows."""
    x = (5 + np.sin(np.arange(80) / 4)).astype(np.float32)
    fc = RNNForecaster(window=6, season=1, **FORECAST_TINY).fit(x[:60])
    fc.correction_ = 1.0
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(fc))
    windows = np.lib.stride_tricks.sliding_window_view(x[:79], 6)[54:, :, None]      # ending at 59 .. 78
    forecast, one_step = sess.run(None, {"input": np.ascontiguousarray(windows)})
    close("forecast", forecast[:, 0, 0], fc.predict(x[60:]))          # λ = 1: the median is the mean
    close("one_step", one_step[:, 0], fc.predict(x[60:]))


# -- the pooling layers alone ----------------------------------------------------------------------
@pytest.mark.parametrize("pool", [LastStep(), LastStep(bidirectional=True, batch_first=True), MaxPool(),
                                  MeanPool(batch_first=True), AttentionPool(6, 4, rng=0)],
                         ids=["last", "last-bidirectional-batch_first", "max", "mean-batch_first", "attention"])
@pytest.mark.parametrize("opset", [14, None])                        # ReduceMax's axes: attribute, then input
def test_pooling_layers(pool, opset):
    rng = np.random.default_rng(6)
    for lengths, sess in ((L, rnnkit.onnx.session(rnnkit.onnx.to_model(pool, lengths=L, opset=opset)))
                          for L in (False, True)):
        for B, T in SHAPES:
            h = rng.standard_normal((B, T, 6) if pool.batch_first else (T, B, 6)).astype(np.float32)
            lens = rng.integers(1, T + 1, B) if lengths else None
            with rnnkit.no_grad():
                expected = pool(h, lens)
            close("pooling", sess.run(None, feeds(h, lens))[0], expected)


# -- the graph, the command, bad input --------------------------------------------------------------
def test_graph_uses_the_recurrent_operators_and_keeps_no_state_inputs():
    X, _ = series_data(20, 6, 1, seed=7)
    clf = RNNClassifier(cell="lstm", **TINY).fit(X, np.arange(20) % 2)
    graph = rnnkit.onnx.to_model(clf, lengths=True, opset=14).graph
    assert "LSTM" in [n.op_type for n in graph.node] and "Scan" not in [n.op_type for n in graph.node]
    assert [i.name for i in graph.input] == ["input", "lengths"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_export_command_takes_a_saved_estimator(tmp_path, capsys):
    X, rng = series_data(30, 10, 2, seed=8)
    clf = RNNClassifier(pooling="attention", frame=3, **TINY).fit(X, np.array(["a", "b", "c"])[np.arange(30) % 3])
    clf.save(tmp_path / "clf.safetensors")
    assert main(["export", str(tmp_path / "clf.safetensors"), str(tmp_path / "clf.onnx"), "--lengths"]) == 0
    assert "RNNClassifier: inputs input, lengths; outputs label, probabilities" in capsys.readouterr().out
    x, lens, X_pred = batch(rng, 4, 10, 2, lengths=True)
    label, proba = rnnkit.onnx.session(tmp_path / "clf.onnx").run(None, feeds(x, lens))
    assert label.tolist() == clf.predict(X_pred).tolist()
    close("probabilities", proba, clf.predict_proba(X_pred))
    RNNForecaster(window=5, **FORECAST_TINY).fit(np.arange(40.0)).save(tmp_path / "fc.safetensors")
    assert main(["export", str(tmp_path / "fc.safetensors"), str(tmp_path / "fc.onnx"), "--lengths"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit export: error: --lengths: ") and "window_=5" in err
    assert not (tmp_path / "fc.onnx").exists()


@pytest.mark.parametrize("est", [RNNClassifier(), RNNRegressor(), RNNForecaster()], ids=lambda e: type(e).__name__)
def test_unfitted_estimator_is_refused_by_name(est, tmp_path):
    with pytest.raises(ValueError, match=f"this {type(est).__name__} is not fitted yet"):
        rnnkit.onnx.export(est, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_bad_options_name_the_argument(tmp_path):
    fc = RNNForecaster(window=4, **FORECAST_TINY).fit(np.sin(np.arange(30.0)))
    with pytest.raises(ValueError, match=r"lengths=True does not apply to an RNNForecaster.*window_=4"):
        rnnkit.onnx.to_model(fc, lengths=True)
    with pytest.raises(TypeError, match="lengths must be True or False, got str 'yes'"):
        rnnkit.onnx.to_model(fc, lengths="yes")
    with pytest.raises(ValueError, match=r"opset must be an integer in \[14, \d+\] or None, got 12"):
        rnnkit.onnx.to_model(fc, opset=12)


def test_docs_example(tmp_path, monkeypatch):
    """docs/deploy.md's "Sequence models as ONNX" block runs and its comments hold."""
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(doc_block("docs/deploy.md", "estimator-onnx"), "docs/deploy.md", "exec"), scope)
    clf, fc, seqs = scope["clf"], scope["fc"], scope["seqs"]
    assert scope["label"].tolist() == clf.predict(seqs).tolist()
    close("probabilities", scope["proba"], clf.predict_proba(seqs))
    assert scope["forecast"].shape == (1, 3, 1)
    close("forecast", scope["forecast"][0, :, 0], fc.predict(3))
    assert scope["one_step"].shape == (1, 1)


def test_report_worst_error(capsys):
    """Runs last: the largest errors measured (printed for docs/deploy.md and the closing note) are
    finite and within tolerance, and float32's rounding shows in some (float32 graphs against
    float64 predictions cannot all agree exactly)."""
    if not WORST:
        pytest.skip("the comparisons above did not run in this session")
    with capsys.disabled():
        print("\nlargest ONNX vs predict error:", {k: f"{v:.2e}" for k, v in WORST.items()})
    assert all(0 <= err <= TOL for err in WORST.values()), WORST
    assert max(WORST.values()) > 0


def test_export_command_names_the_labels_file_it_wrote(tmp_path, capsys):
    X, _ = series_data(20, 6, 1, seed=4)
    y = np.array([1, 2 ** 70], dtype=object)[np.arange(20) % 2]           # labels ONNX cannot hold
    RNNClassifier(**TINY).fit(X, y).save(tmp_path / "c.safetensors")
    assert main(["export", str(tmp_path / "c.safetensors"), str(tmp_path / "c.onnx")]) == 0
    out = capsys.readouterr().out
    assert "outputs label_index, probabilities)" in out and out.rstrip().endswith(f" and {tmp_path / 'c.classes.json'}")
    assert (tmp_path / "c.classes.json").is_file()
    with pytest.raises(ValueError, match=r"opset must be an integer in \[14, \d+\] or None, got 1000000") as caught:        # the argument at fault, typed
        rnnkit.onnx.export(RNNClassifier(**TINY).fit(X, np.arange(20) % 2), tmp_path / "d.onnx", opset=10 ** 6)
    assert caught.value.argument == "opset"
