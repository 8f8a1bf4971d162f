"""How RNNForecaster's defaults were chosen: variants on series bundled with aeon (not airline).

    python scripts/tune_forecaster.py --variants base global --seeds 0 1 --out tunef.jsonl
    python scripts/tune_forecaster.py --report tunef.jsonl

Each run holds out the end of a series, fits on the rest, forecasts the held-out part in one go
and records the RMSE relative to the better of the last-value and seasonal-naive forecasts
(below 1: the model beats both). The airline series, which the README reports, is not used.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict

import numpy as np

# name: (loader, column or None, held-out steps, season)
SERIES = {"lynx": ("load_lynx", None, 14, 10), "shampoo": ("load_shampoo_sales", None, 12, 12),
          "uschange": ("load_uschange", "Consumption", 12, 4),
          "solar": ("load_solar", None, 96, 48)}
VARIANTS = {
    "base": {}, "global": {"normalize": "global"}, "both": {"normalize": "both"}, "direct": {"output_steps": "h"},
    "both-direct": {"normalize": "both", "output_steps": "h"}, "global-direct": {"normalize": "global", "output_steps": "h"},
    "w12": {"window": 12}, "w48": {"window": 48}, "max": {"pooling": "max"}, "attention": {"pooling": "attention"},
    "h32": {"hidden_size": 32}, "h128": {"hidden_size": 128}, "lstm": {"cell": "lstm"},
    "val0": {"validation_fraction": 0.0}, "lr1e-2": {"lr": 1e-2}, "lr1e-3": {"lr": 1e-3},
    "bs16": {"batch_size": 16}, "pat60": {"patience": 60, "epochs": 600},
}


def m1_series() -> list[np.ndarray]:
    """The 10 longest yearly series of the M1 competition set aeon ships (45-58 years, trends)."""
    import os
    import aeon.datasets as ds
    path = os.path.join(os.path.dirname(ds.__file__), "data", "m1_yearly_dataset", "m1_yearly_dataset.tsf")
    df = ds.load_from_tsf_file(path)
    df = df[0] if isinstance(df, tuple) else df
    series = sorted((np.asarray(v, np.float64) for v in df["series_value"]), key=len)
    return series[-10:]


def load(name: str) -> tuple[np.ndarray, int, int]:
    import aeon.datasets as ds
    from rnnkit.models.datasets import read_series
    loader, column, h, season = SERIES[name]
    if column:                                   # a column of the CSV file aeon ships
        from pathlib import Path
        s = read_series(Path(ds.__file__).parent / "data" / "Uschange" / "Uschange.csv", column)
    else:
        s = np.asarray(getattr(ds, loader)(), np.float64).reshape(-1)
    if name == "solar":
        s = s[-48 * 28:]                         # the last four weeks of half-hours
    return s, h, season


def run(variant: str, name: str, seed: int) -> dict:
    if name == "m1":                              # geometric mean over the ten series, horizon 6
        rows = [one(variant, s, 6, 1, seed) for s in m1_series()]
        rel = float(np.exp(np.mean(np.log([r[1] for r in rows]))))
        return {"variant": variant, "series": name, "seed": seed, "rmse": None, "relative": rel,
                "seconds": sum(r[2] for r in rows), "epochs": None, "window": None}
    s, h, season = load(name)
    err, rel, seconds, fc = one(variant, s, h, season, seed)
    return {"variant": variant, "series": name, "seed": seed, "rmse": err, "relative": rel,
            "seconds": seconds, "epochs": fc.n_epochs_, "window": fc.window_}


def one(variant: str, s: np.ndarray, h: int, season: int, seed: int):
    from rnnkit.models import RNNForecaster
    from rnnkit.models.baselines import last_value, rmse, seasonal_naive
    train, test = s[:-h], s[-h:]
    params = {k: (h if v == "h" else v) for k, v in VARIANTS[variant].items()}
    fc = RNNForecaster(verbose=0, random_state=seed, **params)
    t = time.perf_counter()
    fc.fit(train)
    seconds = time.perf_counter() - t
    err = rmse(test, fc.predict(h))
    naive = min(rmse(test, last_value(train, h)), rmse(test, seasonal_naive(train, h, season)))
    return err, err / naive, seconds, fc


def report(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    rel, sec = defaultdict(list), defaultdict(list)
    for r in rows:
        rel[r["variant"], r["series"]].append(r["relative"])
        sec[r["variant"], r["series"]].append(r["seconds"])
    names = sorted({r["series"] for r in rows})
    print("| variant | " + " | ".join(names) + " | geometric mean | mean fit s |")
    print("|---" * (len(names) + 3) + "|")
    for v in dict.fromkeys(r["variant"] for r in rows):
        vals = [np.mean(rel[v, n]) for n in names if (v, n) in rel]
        cells = [f"{np.mean(rel[v, n]):.3f}" if (v, n) in rel else "" for n in names]
        times = [np.mean(sec[v, n]) for n in names if (v, n) in sec]
        print(f"| {v} | " + " | ".join(cells) + f" | {np.exp(np.mean(np.log(vals))):.3f} | {np.mean(times):.1f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", nargs="+", default=["base"], choices=list(VARIANTS))
    p.add_argument("--series", nargs="+", default=list(SERIES) + ["m1"], choices=list(SERIES) + ["m1"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--out", default="tunef.jsonl")
    p.add_argument("--report", metavar="JSONL")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    warnings.filterwarnings("ignore")
    for v in args.variants:
        for n in args.series:
            for s in args.seeds:
                try:
                    r = run(v, n, s)
                except ValueError as exc:              # e.g. a window longer than the series allows
                    print(f"skipped {v} {n}: {exc}")
                    continue
                print(json.dumps(r), flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
