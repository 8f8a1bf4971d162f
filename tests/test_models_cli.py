"""``rnnkit classify`` and ``rnnkit forecast``: files a user has, the sets bundled with sktime, errors."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.models import RNNClassifier, RNNForecaster
from tsdata import fake_sktime  # noqa: F401 (a fixture)

QUICK = ["--hidden", "8", "--epochs", "30", "--lr", "0.02", "--quiet"]


def write_ucr(path, n, seed, sep="\t", ragged=False):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        label = ["walk", "run"][i % 2]
        T = int(rng.integers(15, 21)) if ragged else 20
        x = rng.standard_normal(T) * 0.3 + (np.linspace(0, 2, T) if i % 2 else 0)
        fields = [label] + [f"{v:.5f}" for v in x] + (["NaN"] * (20 - T) if ragged else [])
        lines.append(sep.join(fields))
    path.write_text("\n".join(lines) + "\n")
    return path


def run_json(capsys, argv):
    capsys.readouterr()
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_classify_files_with_variable_lengths_and_save(tmp_path, capsys):
    train = write_ucr(tmp_path / "train.tsv", 60, 0, ragged=True)
    test = write_ucr(tmp_path / "test.csv", 40, 1, sep=",")
    model = tmp_path / "m.safetensors"
    r = run_json(capsys, ["classify", str(train), str(test), *QUICK, "--save", str(model)])
    assert r["train"] == {"n": 60, "min_length": 15, "max_length": 20, "features": 1}
    assert r["classes"] == 2 and r["accuracy"] >= 0.9
    assert r["baselines"]["majority_class"] == 0.5
    clf = RNNClassifier.load(model)
    assert set(clf.classes_) == {"run", "walk"}
    assert main(["classify", str(train), str(test), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "rnnkit RNNClassifier  accuracy" in out and "majority class" in out


def test_forecast_file_column_future_and_baselines(tmp_path, capsys):
    t = np.arange(96)
    values = 100 + t + 10 * np.sin(2 * np.pi * t / 12)
    path = tmp_path / "sales.csv"
    path.write_text("month,sales\n" + "".join(f"m{i},{v:.3f}\n" for i, v in enumerate(values)))
    r = run_json(capsys, ["forecast", str(path), "--column", "sales", "--horizon", "12", "--normalize",
                          "last", *QUICK])
    assert r["season"] == 12 and r["length"] == 96 and len(r["forecast"]) == 12
    assert set(r["baselines"]) == {"last_value", "seasonal_naive"}
    assert r["baselines"]["seasonal_naive"]["rmse"] == pytest.approx(12.0, rel=1e-4)  # trend of 1/step
    assert r["rnnkit"]["rmse"] < r["baselines"]["last_value"]["rmse"]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(f"{v}" for v in values))
    model = tmp_path / "f.safetensors"
    r = run_json(capsys, ["forecast", str(plain), "--horizon", "5", "--future", *QUICK, "--save", str(model)])
    assert "baselines" not in r and len(r["forecast"]) == 5
    np.testing.assert_allclose(RNNForecaster.load(model).predict(5), r["forecast"], rtol=1e-12)
    assert main(["forecast", str(plain), "--horizon", "12", "--season", "12", *QUICK]) == 0
    assert "seasonal naive" in capsys.readouterr().out


def test_bundled_sets_from_sktimes_files(capsys, fake_sktime, tmp_path):
    r = run_json(capsys, ["classify", "--dataset", "GunPoint", *QUICK])
    assert r["train"] == {"n": 20, "min_length": 30, "max_length": 30, "features": 1}
    assert r["test"]["n"] == 10 and r["accuracy"] >= 0.9
    r = run_json(capsys, ["classify", "--dataset", "JapaneseVowels", *QUICK])
    assert r["train"] == {"n": 20, "min_length": 7, "max_length": 11, "features": 12}
    r = run_json(capsys, ["forecast", "--dataset", "airline", "--horizon", "36", *QUICK])
    assert r["length"] == 144 and r["actual"][0] == 208.0
    data = fake_sktime / "GunPoint"              # the same files given by name: the .ts reader
    r = run_json(capsys, ["classify", str(data / "GunPoint_TRAIN.ts"), str(data / "GunPoint_TEST.ts"), *QUICK])
    assert r["train"]["n"] == 20 and r["test"]["n"] == 10
    assert "sktime" not in sys.modules


def test_classify_reports_per_class_measures_and_plots(capsys, fake_sktime, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "cm.png"
    r = run_json(capsys, ["classify", "--dataset", "GunPoint", *QUICK, "--plot", str(png)])
    rep = r["report"]
    assert rep["labels"] == ["a", "b"] and rep["support"] == [5, 5]
    assert np.trace(rep["confusion"]) == round(r["accuracy"] * 10)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["classify", "--dataset", "GunPoint", *QUICK]) == 0
    out = capsys.readouterr().out
    assert "precision  recall" in out and "confusion matrix (rows: true class, columns: predicted)" in out


@pytest.mark.skipif(importlib.util.find_spec("sktime") is None or importlib.util.find_spec("dtaidistance") is None,
                    reason='needs the ucr extra (sktime, dtaidistance)')
def test_real_bundled_sets(capsys):
    r = run_json(capsys, ["classify", "--dataset", "UnitTest", *QUICK, "--dtw"])
    assert r["train"]["n"] == 20 and r["test"]["n"] == 22
    assert r["baselines"]["dtw_1nn"] == pytest.approx(21 / 22)     # as aeon's 1-NN DTW
    r = run_json(capsys, ["classify", "--dataset", "BasicMotions", "--epochs", "1", "--quiet"])
    assert r["train"] == {"n": 40, "min_length": 100, "max_length": 100, "features": 6}
    r = run_json(capsys, ["forecast", "--dataset", "airline", "--horizon", "36", "--epochs", "1", "--quiet"])
    assert r["length"] == 144 and r["season"] == 12 and len(r["actual"]) == 36
    assert r["actual"][0] == 340.0                              # January 1958
    # the figures docs/sequence_models.md quotes for the naive forecasts of the last 36 months
    assert r["baselines"]["seasonal_naive"]["mape"] == pytest.approx(13.19, abs=0.01)


@pytest.mark.parametrize("argv,fragment", [
    (["classify", "missing.tsv", "other.tsv"], "missing.tsv: no such file"),
    (["classify", "--dataset", "GunPont"], "--dataset: must be one of ACSF1, ArrowHead, BasicMotions, GunPoint, "
                                           "ItalyPowerDemand, JapaneseVowels, OSULeaf, PLAID, UnitTest, got 'GunPont' "
                                           "(did you mean GunPoint?)"),
    (["forecast", "--dataset", "airlines", "--horizon", "3"], "(did you mean airline?)"),
    (["classify", "{train}"], "expected TRAIN and TEST files"),
    (["classify", "{bad}", "{bad}"], "a value is not a number"),
    (["forecast", "{series}", "--horizon", "3", "--column", "x"], "no column named 'x'"),
    (["forecast", "{series}", "--horizon", "9"], "leaves 1 to train on"),
    (["forecast", "--horizon", "3"], "expected a SERIES file"),
    (["classify", "{train}", "{train}", "--cell", "cnn"], "--cell: must be one of gru, lstm, rnn, got 'cnn'"),
])
def test_command_line_errors(tmp_path, capsys, argv, fragment):
    files = {"train": write_ucr(tmp_path / "t.tsv", 6, 0), "bad": tmp_path / "bad.tsv",
             "series": tmp_path / "s.txt"}
    files["bad"].write_text("1\t0.5\tabc\n")
    files["series"].write_text("\n".join(str(v) for v in range(10)))
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    try:
        code = main(argv + ["--quiet"])
    except SystemExit as exc:                      # refused by the parser (a value outside choices=)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnkit {argv[0]}: error: ") and fragment in err, err


def test_missing_extras_say_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sktime", None)
    assert main(["forecast", "--dataset", "airline", "--horizon", "3"]) == 2
    assert 'needs the data sets that ship inside sktime: pip install "rnnkit[ucr]"' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    train = write_ucr(tmp_path / "t.tsv", 6, 0)
    assert main(["classify", str(train), str(train), "--plot", str(tmp_path / "x.png"), "--quiet"]) == 2
    assert capsys.readouterr().err == ('rnnkit classify: error: --plot needs matplotlib: '
                                       'pip install "rnnkit[plot]"\n')
    monkeypatch.setitem(sys.modules, "dtaidistance", None)
    assert main(["classify", str(train), str(train), "--dtw", *QUICK]) == 2
    assert '--dtw needs dtaidistance: pip install "rnnkit[ucr]"' in capsys.readouterr().err
