"""Small data in the archive's formats, and a stand-in for sktime's package that cannot be imported.

``fake_sktime`` lays out ``sktime/datasets/data/`` as sktime 1.2 ships it — NAME/NAME_TRAIN.ts,
NAME/NAME_TEST.ts and the series' CSV files — under a temporary directory put first on
``sys.path``; its ``__init__.py`` raises, so a test that passes proves rnnkit reads the files
without importing sktime.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest


def ts_text(X, labels, name="Toy", missing_tail=None, header_extra="") -> str:
    """A .ts file of the cases X (each (T_i, C)) with class labels; ``missing_tail[i]`` '?'
    values appended to every channel of case i (the archive's padding of shorter cases)."""
    C = X[0].shape[1]
    head = ["# A toy problem", "% a comment line of the archive's other kind", f"@problemName {name}",
            "@timeStamps false", "@missing true", f"@univariate {'true' if C == 1 else 'false'}"]
    if C > 1:
        head.append(f"@dimensions {C}")
    head += [f"@equalLength {'true' if len({len(x) for x in X}) == 1 else 'false'}",
             "@classLabel true " + " ".join(sorted(set(map(str, labels))))]
    lines = head + ([header_extra] if header_extra else []) + ["@data"]
    for i, (x, label) in enumerate(zip(X, labels)):
        pad = ["?"] * (missing_tail[i] if missing_tail else 0)
        chans = [",".join([repr(float(v)) for v in x[:, c]] + pad) for c in range(C)]
        lines.append(":".join(chans) + f":{label}")
    return "\n".join(lines) + "\n"


def toy_cases(n, seed, channels=1, lengths=(20, 20)):
    """n cases of two classes ("a": flat noise, "b": a rising ramp) of lengths in ``lengths``."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        T = int(rng.integers(lengths[0], lengths[1] + 1))
        ramp = np.linspace(0, 2, T)[:, None] if i % 2 else 0.0
        X.append(np.round(rng.standard_normal((T, channels)) * 0.3 + ramp, 5))
        y.append("ab"[i % 2])
    return X, y


@pytest.fixture
def fake_sktime(tmp_path, monkeypatch):
    """The data directory of a fake sktime: GunPoint (1 channel), JapaneseVowels (12 channels,
    variable lengths), the airline series. Returns the data directory."""
    site = tmp_path / "site"
    pkg = site / "sktime"
    data = pkg / "datasets" / "data"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('rnnkit must not import sktime')\n")
    sets = {"GunPoint": dict(channels=1, lengths=(30, 30)),
            "JapaneseVowels": dict(channels=12, lengths=(7, 11))}
    for name, shape in sets.items():
        (data / name).mkdir(parents=True)
        for split, n, seed in (("TRAIN", 20, 0), ("TEST", 10, 1)):
            X, y = toy_cases(n, seed, **shape)
            (data / name / f"{name}_{split}.ts").write_text(ts_text(X, y, name))
    (data / "Airline").mkdir()
    (data / "Airline" / "Airline.csv").write_text(
        "Date,Passengers\n" + "".join(f"{1949 + i // 12}-{i % 12 + 1:02d},{100 + i}\n" for i in range(144)))
    monkeypatch.delitem(sys.modules, "sktime", raising=False)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return data
