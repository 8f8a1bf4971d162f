"""The sequence estimators' norm_between and the pass-through of the layers' layer_norm,
recurrent_dropout and zoneout: the network's gradient against finite differences, scikit-learn's
parameter conventions, save / load with the norms' buffers, ONNX against predict (with and without
lengths), and the checks of the new parameters.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from sklearn.base import clone

import rnnkit
from rnnkit.models import RNNClassifier, RNNForecaster, RNNRegressor
from rnnkit.models.errors import InputError
from rnnkit.models.network import NetConfig, SequenceNet
from rnnkit.norm.between import NormedStack
from test_gradcheck import numeric_grad

TINY = dict(hidden_size=6, num_layers=2, conv_filters=(), conv_kernels=(), epochs=2, n_estimators=1, lr=0.02,
            verbose=0, random_state=0)
FLAGS = [("layer_norm", True), ("recurrent_dropout", 0.2), ("zoneout", 0.1)]


def _has_option(name: str) -> bool:
    return name in inspect.signature(rnnkit.LSTM).parameters


def _data(n=40, T=12, F=2, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F)).astype(np.float32)
    return X, np.where(X[:, :, 0].mean(axis=1) > 0, 1, 0), rng


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_network_gradient_with_norm_between(norm):
    cfg = NetConfig(2, 3, "lstm", 4, 2, True, "mean", 0.0, (3,), (2,), norm_between=norm)
    net = SequenceNet(cfg, dtype=np.float64, rng=0)
    assert isinstance(net.rnn, NormedStack)
    for n in net.rnn.norms:
        n.weight.data[...] = np.linspace(0.5, 1.5, n.weight.shape[0])
        if norm == "batch":
            n.track_running_stats = False
    rng = np.random.default_rng(2)
    x, lengths, w = rng.standard_normal((6, 3, 2)), np.array([6, 3, 5]), rng.standard_normal((3, 3))
    net.zero_grad()
    net(x, lengths)
    net.backward(w)
    params = dict(net.named_parameters())
    for name in ("rnn.norms.0.weight", "rnn.norms.1.bias", "rnn.weight_ih_l0", "rnn.weight_hh_l1_reverse"):
        num = numeric_grad(lambda: float((net(x, lengths) * w).sum()), params[name].data)
        assert np.max(np.abs(params[name].grad - num)) < 1e-7, name
        assert np.abs(num).max() > 1e-5, name


@pytest.mark.parametrize("cls", [RNNClassifier, RNNRegressor, RNNForecaster])
def test_parameters_follow_scikit_learn(cls):
    est = cls(norm_between="layer")
    params = est.get_params()
    assert params["norm_between"] == "layer"
    assert (params["layer_norm"], params["recurrent_dropout"], params["zoneout"]) == (False, 0.0, 0.0)
    assert clone(est).get_params() == params


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_classifier_with_norms_saves_loads_and_exports(norm, tmp_path):
    pytest.importorskip("onnxruntime")
    import rnnkit.onnx
    X, y, rng = _data()
    clf = RNNClassifier(norm_between=norm, **TINY).fit(X, y)
    names = list(clf.net_.state_dict())
    assert "0.rnn.norms.1.weight" in names and ("0.rnn.norms.0.num_batches_tracked" in names) == (norm == "batch")
    clf.save(tmp_path / "m.safetensors")
    back = RNNClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    for lengths in (False, True):
        sess = rnnkit.onnx.session(rnnkit.onnx.to_model(clf, lengths=lengths), threads=1)
        x = rng.standard_normal((5, 10, 2)).astype(np.float32)
        if lengths:
            lens = np.array([10, 3, 7, 1, 9])
            padded = np.where(np.arange(10)[None, :, None] < lens[:, None, None], x, np.float32(50))
            _, proba = sess.run(None, {"input": padded, "lengths": lens.astype(np.int64)})
            expected = clf.predict_proba([x[i, :n] for i, n in enumerate(lens)])
        else:
            _, proba = sess.run(None, {"input": x})
            expected = clf.predict_proba(x)
        np.testing.assert_allclose(proba, expected, atol=2e-5)
        assert proba.std() > 1e-3


def test_forecaster_and_regressor_fit_with_norms():
    rng = np.random.default_rng(0)
    series = np.sin(np.arange(300) / 5) + 0.1 * rng.standard_normal(300)
    fc = RNNForecaster(window=20, output_steps=3, norm_between="batch", hidden_size=6, num_layers=2, epochs=2,
                       n_estimators=1, random_state=0).fit(series)
    assert isinstance(fc.net_.members[0].rnn, NormedStack) and np.isfinite(fc.predict(series)).all()
    X, _, _ = _data()
    reg = RNNRegressor(norm_between="layer", **TINY).fit(X, X[:, :, 1].mean(axis=1))
    assert reg.predict(X).shape == (40,)


def test_checks_name_the_parameter():
    X, y, _ = _data()
    with pytest.raises(InputError, match="norm_between must be one of"):
        RNNClassifier(norm_between="group", **TINY).fit(X, y)
    with pytest.raises(InputError, match=re.escape("zoneout must be a finite number in [0, 1), got 1.5")):
        RNNClassifier(zoneout=1.5, **TINY).fit(X, y)
    with pytest.raises(InputError, match="layer_norm must be True or False"):
        RNNClassifier(layer_norm="yes", **TINY).fit(X, y)


@pytest.mark.parametrize("flag,value", FLAGS)
def test_layer_flags(flag, value):
    X, y, _ = _data()
    if not _has_option(flag):
        with pytest.raises(InputError, match=f"needs recurrent layers with the {flag} option"):
            RNNClassifier(**{flag: value}, **TINY).fit(X, y)
        pytest.skip(f"rnnkit.LSTM has no {flag} argument yet: the rest runs once it has")
    for norm in ("none", "layer"):
        clf = RNNClassifier(cell="lstm", norm_between=norm, **{flag: value}, **TINY).fit(X, y)
        rnn = clf.net_.members[0].rnn
        layers = rnn.layers if norm != "none" else [rnn]
        assert all(getattr(layer, flag) == value for layer in layers)
