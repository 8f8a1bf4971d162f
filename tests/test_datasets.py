"""Data for ``rnnkit classify`` / ``forecast``: the .ts reader, the sets that ship inside sktime
(found and read without importing sktime), and 1-NN DTW against a NumPy oracle."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from rnnkit.models import baselines
from rnnkit.models.datasets import (
    BUNDLED_CLASSIFICATION, BUNDLED_SERIES, bundled_dir, load_bundled_series, load_ucr, read_labelled,
)
from rnnkit.models.errors import DataError
from rnnkit.models.tsfile import read_ts
from tsdata import fake_sktime, toy_cases, ts_text  # noqa: F401 (fake_sktime is a fixture)

HAVE_SKTIME = importlib.util.find_spec("sktime") is not None
HAVE_DTAIDISTANCE = importlib.util.find_spec("dtaidistance") is not None
needs_sktime = pytest.mark.skipif(not HAVE_SKTIME, reason='needs sktime (pip install "rnnkit[ucr]")')
needs_dtw = pytest.mark.skipif(not HAVE_DTAIDISTANCE, reason='needs dtaidistance ("rnnkit[ucr]")')


# -- the .ts format ---------------------------------------------------------------------------------

def test_ts_multivariate_variable_length_with_missing_tails(tmp_path):
    X, y = toy_cases(6, 0, channels=3, lengths=(4, 9))
    path = tmp_path / "toy.ts"
    path.write_text(ts_text(X, y, missing_tail=[0, 2, 0, 5, 1, 0]))
    ts = read_ts(path)
    assert ts.kind == "class" and ts.labels == y and ts.header["problemname"] == "Toy"
    assert isinstance(ts.X, list) and [x.shape for x in ts.X] == [x.shape for x in X]
    for got, want in zip(ts.X, X):
        np.testing.assert_array_equal(got, want)          # '?' padding removed, values exact
    data = read_labelled(path)                            # the command line's entry: by suffix
    assert list(data.y) == y and data.y.dtype.kind == "U"


def test_ts_equal_lengths_give_one_array_and_int_labels(tmp_path):
    X, _ = toy_cases(4, 1, channels=2, lengths=(5, 5))
    path = tmp_path / "eq.ts"
    path.write_text(ts_text(X, [1, 2, 1, 2]))
    data = read_labelled(path)
    assert data.X.shape == (4, 5, 2) and data.y.tolist() == [1, 2, 1, 2] and data.y.dtype.kind == "i"
    np.testing.assert_array_equal(data.X, np.stack(X))


def test_ts_regression_targets(tmp_path):
    path = tmp_path / "reg.ts"
    path.write_text("@problemName R\n@targetLabel true\n@data\n1,2,3:0.5\n4,5,6:-1.25\n")
    assert read_labelled(path).y.tolist() == [0.5, -1.25]


@pytest.mark.parametrize("text,fragment", [
    ("@problemName X\n1,2:a\n", "line 2: expected a '@' metadata line or '@data'"),
    ("@problemName X\n@classLabel true a\n", "no '@data' line"),
    ("@classLabel true a\n@data\n", "no cases after @data"),
    ("@classLabel true a\n@data\n1,?,3:a\n", "line 3: missing or infinite values inside the case"),
    ("@classLabel true a\n@data\n1,x,3:a\n", "line 3: a value is not a number"),
    ("@classLabel true a\n@data\n1,2:1,2,3:a\n", "line 3: the channels have different lengths [2, 3]"),
    ("@classLabel true a\n@data\n1,2:a\n1,2:3,4:a\n", "line 4: 2 channel(s), but the first case has 1"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", "@dimensions 2, but the cases have 1"),
    ("@timeStamps true\n@classLabel true a\n@data\n(1,2):a\n", "@timeStamps true"),
    ("@classLabel true a\n@data\n?,?:a\n", "line 3: the case has no values"),
    ("@problemName X\n@data\n1,2,3\n", "the file has no labels"),
])
def test_ts_errors_name_the_file_and_line(tmp_path, text, fragment):
    path = tmp_path / "bad.ts"
    path.write_text(text)
    with pytest.raises(DataError) as exc:
        read_labelled(path)
    assert str(path) in str(exc.value) and fragment in str(exc.value), str(exc.value)


# -- the sets bundled with sktime -------------------------------------------------------------------

def test_bundled_sets_read_without_importing_sktime(fake_sktime):
    train, test = load_ucr("JapaneseVowels")
    assert len(train.X) == 20 and len(test.X) == 10
    assert {x.shape[1] for x in train.X} == {12} and {len(x) for x in train.X} <= set(range(7, 12))
    X, y = toy_cases(20, 0, channels=12, lengths=(7, 11))
    np.testing.assert_array_equal(train.X[3], X[3])
    assert train.y.tolist() == y
    train, _ = load_ucr("GunPoint")
    assert train.X.shape == (20, 30, 1)
    series = load_bundled_series("airline")
    assert series.shape == (144,) and series[0] == 100.0
    assert "sktime" not in sys.modules


def test_bundled_names_and_missing_files(fake_sktime):
    with pytest.raises(DataError, match="'Nope': not one of the sets bundled with sktime"):
        load_ucr("Nope")
    with pytest.raises(DataError, match="the installed sktime lacks .*OSULeaf_TRAIN.ts"):
        load_ucr("OSULeaf")
    with pytest.raises(DataError, match="expected one of airline, lynx"):
        load_bundled_series("sunspots")


def test_missing_sktime_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sktime", None)          # find_spec now finds nothing
    with pytest.raises(DataError) as exc:
        load_ucr("GunPoint")
    assert str(exc.value).startswith('--dataset GunPoint needs the data sets that ship inside '
                                     'sktime: pip install "rnnkit[ucr]"')


# (train n, test n, shortest, longest, channels) of each set, as the archive describes them
SHAPES = {"ACSF1": (100, 100, 1460, 1460, 1), "ArrowHead": (36, 175, 251, 251, 1),
          "BasicMotions": (40, 40, 100, 100, 6), "GunPoint": (50, 150, 150, 150, 1),
          "ItalyPowerDemand": (67, 1029, 24, 24, 1), "JapaneseVowels": (270, 370, 7, 26, 12),
          "OSULeaf": (200, 242, 427, 427, 1), "PLAID": (537, 537, 100, 1344, 1),
          "UnitTest": (20, 22, 24, 24, 1)}


@needs_sktime
def test_every_bundled_set_loads_with_its_archive_shape():
    assert set(SHAPES) == set(BUNDLED_CLASSIFICATION)
    for name, (n_train, n_test, shortest, longest, channels) in SHAPES.items():
        train, test = load_ucr(name)
        lengths = [len(x) for x in train.X]
        assert (len(train.y), len(test.y)) == (n_train, n_test), name
        assert (min(lengths), max(lengths), train.X[0].shape[1]) == (shortest, longest, channels), name
        assert set(test.y) <= set(train.y), name


@needs_sktime
@pytest.mark.parametrize("name", ["BasicMotions", "JapaneseVowels"])
def test_reader_equals_sktimes_own(name):
    """sktime's loader (which imports pandas) gives the same values; it lower-cases labels."""
    import sktime.datasets
    for path, ours in zip((bundled_dir() / name / f"{name}_{s}.ts" for s in ("TRAIN", "TEST")),
                          load_ucr(name)):
        X, y = sktime.datasets.load_from_tsfile(str(path), return_data_type="nested_univ")
        assert [str(v).lower() for v in ours.y] == [str(v) for v in y]
        for i in range(len(X)):
            ref = np.stack([np.asarray(X.iloc[i, c], float) for c in range(X.shape[1])], axis=1)
            np.testing.assert_array_equal(ours.X[i], ref)


