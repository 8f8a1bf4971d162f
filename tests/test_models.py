"""The sequence estimators: learning, inputs of every shape, labels of every type, bad input,
saving and loading, the training loop, and working without scikit-learn."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.models import RNNClassifier, RNNForecaster, RNNRegressor
from rnnkit.models._sklearn import NotFittedError
from rnnkit.models.data import (Scaler, Sequences, as_sequences, bucket_batches, spread_or_one, stack_frames,
                                validation_split)
from rnnkit.models.network import NetConfig, SequenceNet
from rnnkit.models.persist import ModelFileError
from rnnkit.losses import softmax_cross_entropy as cross_entropy
from rnnkit.models.config import FitSettings
from rnnkit.models.training import evaluate, fit_network
from test_errors import raises
from test_gradcheck import assert_close, numeric_grad

# Small and quick: one network, a small conv branch beside the GRU (both branches are exercised).
FAST = dict(hidden_size=16, conv_filters=(8, 8), conv_kernels=(5, 3), epochs=60, n_estimators=1,
            batch_size=16, lr=1e-2, patience=15, verbose=0, random_state=0)


def bump_data(n: int, seed: int, ragged: bool = True, features: int = 1):
    """Sequences of noise with a bump early (class 'early') or late ('late'); lengths 12..24."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        T = int(rng.integers(12, 25)) if ragged else 20
        x = 0.3 * rng.standard_normal((T, features))
        late = i % 2 == 1
        at = T - 4 if late else 1
        x[at:at + 3] += 2.0
        X.append(x if features > 1 else x[:, 0])
        y.append("late" if late else "early")
    return X, np.array(y)


# -- learning ---------------------------------------------------------------------------------------

def test_classifier_learns_ragged_multivariate_sequences():
    X, y = bump_data(160, 0, features=3)
    Xt, yt = bump_data(80, 1, features=3)
    clf = RNNClassifier(**FAST).fit(X, y)
    assert clf.score(Xt, yt) >= 0.95
    assert list(clf.classes_) == ["early", "late"] and clf.n_channels_ == 3
    assert not hasattr(clf, "n_features_in_")          # a list fixes no length
    proba = clf.predict_proba(Xt)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(Xt))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(Xt)), proba, rtol=1e-12)


def test_regressor_learns_and_keeps_the_shape_of_y():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 10))
    Y = np.c_[X[:, :3].sum(axis=1), 100 + 50 * X[:, -1]]      # two targets on different scales
    reg = RNNRegressor(**FAST | {"epochs": 300, "patience": 30}).fit(X[:150], Y[:150])
    assert reg.predict(X[150:]).shape == (50, 2)
    assert reg.score(X[150:], Y[150:]) > 0.9
    reg1 = RNNRegressor(**FAST | {"epochs": 300, "patience": 30}).fit(X[:150], Y[:150, 1])
    assert reg1.predict(X[150:]).shape == (50,) and reg1.score(X[150:], Y[150:, 1]) > 0.9
    assert reg1.n_features_in_ == 10                           # a 2-D X fixes T


