"""The estimators' network (recurrent and convolutional branches), its ensembles and the training
plan: gradients by finite differences, padding that never reaches an output, ensembles that are
the mean of their members, and a plan that depends on the data's size alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from rnnkit.models import RNNClassifier, RNNRegressor
from rnnkit.models.budget import STEPS, WORK, plan, step_macs
from rnnkit.models.ensemble import NetEnsemble
from rnnkit.models.network import NetConfig, SequenceNet
from test_gradcheck import assert_close, numeric_grad

BOTH = dict(cell="gru", hidden_size=5, num_layers=1, bidirectional=False, pooling="max", dropout=0.0,
            conv_filters=(4, 3), conv_kernels=(3, 2))


def config(**kw) -> NetConfig:
    return NetConfig(input_size=2, output_size=3, **(BOTH | kw))


def batch(rng, T=7, B=4, F=2):
    x = rng.standard_normal((T, B, F))
    lengths = np.array([7, 3, 5, 2])[:B]
    for b, L in enumerate(lengths):
        x[L:, b] = 0.0                          # what the estimators feed: standardised zeros
    return x, lengths


@pytest.mark.parametrize("kw", [{}, {"hidden_size": 0}, {"conv_filters": (), "conv_kernels": ()},
                                {"cell": "lstm", "bidirectional": True, "pooling": "mean"}],
                         ids=["gru-fcn", "fcn", "gru", "bilstm-fcn"])
def test_network_gradients_match_finite_differences(kw):
    rng = np.random.default_rng(0)
    net = SequenceNet(config(**kw), dtype=np.float64, rng=1)
    x, lengths = batch(rng)
    w = rng.standard_normal((4, 3))

    def loss():
        with rnnkit.no_grad():
            return float(np.sum(w * net(x, lengths)))

    net.train()                                  # batch statistics: backward goes through them
    net.zero_grad()
    net(x, lengths)
    net.backward(w)
    for name, p in net.named_parameters():
        assert_close(p.grad, numeric_grad(loss, p.data), name)


def test_padding_never_reaches_an_output():
    """A sequence's prediction is the same alone and in a batch padded to a longer one, whatever
    the padding holds (conv, batch norm in eval mode, both poolings)."""
    rng = np.random.default_rng(2)
    net = SequenceNet(config(), dtype=np.float64, rng=3).eval()
    x, lengths = batch(rng)
    together = net(x, lengths)
    for b, L in enumerate(lengths):
        alone = net(x[:L, b:b + 1], np.array([L]))
        np.testing.assert_allclose(alone, together[b:b + 1], rtol=1e-12, atol=1e-12)
    x[x == 0.0] = 1e3                            # garbage in the padding changes nothing
    np.testing.assert_allclose(net(x, lengths), together, rtol=1e-12, atol=1e-12)


def test_an_ensemble_is_the_mean_of_its_members():
    rng = np.random.default_rng(4)
    members = [SequenceNet(config(), dtype=np.float64, rng=s).eval() for s in (5, 6, 7)]
    x, lengths = batch(rng)
    mean = sum(m(x, lengths) for m in members) / 3
    ens = NetEnsemble(members)
    np.testing.assert_allclose(ens(x, lengths), mean, rtol=1e-14)
    assert [k.split(".")[0] for k in ens.state_dict()][::len(members[0].state_dict())] == ["0", "1", "2"]
    twin = NetEnsemble.build(ens.cfg, 3, np.float64)
    twin.load_state_dict(ens.state_dict())
    np.testing.assert_array_equal(twin.eval()(x, lengths), ens(x, lengths))


def test_the_plan_depends_on_the_data_size_alone():
    cfg = config()
    small = plan(50, 50 * 150, cfg, 16, "auto", "auto")
    assert small.epochs == int(np.ceil(STEPS / 4)) and small.steps == small.epochs * 4
    default = NetConfig(1, 3, "gru", 64, 1, False, "max", 0.0, (32, 64, 32), (8, 5, 3))
    big = plan(5000, 5000 * 200, default, 16, "auto", "auto")
    assert big.members == 1 and 3 * 5000 * 200 * step_macs(default) * big.epochs <= WORK
    assert plan(50, 7500, cfg, 16, 7, 2) == type(small)(7, 2, 28)
    # every member of the ensemble fits in the work budget
    assert 3 * 7500 * step_macs(cfg) * small.epochs * small.members <= WORK


def test_step_macs_counts_both_branches():
    cfg = config(cell="lstm", num_layers=2, bidirectional=True)
    conv = 2 * 4 * 3 + 4 * 3 * 2
    lstm = 2 * 4 * 5 * (2 + 5) + 2 * 4 * 5 * (10 + 5)
    assert step_macs(cfg) == conv + lstm


def bumps(n, seed):
    rng = np.random.default_rng(seed)
    X = 0.3 * rng.standard_normal((n, 24))
    y = np.arange(n) % 2
    X[y == 0, 2:5] += 2.0
    X[y == 1, 18:21] += 2.0
    return X, y


QUICK = dict(hidden_size=6, conv_filters=(6, 6), conv_kernels=(5, 3), epochs=30, verbose=0, random_state=0)


def test_the_classifier_ensemble_trains_members_and_averages_them():
    X, y = bumps(48, 0)
    clf = RNNClassifier(n_estimators=3, **QUICK).fit(X, y)
    assert len(clf.net_) == 3 and len(clf.history_) == 3
    weights = [m.head.weight.data for m in clf.net_.members]
    assert not np.allclose(weights[0], weights[1])          # different initialisations and orders
    Xt, yt = bumps(40, 1)
    assert clf.score(Xt, yt) == 1.0
    one = RNNClassifier(n_estimators=1, **QUICK).fit(X, y)
    np.testing.assert_array_equal(one.net_.members[0].head.weight.data, weights[0])   # member 0 = a fit of one


def test_fcn_alone_and_rnn_alone_are_options(tmp_path):
    X, y = bumps(40, 2)
    for kw in ({"hidden_size": 0}, {"conv_filters": (), "conv_kernels": ()}):
        clf = RNNClassifier(n_estimators=1, **QUICK | kw).fit(X, y)
        clf.save(tmp_path / "m.safetensors")
        back = RNNClassifier.load(tmp_path / "m.safetensors")
        np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
        assert back.get_params() == clf.get_params()


@pytest.mark.parametrize("kw,fragment", [
    ({"hidden_size": 0, "conv_filters": (), "conv_kernels": ()}, "needs a recurrent branch"),
    ({"conv_filters": (8, 8), "conv_kernels": (3,)}, "one kernel size per conv block"),
    ({"conv_filters": 8}, "conv_filters must be a tuple of ints"),
    ({"conv_filters": (8, 0)}, "conv_filters[1] must be an integer >= 1, got 0"),
    ({"n_estimators": 0}, "n_estimators must be an integer >= 1 or 'auto', got 0"),
    ({"schedule": "linear"}, "schedule must be one of"),
])
def test_bad_network_and_plan_parameters_are_named(kw, fragment):
    X, y = bumps(10, 3)
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        RNNClassifier(**QUICK | kw).fit(X, y)


def test_a_file_of_format_1_still_loads(tmp_path):
    """Files written before ensembles held one network under ``net.``; they load as an ensemble
    of one that predicts the same."""
    from rnnkit.files import read_tensors, write_tensors
    X, y = bumps(30, 4)
    reg = RNNRegressor(n_estimators=1, **QUICK | {"conv_filters": (), "conv_kernels": ()}).fit(X, y.astype(float))
    path = tmp_path / "m.safetensors"
    reg.save(path)
    tensors, meta = read_tensors(path)
    old = {("net." + k[len("net.0."):] if k.startswith("net.0.") else k): v for k, v in tensors.items()}
    meta = meta | {"version": 1, "history": meta["history"][0]}
    for key in ("members",):
        meta.pop(key)
    for key in ("conv_filters", "conv_kernels"):
        meta["net"].pop(key)
        meta["params"].pop(key)
    write_tensors(path, old, json.loads(json.dumps(meta)))
    back = RNNRegressor.load(path)
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    assert len(back.net_) == 1 and back.history_[0].train_loss == reg.history_[0].train_loss


# -- standardisation per sequence ---------------------------------------------------------------

def loud_and_quiet(n, seed):
    """Sequences whose spreads span four orders of magnitude; the class is the bump's place."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = []
    for i in range(n):
        T = int(rng.integers(14, 22))
        x = 0.2 * rng.standard_normal(T)
        at = 1 if y[i] == 0 else T - 4
        x[at:at + 3] += 2.0
        X.append(x * 10.0 ** rng.uniform(-2, 2))
    return X, y