@needs_sktime
def test_every_bundled_series_loads():
    lengths = {"airline": 144, "lynx": 114, "shampoo": 36, "uschange": 187, "pbs": 204,
               "solar": 289, "longley": 16}
    assert set(lengths) == set(BUNDLED_SERIES)
    for name, n in lengths.items():
        s = load_bundled_series(name)
        assert s.shape == (n,) and np.isfinite(s).all(), name
    assert load_bundled_series("airline")[[0, -1]].tolist() == [112.0, 432.0]
    assert load_bundled_series("uschange", "Income")[0] == pytest.approx(0.972261043)


# -- 1-NN DTW -------------------------------------------------------------------------------------

def oracle_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """D(T, U) of the full-window DTW recursion, cost ||a_i - b_j||^2 (plain loops)."""
    D = np.full((len(a) + 1, len(b) + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            D[i, j] = np.sum((a[i - 1] - b[j - 1]) ** 2) + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return D[-1, -1]


@needs_dtw
@pytest.mark.parametrize("channels", [1, 3])
def test_dtw_1nn_equals_the_numpy_oracle(channels):
    """Variable lengths, several channels: the same predictions as 1-NN on the oracle's D."""
    X, y = toy_cases(30, 3, channels=channels, lengths=(6, 14))
    rng = np.random.default_rng(4)
    X_train, y_train, X_test, y_test = X[:12], np.array(y[:12]), X[12:], np.array(y[12:])
    y_train[rng.choice(12, 3, replace=False)] = "c"           # a third class, mislabelled ones
    D = np.array([[oracle_dtw(a, b) for b in X_test] for a in X_train])        # (12, 18)
    want = y_train[np.argmin(D, axis=0)]
    got = baselines.dtw_1nn(X_train, y_train, X_test)
    np.testing.assert_array_equal(got, want)
    assert 0.3 < np.mean(got == y_test) < 1.0                  # a case where the choice matters
    if channels == 1:                                          # the (n, T) and (n, T, 1) layouts
        X_eq = np.stack([x[:6] for x in X])
        D = np.array([[oracle_dtw(a, b) for b in X_eq[12:]] for a in X_eq[:12]])
        np.testing.assert_array_equal(baselines.dtw_1nn(X_eq[:12, :, 0], y_train, X_eq[12:, :, 0]),
                                      y_train[np.argmin(D, axis=0)])


@needs_dtw
@needs_sktime
@pytest.mark.parametrize("name,correct", [("UnitTest", 21), ("BasicMotions", 39), ("JapaneseVowels", 351)])
def test_dtw_1nn_on_archive_sets(name, correct):
    """The accuracy aeon's KNeighborsTimeSeriesClassifier(distance="dtw") gets on the same split
    (21/22, 39/40, 351/370, run with aeon 1.6 in its own environment)."""
    train, test = load_ucr(name)
    assert np.sum(baselines.dtw_1nn(train.X, train.y, test.X) == test.y) == correct


def test_missing_dtaidistance_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dtaidistance", None)
    with pytest.raises(DataError, match=r'--dtw needs dtaidistance: pip install "rnnkit\[ucr\]"'):
        baselines.dtw_1nn(np.zeros((2, 3)), np.array([0, 1]), np.zeros((1, 3)))