def seasonal(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 50 + 0.5 * t + 5 * np.sin(2 * np.pi * t / 12) + 0.3 * np.random.default_rng(seed).standard_normal(n)


def test_forecaster_beats_last_value_on_a_trend_with_season():
    s = seasonal(180)
    fc = RNNForecaster(normalize="last", hidden_size=16, epochs=150, lr=1e-2, verbose=0,
                       random_state=0).fit(s[:156])            # a trend: predict changes
    pred = fc.predict(24)
    assert pred.shape == (24,) and fc.window_ == 24
    err = np.sqrt(np.mean((pred - s[156:]) ** 2))
    naive = np.sqrt(np.mean((s[155] - s[156:]) ** 2))
    assert err < naive / 2, (err, naive)
    # history = the training series itself gives the same forecast; one-step forecasts along data
    np.testing.assert_allclose(fc.predict(3, history=s[:156]), pred[:3], rtol=1e-12)
    one = fc.predict(s[156:])
    assert one.shape == (24,)
    np.testing.assert_allclose(one[0], pred[0], rtol=1e-12)
    np.testing.assert_allclose(one[5], fc.predict(1, history=s[:161])[0], rtol=1e-12)
    assert fc.score(s[156:]) > 0.8


def test_forecaster_uses_known_future_inputs():
    """x_t = 3 e_t with e random: only the extra input can tell the next value."""
    rng = np.random.default_rng(3)
    e = rng.standard_normal(300)
    x = np.c_[3 * e, -e]                                      # two series forecast together
    fc = RNNForecaster(window=4, hidden_size=16, lr=1e-2, verbose=0, random_state=0)
    fc.fit(x[:250], exog=e[:250, None])
    pred = fc.predict(50, exog=e[250:, None])
    assert pred.shape == (50, 2)
    rmse = np.sqrt(np.mean((pred - x[250:]) ** 2, axis=0))
    assert np.all(rmse < 0.15 * x.std(axis=0)), rmse         # without e: no better than the std
    block = RNNForecaster(window=4, output_steps=3, hidden_size=16, lr=1e-2, verbose=0,
                          random_state=0).fit(x[:250], exog=e[:250, None])
    rmse = np.sqrt(np.mean((block.predict(9, exog=e[250:259, None]) - x[250:259]) ** 2, axis=0))
    assert np.all(rmse < 0.25 * x.std(axis=0)), rmse


# -- the pieces -------------------------------------------------------------------------------------

def test_network_gradients_by_finite_differences():
    """RNN → attention pooling → dropout → linear → cross-entropy, with lengths, in float64."""
    cfg = NetConfig(3, 4, "lstm", 5, 2, True, "attention", 0.3)
    net = SequenceNet(cfg, rng=0)
    rng = np.random.default_rng(1)
    x, lengths, y = rng.standard_normal((6, 3, 3)), np.array([6, 2, 4]), np.array([0, 3, 1])
    shared = net.drop.rng
    assert net.rnn.rng is shared                              # one generator for every dropout mask
    state = shared.bit_generator.state

    def loss(grad=False):
        shared.bit_generator.state = state                    # the same masks in every call
        out = cross_entropy(net(x, lengths), y)
        return out if grad else out[0]

    _, dz = loss(grad=True)
    net.zero_grad()
    net.backward(dz)
    for name, p in net.named_parameters():
        with rnnkit.no_grad():
            assert_close(p.grad, numeric_grad(loss, p.data), name)


def test_inputs_are_padded_and_standardised_over_valid_steps_only():
    seq = as_sequences([np.array([1.0, 2.0, 3.0]), np.array([10.0])])
    assert seq.values.shape == (2, 3, 1) and list(seq.lengths) == [3, 1] and seq.layout == "list"
    sc = Scaler.fit(seq)
    np.testing.assert_allclose(sc.mean, [4.0])                # (1 + 2 + 3 + 10) / 4, padding ignored
    z = sc.transform(seq)
    assert z.values[1, 1:, 0].tolist() == [0.0, 0.0]
    frames = stack_frames(as_sequences(np.arange(14.0).reshape(2, 7)), 3)
    assert frames.values.shape == (2, 3, 3) and list(frames.lengths) == [3, 3]
    np.testing.assert_array_equal(frames.values[0, 2], [6.0, 0.0, 0.0])
    assert as_sequences(np.zeros((4, 5, 2))).layout == "3d"


def test_constant_features_are_divided_by_one():
    """A spread at rounding-noise level of the mean (or zero) divides by 1, not by ~0."""
    std, mean = np.array([0.0, 1e-8, 1e-10, 1e-13, 2.0]), np.array([5.0, 1e3, 1e3, 0.0, 1.0])
    np.testing.assert_array_equal(spread_or_one(std, mean), [1.0, 1e-8, 1.0, 1.0, 2.0])


def test_length_buckets_cover_every_sample_once():
    lengths = np.random.default_rng(4).integers(1, 500, size=1000)
    batches = bucket_batches(lengths, 32, np.random.default_rng(5))
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 30                                        # vs ~470 for random batches


def test_stratified_validation_split():
    groups = np.repeat([0, 1, 2], [50, 30, 2])
    train, val = validation_split(82, 0.2, np.random.default_rng(0), groups)
    assert np.bincount(groups[val], minlength=3).tolist() == [10, 6, 0]
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 82
    assert len(validation_split(3, 0.5, np.random.default_rng(0))[1]) == 0


def test_early_stopping_restores_the_best_weights():
    rng = np.random.default_rng(6)
    X = as_sequences(rng.standard_normal((60, 8)))
    y = rng.integers(0, 2, 60)                                # noise labels: validation loss rises
    net = SequenceNet(NetConfig(1, 2, "gru", 16, 1, False, "mean", 0.0), rng=0)
    s = FitSettings(batch_size=8, lr=3e-2, schedule="constant", weight_decay=0.0, clip=1.0, patience=5,
                    time_budget=None, verbose=0)
    train, val = X.subset(np.arange(40)), X.subset(np.arange(40, 60))
    hist = fit_network(net, cross_entropy, train, y[:40], val, y[40:], s, 200, np.random.default_rng(0), "t")
    assert hist.stop_reason == "early stopping"
    assert len(hist.val_loss) == hist.best_epoch + 5
    assert evaluate(net, cross_entropy, val, y[40:], 8) == pytest.approx(min(hist.val_loss), rel=1e-12)


def test_time_budget_and_progress(capsys):
    X, y = bump_data(60, 7)
    RNNClassifier(**FAST | {"epochs": 1}).fit(X, y)             # compiled before the budget counts
    clf = RNNClassifier(**FAST | {"epochs": 100000, "time_budget": 0.5, "verbose": 2}).fit(X, y)
    assert clf.history_[0].stop_reason == "time budget"          # the budget, not the epochs, ended it
    assert 1 <= clf.n_epochs_ < 100000
    assert "epoch 1: loss" in capsys.readouterr().out
    RNNClassifier(**FAST | {"epochs": 2}).fit(X, y)
    assert capsys.readouterr() == ("", "")


def test_fixed_seed_fixes_the_result():
    X, y = bump_data(40, 8)
    a = RNNClassifier(**FAST | {"epochs": 5}).fit(X, y).predict_proba(X)
    b = RNNClassifier(**FAST | {"epochs": 5}).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


# -- labels and saving ------------------------------------------------------------------------------

LABELS = [np.array([3, -7]), np.array(["cat", "dog"]), np.array([True, False]), np.array([1.0, 2.0]),
          np.array(["x", "yy"], dtype=object), np.array([2, 5], dtype=np.uint8), np.array([7, 9], dtype=object)]


@pytest.mark.parametrize("pair", LABELS, ids=lambda p: f"{p.dtype}")
def test_labels_of_any_type_survive_save_and_load(pair, tmp_path):
    X, y = bump_data(30, 9)
    labels = pair[(y == "late").astype(int)]
    clf = RNNClassifier(**FAST | {"epochs": 3}).fit(X, labels)
    path = tmp_path / "m.safetensors"
    clf.save(path)
    back = RNNClassifier.load(path)
    assert back.classes_.dtype == clf.classes_.dtype
    assert back.classes_.tolist() == clf.classes_.tolist()
    assert [type(v) for v in back.classes_] == [type(v) for v in clf.classes_]
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.get_params() == clf.get_params()


def test_regressor_and_forecaster_round_trip(tmp_path):
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((40, 6, 2)), rng.standard_normal((40, 3))
    reg = RNNRegressor(**FAST | {"epochs": 3}).fit(X, Y)
    reg.save(tmp_path / "r.safetensors")
    np.testing.assert_array_equal(RNNRegressor.load(tmp_path / "r.safetensors").predict(X), reg.predict(X))
    s = seasonal(80)
    fc = RNNForecaster(hidden_size=8, epochs=3, verbose=0, random_state=0).fit(s)
    fc.save(tmp_path / "f.safetensors")
    back = RNNForecaster.load(tmp_path / "f.safetensors")
    np.testing.assert_array_equal(back.predict(7), fc.predict(7))
    assert back.window_ == fc.window_ and back.get_params() == fc.get_params()


def test_files_of_earlier_versions_still_load(tmp_path):
    """Files written before the unused "layout" entry was dropped load and predict the same."""
    from rnnkit.files import read_tensors, write_tensors
    X, y = bump_data(20, 11)
    clf = RNNClassifier(**FAST | {"epochs": 2}).fit(X, y)
    clf.save(tmp_path / "c.safetensors")
    tensors, header = read_tensors(tmp_path / "c.safetensors")
    assert "layout" not in header and header["history"][0]["train_loss"] == clf.history_[0].train_loss
    write_tensors(tmp_path / "old.safetensors", tensors, header | {"layout": "list"})
    back = RNNClassifier.load(tmp_path / "old.safetensors")
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.history_ == clf.history_ and back.n_epochs_ == 2


def test_load_refuses_what_is_not_a_matching_model(tmp_path):
    X, y = bump_data(20, 11)
    clf = RNNClassifier(**FAST | {"epochs": 2}).fit(X, y)
    clf.save(tmp_path / "c.safetensors")
    with raises(ModelFileError, "holds an RNNClassifier, not an RNNRegressor"):
        RNNRegressor.load(tmp_path / "c.safetensors")
    (tmp_path / "text.safetensors").write_text("hello")
    with raises(ModelFileError, "not a safetensors model file"):
        RNNClassifier.load(tmp_path / "text.safetensors")
    with raises(ModelFileError, "no such file"):
        RNNClassifier.load(tmp_path / "missing.safetensors")
    from rnnkit.files import write_tensors
    write_tensors(tmp_path / "lm.safetensors", {"model.w": np.zeros(2)}, {"step": 1})
    with raises(ModelFileError, "not an rnnkit sequence model"):
        RNNClassifier.load(tmp_path / "lm.safetensors")
    tensors = {"net.head.weight": np.zeros((9, 9))}
    write_tensors(tmp_path / "bad.safetensors", tensors, {"format": "rnnkit.models", "version": 1,
                                                         "estimator": "RNNClassifier", "params": {}})
    with raises(ModelFileError, "damaged RNNClassifier file"):
        RNNClassifier.load(tmp_path / "bad.safetensors")
    unsaved = RNNClassifier()
    with pytest.raises(NotFittedError):
        unsaved.save(tmp_path / "x.safetensors")


# -- bad input (the list and more) ----------------------------------------------------------

def test_bad_input_is_a_clear_error():
    X, y = bump_data(20, 12)
    clf = RNNClassifier(**FAST | {"epochs": 2})
    bad = np.zeros((4, 5))
    bad[2, 3] = np.nan
    with raises(ValueError, "X contains NaN at index (2, 3)"):
        clf.fit(bad, [0, 1, 0, 1])
    bad[2, 3] = np.inf
    with raises(ValueError, "X contains infinity"):
        clf.fit(bad, [0, 1, 0, 1])
    with raises(ValueError, "X[1] contains NaN"):
        clf.fit([np.zeros(3), np.array([1.0, np.nan])], [0, 1])
    with raises(ValueError, "X is empty", "0 sample"):
        clf.fit(np.zeros((0, 5)), [])
    with raises(ValueError, "X[1] is empty"):
        clf.fit([np.zeros(3), np.zeros(0)], [0, 1])
    with raises(ValueError, "same number of features per step", "X[0] has 2", "X[1] has 3"):
        clf.fit([np.zeros((4, 2)), np.zeros((5, 3))], [0, 1])
    with raises(ValueError, "y must have one entry per sequence of X: expected 20, found 19"):
        clf.fit(X, y[:19])
    with raises(ValueError, "y has 1 class ('a')", "at least 2 classes"):
        clf.fit(X, ["a"] * 20)
    with raises(ValueError, "Unknown label type: continuous"):
        clf.fit(X, np.linspace(0, 1, 20))
    with raises(ValueError, "requires y to be passed"):
        clf.fit(X, None)
    with raises(ValueError, "2-D (n, T) or 3-D (n, T, F)", "got 1-D", "X[None]"):
        clf.fit(np.zeros(5), [1])
    with raises(ValueError, "X must hold numbers"):
        clf.fit(np.array([["a", "b"], ["c", "d"]]), [0, 1])
    with raises(ValueError, "Complex data not supported"):
        clf.fit(np.ones((2, 3)) * 1j, [0, 1])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clf.predict(X)
    with raises(ValueError, "y contains NaN"):
        RNNRegressor(**FAST).fit(np.zeros((3, 4)), [1.0, np.nan, 2.0])


def test_predict_input_must_match_fit():
    rng = np.random.default_rng(13)
    clf = RNNClassifier(**FAST | {"epochs": 2}).fit(rng.standard_normal((20, 8)), np.arange(20) % 2)
    with raises(ValueError, "X has 5 features, but RNNClassifier is expecting 8", "as a list"):
        clf.predict(np.zeros((3, 5)))
    assert clf.predict([np.zeros(5), np.zeros(12)]).shape == (2,)     # lists: any length
    with raises(ValueError, "X has 2 feature(s) per step", "fitted with 1"):
        clf.predict(np.zeros((3, 8, 2)))


@pytest.mark.parametrize("param,value,fragment", [
    ("cell", "cnn", "cell must be one of"), ("pooling", "sum", "pooling must be one of"),
    ("epochs", 0, "epochs must be an integer >= 1 or 'auto', got 0"), ("lr", -1.0, "lr must be a finite number > 0, got -1.0"),
    ("validation_fraction", 1.0, "validation_fraction must be a finite number in [0, 1), got 1.0"),
    ("frame", "big", "frame must be an integer >= 1 or 'auto', got str 'big'"),
    ("dropout", 1.5, "dropout must be a finite number in [0, 1), got 1.5"),
    ("time_budget", 0, "time_budget must be a finite number > 0 or None, got 0"), ("random_state", "x", "random_state must be"),
    ("bidirectional", "no", "bidirectional must be True or False, got str 'no'"),
])
def test_bad_hyperparameters_fail_at_fit_naming_the_parameter(param, value, fragment):
    X, y = bump_data(10, 14)
    clf = RNNClassifier(**{param: value})                     # the constructor only stores
    with raises(ValueError, fragment):
        clf.fit(X, y)


@pytest.mark.parametrize("param,value,fragment", [
    ("window", 0, "window must be an integer >= 1 or 'auto', got 0"),
    ("window", "x", "window must be an integer >= 1 or 'auto', got str 'x'"),
    ("output_steps", 1.5, "output_steps must be an integer >= 1, got float 1.5"),
    ("normalize", "z", "normalize must be one of last, global, both, got 'z'"),
    ("pooling", "sum", "pooling must be one of"), ("lr", 0.0, "lr must be a finite number > 0, got 0.0"),
])
def test_forecaster_bad_hyperparameters_fail_at_fit(param, value, fragment):
    fc = RNNForecaster(**{param: value})
    with raises(ValueError, fragment):
        fc.fit(seasonal(40))


def test_forecaster_bad_input():
    s = seasonal(60)
    fc = RNNForecaster(hidden_size=8, epochs=2, verbose=0, random_state=0)
    with pytest.raises(NotFittedError):
        fc.predict(3)
    with raises(ValueError, "X has 5 sample(s)", "at least 2 are needed"):
        RNNForecaster(window=4).fit(s[:5])
    with raises(ValueError, "X contains NaN at index (3,)"):
        fc.fit(np.r_[s[:3], np.nan, s[4:]])
    fc.fit(s)
    with raises(ValueError, "history has 10 steps, but this model needs at least window_=19"):
        fc.predict(1, history=s[:10])
    with raises(ValueError, "the number of steps to forecast must be an integer >= 1, got 0"):
        fc.predict(0)
    with raises(ValueError, "X has 2 features, but RNNForecaster is expecting 1"):
        fc.predict(np.zeros((3, 2)))
    with raises(ValueError, "exog has 1 series (columns), but the model was fitted with 0"):
        fc.predict(3, exog=np.zeros((3, 1)))
    with_exog = RNNForecaster(hidden_size=8, epochs=2, verbose=0).fit(s, exog=np.zeros((60, 2)))
    with raises(ValueError, "exog is required", "2 extra input series", "(4 rows)"):
        with_exog.predict(4)
    with raises(ValueError, "exog must have 4 rows", "got 3"):
        with_exog.predict(4, exog=np.zeros((3, 2)))
    with raises(ValueError, "exog must have 60 rows"):
        RNNForecaster().fit(s, exog=np.zeros((59, 1)))
    with raises(ValueError, "output_steps must be an integer >= 1, got 0"):
        RNNForecaster(output_steps=0).fit(s)


# -- without scikit-learn ---------------------------------------------------------------------------

def test_everything_works_without_scikit_learn_and_the_ucr_extra(tmp_path):
    code = f"""
import sys
sys.modules['sklearn'] = None; sys.modules['sktime'] = None     # import of either now fails
import numpy as np, rnnkit, rnnkit.models
from rnnkit.models import RNNClassifier, RNNRegressor, RNNForecaster
from rnnkit.models._sklearn import HAVE_SKLEARN, NotFittedError
assert not HAVE_SKLEARN
rng = np.random.default_rng(0)
X, y = rng.standard_normal((30, 6)), np.arange(30) % 3
clf = RNNClassifier(hidden_size=8, epochs=3, verbose=0, random_state=0)
assert clf.get_params()['hidden_size'] == 8 and clf.set_params(lr=0.01) is clf and clf.lr == 0.01
assert 'hidden_size=8' in repr(clf)
try:
    clf.predict(X); raise SystemExit('no error')
except NotFittedError as e:
    assert isinstance(e, ValueError)
acc = clf.fit(X, y).score(X, y)
assert 0 <= acc <= 1
clf.save(r'{tmp_path}/m.safetensors')
assert (RNNClassifier.load(r'{tmp_path}/m.safetensors').predict(X) == clf.predict(X)).all()
assert isinstance(RNNRegressor(epochs=2, verbose=0).fit(X, X[:, 0]).score(X, X[:, 0]), float)
RNNForecaster(epochs=2, verbose=0).fit(np.arange(40.0)).predict(3)
from rnnkit.cli import main
assert main(['classify', '--dataset', 'GunPoint']) == 2
assert 'sklearn' not in [m for m in sys.modules if sys.modules[m] is not None]
print('ok')
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
    assert 'needs the data sets that ship inside sktime: pip install "rnnkit[ucr]"' in run.stderr


def test_forecaster_keeps_windows_to_train_on_at_any_validation_fraction():
    """10 windows and validation_fraction=0.95: at most 8 are held out, training still runs."""
    s = seasonal(60)
    fc = RNNForecaster(window=48, hidden_size=8, epochs=3, validation_fraction=0.95, verbose=0,
                       random_state=0).fit(s[:58])
    assert len(fc.history_[0].train_loss) == fc.n_epochs_ >= 1
    assert np.all(np.isfinite(fc.history_[0].train_loss)) and len(fc.history_[0].val_loss) == fc.n_epochs_


def test_estimator_errors_are_user_errors_and_value_errors():
    """Bad input is a ValueError for Python callers and a one-line error for the command line;
    a run that diverges says so as a user error too (FloatingPointError for Python callers)."""
    from rnnkit.errors import UserError
    from rnnkit.models.errors import InputError, TrainingDiverged
    with pytest.raises(InputError) as info:
        RNNClassifier(epochs=0).fit(*bump_data(10, 14))
    assert isinstance(info.value, (UserError, ValueError))
    assert issubclass(TrainingDiverged, UserError) and issubclass(TrainingDiverged, FloatingPointError)


def test_predict_does_not_recheck_hyperparameters():
    """Hyperparameters are checked by fit; a bad one set after fit waits for the next fit."""
    X, y = bump_data(20, 15)
    clf = RNNClassifier(hidden_size=8, epochs=2, verbose=0, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    clf.set_params(lr=-1.0, batch_size=0)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    with raises(ValueError, "batch_size must be an integer >= 1, got 0"):
        clf.fit(X, y)