def test_auto_standardises_per_sequence_only_when_spreads_span_orders_of_magnitude():
    from rnnkit.models.data import Scaler, as_sequences, choose_normalization, spread_decades
    X, y = loud_and_quiet(60, 5)
    seq = as_sequences(X)
    assert spread_decades(seq) > 3 and choose_normalization("auto", seq) == "sequence"
    assert choose_normalization("auto", as_sequences(bumps(30, 6)[0])) == "global"
    sc = Scaler.fit(seq, "sequence")
    z = sc.transform(seq)
    assert z.features == 2
    for i in (0, 7):                                   # each sequence on its own scale
        L = seq.lengths[i]
        np.testing.assert_allclose(z.values[i, :L, 0].mean(), 0, atol=1e-12)
        np.testing.assert_allclose(z.values[i, :L, 0].std(), 1, rtol=1e-12)
        assert np.ptp(z.values[i, :L, 1]) == 0 and np.all(z.values[i, L:] == 0)
    ell = z.values[np.arange(60), 0, 1]                # the log-spread channel, standardised
    np.testing.assert_allclose([ell.mean(), ell.std()], [0, 1], atol=1e-12)
    clf = RNNClassifier(n_estimators=1, **QUICK).fit(X, y)
    assert clf.scaler_.mode == "sequence"
    Xt, yt = loud_and_quiet(40, 6)
    assert clf.score(Xt, yt) >= 0.95
    assert RNNClassifier(n_estimators=1, normalize="global", **QUICK).fit(X, y).scaler_.mode == "global"


def test_per_sequence_standardisation_saves_and_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    X, y = loud_and_quiet(30, 7)
    clf = RNNClassifier(n_estimators=1, **QUICK).fit(X, y)
    clf.save(tmp_path / "m.safetensors")
    back = RNNClassifier.load(tmp_path / "m.safetensors")
    assert back.scaler_.mode == "sequence"
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    T = max(len(x) for x in X)
    padded = np.zeros((len(X), T, 1), np.float32)
    for i, x in enumerate(X):
        padded[i, :len(x), 0] = x
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(clf, lengths=True), threads=1)
    lengths = np.array([len(x) for x in X], np.int64)
    label, proba = sess.run(None, {"input": padded, "lengths": lengths})
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=2e-5)
    assert label.tolist() == clf.predict(X).tolist()
