"""``rnnkit classify``'s per-class measures against scikit-learn's, and its confusion-matrix PNG."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

from rnnkit.models.metrics import class_report, format_report
from rnnkit.plots import PlotError, require_matplotlib


@pytest.mark.parametrize("seed", range(5))
def test_measures_equal_scikit_learns(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    from sklearn.utils.multiclass import unique_labels
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    names = np.array(["cat", "dog", "eel", "fox", "gnu", "hen"])[:k] if seed % 2 else np.arange(k) * 10
    y_true = rng.choice(names, size=50)
    y_pred = np.where(rng.random(50) < 0.6, y_true, rng.choice(names[: max(2, k - 1)], size=50))
    rep = class_report(y_true, y_pred)
    np.testing.assert_array_equal(rep.labels, unique_labels(y_true, y_pred))
    np.testing.assert_array_equal(rep.confusion, metrics.confusion_matrix(y_true, y_pred))
    p, r, f, n = metrics.precision_recall_fscore_support(y_true, y_pred, labels=rep.labels,
                                                         zero_division=0)
    np.testing.assert_allclose(rep.precision, p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rep.recall, r, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rep.f1, f, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(rep.support, n)


def test_a_class_never_predicted_and_one_never_true():
    rep = class_report(["a", "a", "b", "b"], ["a", "c", "a", "a"])
    assert rep.labels.tolist() == ["a", "b", "c"]
    assert rep.confusion.tolist() == [[1, 0, 1], [2, 0, 0], [0, 0, 0]]
    assert rep.precision.tolist() == [1 / 3, 0.0, 0.0] and rep.recall.tolist() == [0.5, 0.0, 0.0]
    assert rep.support.tolist() == [2, 2, 0]
    text = format_report(rep.to_json())
    assert "a          0.333   0.500  0.400        2" in text
    assert text.splitlines()[-3:] == ["  a      1 0 1", "  b      2 0 0", "  c      0 0 0"]


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("k", [2, 11])
def test_confusion_png_is_written_at_its_size(tmp_path, k):
    pytest.importorskip("matplotlib")
    import matplotlib.image
    from rnnkit.plots.confusion import figure_inches, plot_confusion
    rng = np.random.default_rng(k)
    labels = [f"class {i}" for i in range(k)]
    confusion = rng.integers(0, 20, (k, k))
    path = tmp_path / "cm.png"
    plot_confusion(labels, confusion, path, "title", dpi=80)
    w, h = figure_inches(k)
    assert png_size(path) == (round(w * 80), round(h * 80))
    pixels = matplotlib.image.imread(path)                 # decodes: a valid PNG
    assert pixels.shape[:2] == (round(h * 80), round(w * 80)) and pixels.std() > 0.05
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]     # no temporary file left
    with pytest.raises(ValueError, match=fr"confusion must be \({k + 1}, {k + 1}\) for {k + 1} labels, got \({k}, {k}\)"):
        plot_confusion(labels + ["one more"], confusion, path)


def test_missing_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotError, match=r'^--plot needs matplotlib: pip install "rnnkit\[plot\]"$'):
        require_matplotlib()
