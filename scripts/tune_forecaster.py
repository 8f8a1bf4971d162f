"""How RNNForecaster's defaults were chosen and how it compares: development and check series.

Two steps, because the statistical baselines need statsmodels / statsforecast, which rnnkit does
not depend on (run the first step with any Python that has them, e.g. a venv of its own):

    /tmp/fc-venv/bin/python scripts/tune_forecaster.py stats --out fc_stats.json
    python scripts/tune_forecaster.py run --stats fc_stats.json --seeds 0 1 2 --out fc.jsonl
    python scripts/tune_forecaster.py report fc.jsonl

``stats`` gathers the series (sktime's bundled CSV files, statsmodels' bundled data sets, and
simulated series) and, for each, Holt-Winters (statsmodels, additive trend and season),
AutoETS and AutoARIMA (statsforecast) forecasts of its held-out end; it writes them all to one
JSON file, so the second step needs neither library. ``run`` fits RNNForecaster (``--set``:
parameters to vary, e.g. ``--set normalize=last``) on every series and records, beside seasonal
naive and a least-squares AR(9) (recursive), the held-out MAPE and RMSE, the one-step RMSE over
the held-out part against the AR(9)'s one-step forecasts, and the coverage of 90% intervals in a
3-window backtest.

Development series (defaults were chosen on these): sktime's Lynx, ShampooSales, Uschange
(consumption), and simulated series of seeds 100-102. Check series (reported, never tuned on):
statsmodels' co2 (monthly means), sunspots, nile, elnino, macrodata (realgdp), simulated series
of seeds 0-2, sktime's solar, PBS and Longley, and airline (sktime's copy; looked at while
developing, see docs/sequence_models.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

SKTIME = Path("/tmp/sk_dl/skx/sktime/datasets/data")       # an extracted sktime 1.2.0 wheel


def _csv_column(path: Path, k: int) -> list[float]:
    rows = list(csv.reader(open(path)))
    return [float(r[k]) for r in rows[1:]]


def simulated(kind: str, seed: int) -> np.ndarray:
    """trend_season: monthly, trend + additive season + noise; ar9: an AR(9) with a long cycle;
    multiplicative: monthly, exponential growth with a multiplicative season."""
    rng = np.random.default_rng(seed)
    t = np.arange(180)
    if kind == "trend_season":
        return 100 + 0.4 * t + 8 * np.sin(2 * np.pi * t / 12) + 3 * np.cos(4 * np.pi * t / 12) \
            + 2.0 * rng.standard_normal(len(t))
    if kind == "multiplicative":
        return 50 * np.exp(0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) * np.exp(0.03 * rng.standard_normal(len(t)))
    phi = np.array([0.9, -0.3, 0.1, 0.0, 0.05, -0.1, 0.1, 0.05, -0.25])      # stationary AR(9)
    x = np.zeros(300 + 100)
    for i in range(9, len(x)):
        x[i] = phi @ x[i - 9:i][::-1] + rng.standard_normal()
    return 50 + x[100:]


def gather() -> dict[str, dict]:
    """name → {values, horizon, season, role}; role: dev or check."""
    import statsmodels.api as sm
    out = {}
    add = lambda name, v, h, m, role: out.__setitem__(name, {"values": list(map(float, v)), "horizon": h,
                                                            "season": m, "role": role})
    add("lynx", _csv_column(SKTIME / "Lynx" / "Lynx.csv", 1), 14, 1, "dev")
    add("shampoo", _csv_column(SKTIME / "ShampooSales" / "ShampooSales.csv", 1), 12, 12, "dev")
    add("uschange", _csv_column(SKTIME / "Uschange" / "Uschange.csv", 2), 12, 4, "dev")
    for kind in ("trend_season", "ar9", "multiplicative"):
        for seed in (100, 101, 102):
            add(f"sim_{kind}_{seed}", simulated(kind, seed), 36 if kind != "ar9" else 20,
                12 if kind != "ar9" else 1, "dev")
        for seed in (0, 1, 2):
            add(f"sim_{kind}_{seed}", simulated(kind, seed), 36 if kind != "ar9" else 20,
                12 if kind != "ar9" else 1, "check")
    add("airline", _csv_column(SKTIME / "Airline" / "Airline.csv", 1), 36, 12, "check")
    add("solar", _csv_column(SKTIME / "solar" / "solar.csv", 1), 48, 48, "check")        # half-hours, 6 days
    add("pbs", _csv_column(SKTIME / "PBS_dataset" / "PBS_dataset.csv", 1), 24, 12, "check")  # counts
    add("longley", _csv_column(SKTIME / "Longley" / "Longley.csv", 1), 4, 1, "check")     # 16 years
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().resample("MS").mean().dropna()
    add("co2", co2.values, 36, 12, "check")
    add("sunspots", sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].values, 20, 1, "check")
    add("nile", sm.datasets.nile.load_pandas().data["volume"].values, 10, 1, "check")
    add("elnino", sm.datasets.elnino.load_pandas().data.iloc[:, 1:].values.reshape(-1), 36, 12, "check")
    add("realgdp", sm.datasets.macrodata.load_pandas().data["realgdp"].values, 12, 4, "check")
    return out


def statistical(values: np.ndarray, h: int, m: int) -> dict[str, list[float]]:
    """Holt-Winters (statsmodels), AutoETS and AutoARIMA (statsforecast) forecasts of the last h."""
    import warnings
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsforecast.models import AutoARIMA, AutoETS
    train = values[:-h]
    warnings.filterwarnings("ignore")
    hw = ExponentialSmoothing(train, trend="add", seasonal="add" if m > 1 else None,
                              seasonal_periods=m if m > 1 else None).fit()
    out = {"holt_winters": hw.forecast(h).tolist()}
    for name, model in (("auto_ets", AutoETS(season_length=m)), ("auto_arima", AutoARIMA(season_length=m))):
        out[name] = model.forecast(y=train.astype(np.float64), h=h)["mean"].tolist()
    return out


def cmd_stats(args) -> None:
    data = gather()
    for name, d in data.items():
        d["baselines"] = statistical(np.array(d["values"]), d["horizon"], d["season"])
        print(name, len(d["values"]), flush=True)
    Path(args.out).write_text(json.dumps(data))


def one(name: str, d: dict, params: dict, seed: int, backtest: bool = True) -> dict:
    from rnnkit.models import RNNForecaster, cross_validate
    from rnnkit.models.autoregression import fit_order, forecast_ar
    from rnnkit.models.baselines import mape, rmse, seasonal_naive
    s, h, m = np.array(d["values"]), d["horizon"], d["season"]
    train, test = s[:-h], s[-h:]
    t = time.perf_counter()
    fc = RNNForecaster(verbose=0, random_state=seed, **params).fit(train)
    seconds = time.perf_counter() - t
    pred = fc.predict(h)
    ar = fit_order(train, 0, 9)
    ar_multi = forecast_ar(ar, train[None, -9:], h)[0]
    full = s[-h - 9:]
    ar_one = forecast_ar(ar, np.lib.stride_tricks.sliding_window_view(full[:-1], 9), 1)[:, 0]
    one_step = fc.predict(test)
    lo, hi = fc.predict_interval(h, 0.9)
    forecasts = {"rnnkit": pred, "seasonal_naive": seasonal_naive(train, h, m), "ar9": ar_multi}
    forecasts |= {k: np.array(v) for k, v in d["baselines"].items()}
    row = {"series": name, "role": d["role"], "seed": seed, "params": params, "horizon": h, "seconds": seconds,
           "epochs": fc.n_epochs_, "window": fc.window_, "season": fc.season_, "correction": fc.correction_,
           "choices": fc.choices_,
           "mape": {k: mape(test, v) for k, v in forecasts.items()},
           "rmse": {k: rmse(test, v) for k, v in forecasts.items()},
           "one_step_rmse": {"rnnkit": rmse(test, one_step), "ar9": rmse(test, ar_one)},
           "holdout_covered": float(np.mean((test >= lo) & (test <= hi)))}
    if not backtest:
        row["backtest_covered"] = None
        return row
    try:
        bt = cross_validate(RNNForecaster(verbose=0, random_state=seed, **params), s, h, n_windows=3, coverage=0.9)
        row["backtest_covered"] = float(np.mean(bt.covered))
    except ValueError:
        row["backtest_covered"] = None
    return row


def cmd_run(args) -> None:
    data = json.loads(Path(args.stats).read_text())
    params = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        params[k] = json.loads(v) if v[:1].isdigit() or v in ("true", "false", "null") else v
    names = args.series or [n for n in data if args.role in (None, data[n]["role"])]
    for name in names:
        for seed in args.seeds:
            row = one(name, data[name], params, seed, not args.no_backtest)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


def cmd_report(args) -> None:
    rows = [json.loads(line) for line in open(args.jsonl)]
    groups = defaultdict(list)
    for r in rows:
        groups[json.dumps(r["params"], sort_keys=True), r["series"]].append(r)
    methods = ["rnnkit", "seasonal_naive", "ar9", "holt_winters", "auto_ets", "auto_arima"]
    print("| params | series | role | " + " | ".join(f"{m} MAPE / RMSE" for m in methods)
          + " | one-step RMSE rnnkit / AR(9) | 90% covered (backtest, holdout) | fit s |")
    print("|---" * (len(methods) + 6) + "|")
    for (params, name), rs in groups.items():
        cells = []
        for m in methods:
            mp = np.mean([r["mape"][m] for r in rs])
            rm = np.mean([r["rmse"][m] for r in rs])
            cells.append(f"{mp:.2f}% / {rm:.4g}")
        one = f"{np.mean([r['one_step_rmse']['rnnkit'] for r in rs]):.4g} / {rs[0]['one_step_rmse']['ar9']:.4g}"
        bts = [r["backtest_covered"] for r in rs if r["backtest_covered"] is not None]
        cov = f"{np.mean(bts):.2f}" if bts else "—"
        cov += f", {np.mean([r['holdout_covered'] for r in rs]):.2f}"
        print(f"| {params} | {name} | {rs[0]['role']} | " + " | ".join(cells) + f" | {one} | {cov} | "
              f"{np.mean([r['seconds'] for r in rs]):.1f} |")
    print()
    print("| params | role | series | rnnkit RMSE / method's, geometric mean: " + " | ".join(methods[1:])
          + " | kept the correction |")
    print("|---" * (len(methods) + 3) + "|")
    for params in dict.fromkeys(k[0] for k in groups):
        for role in ("dev", "check"):
            rs = [r for (p, _), g in groups.items() if p == params for r in g if r["role"] == role]
            if not rs:
                continue
            ratios = [np.exp(np.mean([np.log(r["rmse"]["rnnkit"] / r["rmse"][m]) for r in rs if r["rmse"][m] > 0]))
                      for m in methods[1:]]                  # (PBS ends in zeros: seasonal naive's RMSE 0)
            kept = np.mean([r["correction"] > 0 for r in rs])
            print(f"| {params} | {role} | {len({r['series'] for r in rs})} | "
                  + " | ".join(f"{v:.3f}" for v in ratios) + f" | {kept:.0%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(required=True)
    s = sub.add_parser("stats")
    s.add_argument("--out", default="fc_stats.json")
    s.set_defaults(func=cmd_stats)
    r = sub.add_parser("run")
    r.add_argument("--stats", default="fc_stats.json")
    r.add_argument("--series", nargs="+")
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    r.add_argument("--role", choices=["dev", "check"], help="only the development or the check series")
    r.add_argument("--no-backtest", action="store_true", help="skip the 3-window backtest (coverage)")
    r.add_argument("--out", default="fc.jsonl")
    r.set_defaults(func=cmd_run)
    q = sub.add_parser("report")
    q.add_argument("jsonl")
    q.set_defaults(func=cmd_report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
