"""The sequence-model tables of docs/sequence_models.md, measured: rnnkit beside baselines and
published figures.

    python scripts/seqmodels_table.py                 # 9 sets, 7 series, 5 seeds (hours)
    python scripts/seqmodels_table.py --quick         # 1 seed; UnitTest, ItalyPowerDemand, airline
    python scripts/seqmodels_table.py --datasets GunPoint BasicMotions --series airline --seeds 3
    python scripts/seqmodels_table.py --report .cache/seqmodels/results.json   # tables again

What runs where:
  rnnkit      every contender (CONTENDERS; add more with --contender) on every set and seed as
              its own process, ``python -m rnnkit.cli classify|forecast ... --seed S --json``,
              defaults otherwise, in the environment running this script (rnnkit with the ucr
              extra). Seed 0 of the first classification contender adds ``--dtw``: rnnkit's
              1-NN DTW, which must equal aeon's.
  baselines   scripts/baselines.py in a separate virtual environment created on first use
              (``--venv``, default .cache/baselines-venv; BASELINES lists what it installs), so
              that aeon's numba<0.64 pin never touches rnnkit's environment; it reads the same
              .ts files (sktime's, by path) and gets the same series values.
  published   test accuracies from the 2023 bake-off redux (Middlehurst, Schäfer and Bagnall,
              "Bake off redux: a review and experimental evaluation of recent time series
              classification algorithms", Data Mining and Knowledge Discovery 38, 2024), whose
              results ship in the tsml-eval 0.6.0 wheel (downloaded once, ``pip download
              --no-deps``, read as a zip): resample 0 is the archive's own train/test split —
              the one measured here — and the table shows it (``--published mean``: the mean of
              the 30 resamples); FCN from Fawaz et al. 2019 ("Deep learning for time series
              classification: a review", Data Mining and Knowledge Discovery 33:917-963, mean of
              10 runs on the archive split), not in the bake-off.
Forecasting holds out the end of each series (SERIES: horizon and season per series) and scores
MAPE and RMSE of the forecast of it in one go, and the share of the held-out values inside the
80% and 95% prediction intervals where a method has them (rnnkit's: ``rnnkit.coverage`` of its
JSON, ``{"80": share, ...}``, when present).

Output (``--out``, default .cache/seqmodels): results.json, every raw result and the versions,
and tables.md, the markdown tables (also printed); both written atomically. A contender or
baseline that fails (error, timeout) is recorded and shown as failed; the rest goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import venv
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ["aeon==1.6.0", "statsmodels==0.15.0", "statsforecast==2.1.1"]
TSML_EVAL = "tsml-eval==0.6.0"
BAKEOFF = "tsml_eval/publications/2023/tsc_bakeoff/results"
PUBLISHED = [("ResNet", "deeplearning"), ("InceptionTime", "deeplearning"), ("HC2", "hybrid"),
             ("MiniROCKET", "convolution"), ("1NN-DTW", "distance")]
# FCN: Fawaz et al. 2019, mean of 10 runs (results-uea-avg-std.csv of the authors' dl-4-tsc
# repository, which holds the paper's UCR-85 table; JapaneseVowels from its multivariate table,
# results-mts-avg-std.csv). LSTM-FCN: Karim et al. 2018, "LSTM fully convolutional networks for
# time series classification", IEEE Access 6:1662-1669, the authors' figures with the model
# chosen by minimum training loss (their repository's Results/train_loss_old_datasets.csv).
FCN = {"GunPoint": 1.000, "ItalyPowerDemand": 0.961, "ArrowHead": 0.843, "OSULeaf": 0.977,
       "JapaneseVowels": 0.993}
LSTM_FCN = {"GunPoint": 1.000, "ItalyPowerDemand": 0.962, "ArrowHead": 0.897, "OSULeaf": 0.983}
DATASETS = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "ArrowHead", "OSULeaf",
            "JapaneseVowels", "PLAID", "ACSF1", "UnitTest"]
# name: (values held out and forecast, season): a year of months or quarters (three for the
# airline, the classic test), about one lynx cycle, one day of half-hours, four years of Longley.
SERIES = {"airline": (36, 12), "lynx": (14, 10), "shampoo": (12, 12), "uschange": (12, 4),
          "pbs": (24, 12), "solar": (48, 48), "longley": (4, 1)}
CONTENDERS = {"classify": {"rnnkit": []},
              "forecast": {"rnnkit": [], "rnnkit --normalize last": ["--normalize", "last"]}}
QUICK = {"datasets": ["UnitTest", "ItalyPowerDemand"], "series": ["airline"], "seeds": 1}
FORECAST_NAMES = {"seasonal_naive": "seasonal naive", "ar": "AR(p), p by AIC, least squares",
                  "holt_winters": "Holt-Winters (statsmodels)", "auto_ets": "AutoETS (statsforecast)",
                  "auto_arima": "AutoARIMA (statsforecast)"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_json(cmd: list[str], timeout: float, stdin: str | None = None, env=None) -> dict:
    """The JSON object a process prints last, or {"error": why} (exit code, timeout, no JSON)."""
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}, no output"])[-1]
        return {"error": tail[:300]}
    return json.loads(lines[-1]) | {"wall_seconds": round(time.perf_counter() - start, 1)}


# -- the baselines' environment and the published figures -------------------------------------------

def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_baselines_venv(path: Path) -> Path:
    """The baselines' venv, created and filled on first use (a marker records what it holds)."""
    if path.resolve() == Path(sys.prefix).resolve():
        raise SystemExit(f"--venv {path} is the environment running rnnkit; give another path")
    marker = path / "rnnkit-baselines.txt"
    wanted = "\n".join(BASELINES) + "\n"
    if marker.is_file() and marker.read_text() == wanted:
        return venv_python(path)
    if not (path / "pyvenv.cfg").is_file():
        if path.exists() and any(path.iterdir()):
            raise SystemExit(f"--venv {path} exists and is not a virtual environment; give another path")
        log(f"creating the baselines' environment in {path} ...")
        venv.EnvBuilder(with_pip=True).create(path)
    log(f"installing {', '.join(BASELINES)} into {path} ...")
    subprocess.run([str(venv_python(path)), "-m", "pip", "install", "-q", *BASELINES], check=True,
                   env=baseline_env())
    marker.write_text(wanted)
    return venv_python(path)


def published_figures(python: Path, cache: Path, datasets: list[str]) -> dict:
    """{method: {data set: [accuracy of each of the 30 resamples]}} from the bake-off's files."""
    wheels = sorted(cache.glob("tsml_eval-0.6.0-*.whl"))
    if not wheels:
        subprocess.run([str(python), "-m", "pip", "download", "-q", "--no-deps", TSML_EVAL,
                        "-d", str(cache)], check=True, env=baseline_env())
        wheels = sorted(cache.glob("tsml_eval-0.6.0-*.whl"))
    out = {}
    with zipfile.ZipFile(wheels[0]) as wheel:
        for method, family in PUBLISHED:
            rows = wheel.read(f"{BAKEOFF}/{family}/{method}_accuracy.csv").decode().splitlines()
            assert rows[0].startswith("Resamples:,0,"), rows[0][:40]
            cells = (r.split(",") for r in rows[1:] if r)
            out[method] = {c[0]: [float(v) for v in c[1:]] for c in cells if c[0] in datasets}
    return out


# -- running everything ------------------------------------------------------------------------------

def rnnkit_versions() -> dict:
    """What the rnnkit processes run: the packages, and the code's path and commit."""
    import rnnkit
    commit = subprocess.run(["git", "-C", str(Path(rnnkit.__file__).parent), "rev-parse", "HEAD"],
                            capture_output=True, text=True)
    return {p: version(p) for p in ("numpy", "numba", "llvmlite", "dtaidistance")} | {
        "rnnkit": rnnkit.__file__, "commit": commit.stdout.strip() or None}


def rnnkit_cmd(task: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "rnnkit.cli", task, *extra, "--json"]


def baseline_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run_classification(args, python: Path | None) -> dict:
    from rnnkit.models.datasets import bundled_files
    results = {}
    for name in args.datasets:
        entry = results[name] = {"rnnkit": {}}
        if python:
            train, test = bundled_files(name)
            log(f"{name}: baselines (aeon) ...")
            request = {"task": "classify", "train": str(train), "test": str(test), "seeds": args.seeds}
            entry["baselines"] = run_json([str(python), str(ROOT / "scripts" / "baselines.py")],
                                          args.timeout, json.dumps(request), baseline_env())
        for i, (label, extra) in enumerate(args.contenders["classify"].items()):
            runs = entry["rnnkit"][label] = []
            for seed in args.seeds:
                dtw = ["--dtw"] if i == 0 and seed == args.seeds[0] else []
                log(f"{name}: {label}, seed {seed} ...")
                runs.append(run_json(rnnkit_cmd("classify", ["--dataset", name, "--seed", str(seed),
                                                             *dtw, *extra]), args.timeout) | {"seed": seed})
    return results


def run_forecasting(args, python: Path | None) -> dict:
    from rnnkit.models.datasets import load_bundled_series
    results = {}
    for name in args.series:
        h, m = SERIES[name]
        entry = results[name] = {"horizon": h, "season": m, "rnnkit": {}}
        if python:
            log(f"{name}: baselines (statsmodels, statsforecast) ...")
            request = {"task": "forecast", "series": load_bundled_series(name).tolist(), "horizon": h,
                       "season": m}
            entry["baselines"] = run_json([str(python), str(ROOT / "scripts" / "baselines.py")],
                                          args.timeout, json.dumps(request), baseline_env())
        for label, extra in args.contenders["forecast"].items():
            runs = entry["rnnkit"][label] = []
            for seed in args.seeds:
                log(f"{name}: {label}, seed {seed} ...")
                argv = ["--dataset", name, "--horizon", str(h), "--season", str(m), "--seed", str(seed)]
                runs.append(run_json(rnnkit_cmd("forecast", argv + extra), args.timeout) | {"seed": seed})
    return results


# -- the tables ------------------------------------------------------------------------------------

def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "error" not in r]


def num(v: float, fmt: str) -> str:
    """``fmt``, or no decimals from 1000 on ("g" formats would turn to exponents there)."""
    return f"{v:.0f}" if fmt == "g" and abs(v) >= 1000 else f"{v:{'.3g' if fmt == 'g' else fmt}}"


def spread(values, fmt: str = ".3f", bold: bool = False) -> str:
    """'mean ± sd' of the values (population sd; one value: just it); fmt "g": 3 digits."""
    v = np.asarray(values, np.float64)
    mean = f"**{num(v.mean(), fmt)}**" if bold else num(v.mean(), fmt)
    return mean if len(v) == 1 else f"{mean} ± {num(v.std(), fmt)}"


def failed_note(runs: list[dict]) -> str:
    bad = len(runs) - len(ok(runs))
    return f" ({bad} of {len(runs)} failed)" if bad else ""


def shape_cell(r: dict) -> str:
    tr, te = r["train"], r["test"]
    T = str(tr["max_length"]) if tr["min_length"] == tr["max_length"] else f"{tr['min_length']}–{tr['max_length']}"
    return f"{tr['n']} / {te['n']}, {T}, {tr['features']}"


def baseline_cell(entry: dict, method: str) -> str:
    b = entry.get("baselines", {})
    if method in b.get("results", {}):
        return spread(b["results"][method]["accuracy"])
    why = b.get("error") or b.get("errors", {}).get(method) or b.get("errors", {}).get("all")
    return "failed" if why else "not run"


def classification_table(results: dict, published: dict, which: str) -> list[str]:
    labels = list(next(iter(results.values()))["rnnkit"])
    seeds = max(len(runs) for e in results.values() for runs in e["rnnkit"].values())
    head = ["data set", "train / test, T, F"] + [f"{lb} ({plural(seeds, 'seed')})" for lb in labels] + [
        f"{labels[0]} fit s", "1-NN DTW (aeon)", f"MiniRocket (aeon, {plural(seeds, 'seed')})", "majority", "FCN (Fawaz 2019)",
        "LSTM-FCN (Karim 2018)"] + [
        f"{m} (bake-off)" for m, _ in PUBLISHED]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, entry in results.items():
        first = next((r for runs in entry["rnnkit"].values() for r in ok(runs)), None)
        cells = [name, shape_cell(first) if first else "?"]
        for label in labels:
            runs = entry["rnnkit"][label]
            cells.append(spread([r["accuracy"] for r in ok(runs)], bold=True) + failed_note(runs)
                         if ok(runs) else "failed")
        main = ok(entry["rnnkit"][labels[0]])
        cells.append(f"{np.mean([r['fit_seconds'] for r in main]):.1f}" if main else "")
        cells += [baseline_cell(entry, "dtw_1nn"), baseline_cell(entry, "minirocket"),
                  f"{first['baselines']['majority_class']:.3f}" if first else "",
                  f"{FCN[name]:.3f}" if name in FCN else "—",
                  f"{LSTM_FCN[name]:.3f}" if name in LSTM_FCN else "—"]
        for method, _ in PUBLISHED:
            acc = published.get(method, {}).get(name)
            cells.append("—" if acc is None else f"{(acc[0] if which == 'split' else np.mean(acc)):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def coverage_cell(cov: dict | None) -> str:
    return " / ".join(f"{cov[k]:.2f}" for k in ("80", "95") if k in cov) if cov else ""


def forecast_table(name: str, entry: dict) -> list[str]:
    h, m = entry["horizon"], entry["season"]
    lines = [f"**{name}**: the last {h} values held out, season {m}", "",
             "| method | MAPE % | RMSE | in 80% / 95% interval | fit s |", "|---|---|---|---|---|"]
    for label, runs in entry["rnnkit"].items():
        good = ok(runs)
        if not good:
            lines.append(f"| {label} | failed | | | |")
            continue
        mapes = [r["rnnkit"]["mape"] for r in good]
        mape = spread(mapes, ".2f", True) if all(np.isfinite(mapes)) else "—"
        covs = [r["rnnkit"].get("coverage") for r in good]
        cov = {k: float(np.mean([c[k] for c in covs])) for k in covs[0]} if all(covs) else None
        lines.append(f"| {label} ({plural(len(good), 'seed')}){failed_note(runs)} | {mape} | "
                     f"{spread([r['rnnkit']['rmse'] for r in good], 'g', True)} | {coverage_cell(cov)} | "
                     f"{np.mean([r['fit_seconds'] for r in good]):.1f} |")
    first = next((r for runs in entry["rnnkit"].values() for r in ok(runs)), None)
    if first:
        lv = first["baselines"]["last_value"]
        lines.append(f"| last value | {lv['mape']:.2f} | {num(lv['rmse'], 'g')} | | |")
    b = entry.get("baselines", {})
    for method, label in FORECAST_NAMES.items():
        r = b.get("results", {}).get(method)
        if r is None:
            lines.append(f"| {label} | failed | | | |")
            continue
        mape = "—" if r["mape"] is None else f"{r['mape']:.2f}"
        lines.append(f"| {label} | {mape} | {num(r['rmse'], 'g')} | {coverage_cell(r.get('coverage'))} | "
                     f"{r['seconds']:.1f} |")
    return lines


def failures(report: dict) -> list[str]:
    out = []
    for task in ("classification", "forecasting"):
        for name, entry in report.get(task, {}).items():
            for label, runs in entry["rnnkit"].items():
                out += [f"- {name}, {label}, seed {r['seed']}: {r['error']}" for r in runs if "error" in r]
            b = entry.get("baselines", {})
            if "error" in b:
                out.append(f"- {name}, baselines: {b['error']}")
            out += [f"- {name}, {method}: {why}" for method, why in b.get("errors", {}).items()]
    return out


def dtw_checks(report: dict) -> list[str]:
    """rnnkit's 1-NN DTW (dtaidistance) against aeon's, where both ran."""
    out = []
    for name, entry in report.get("classification", {}).items():
        ours = next((r["baselines"]["dtw_1nn"] for runs in entry["rnnkit"].values() for r in ok(runs)
                     if "dtw_1nn" in r["baselines"]), None)
        theirs = entry.get("baselines", {}).get("results", {}).get("dtw_1nn")
        if ours is not None and theirs is not None and abs(ours - theirs["accuracy"][0]) > 1e-12:
            out.append(f"- {name}: rnnkit's 1-NN DTW {ours:.4f}, aeon's {theirs['accuracy'][0]:.4f}")
    return out


def tables(report: dict) -> str:
    parts = []
    if report.get("classification"):
        parts += classification_table(report["classification"], report.get("published", {}),
                                      report["settings"]["published"]) + [""]
    for name, entry in report.get("forecasting", {}).items():
        parts += forecast_table(name, entry) + [""]
    for title, lines in (("Failed", failures(report)), ("1-NN DTW: rnnkit and aeon differ", dtw_checks(report))):
        if lines:
            parts += [f"{title}:", *lines, ""]
    return "\n".join(parts)


# -- the command line --------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="*", choices=DATASETS, help=f"default: all ({len(DATASETS)})")
    p.add_argument("--series", nargs="*", choices=list(SERIES), help="default: all")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 per contender (default 5)")
    p.add_argument("--quick", action="store_true", help=f"defaults {QUICK}")
    p.add_argument("--contender", action="append", default=[], metavar="TASK:LABEL=ARGS",
                   help='another rnnkit contender, e.g. "classify:lstm=--cell lstm"')
    p.add_argument("--venv", type=Path, default=ROOT / ".cache" / "baselines-venv",
                   help="the baselines' environment (created on first use)")
    p.add_argument("--no-baselines", action="store_true",
                   help="rnnkit and the published figures only (no venv; pip download fetches the figures)")
    p.add_argument("--published", choices=["split", "mean"], default="split",
                   help="bake-off figure shown: resample 0 (the archive split, default) or the 30-resample mean")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per process (default 3600)")
    p.add_argument("--out", type=Path, default=ROOT / ".cache" / "seqmodels")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON", help="only print the tables of saved results")
    args = p.parse_args(argv)
    quick = QUICK if args.quick else {"datasets": DATASETS, "series": list(SERIES), "seeds": 5}
    args.datasets = quick["datasets"] if args.datasets is None else args.datasets
    args.series = quick["series"] if args.series is None else args.series
    args.seeds = list(range(args.seeds or quick["seeds"]))
    args.contenders = {task: dict(c) for task, c in CONTENDERS.items()}
    for spec in args.contender:
        task, _, rest = spec.partition(":")
        label, _, extra = rest.partition("=")
        if task not in args.contenders or not label:
            p.error(f"--contender expects TASK:LABEL=ARGS with TASK classify or forecast, got {spec!r}")
        args.contenders[task][label] = shlex.split(extra)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        print(tables(json.loads(args.report.read_text())))
        return 0
    python = None if args.no_baselines else ensure_baselines_venv(args.venv)
    report = {"settings": {"datasets": args.datasets, "series": args.series, "seeds": args.seeds,
                           "contenders": args.contenders, "published": args.published},
              "versions": rnnkit_versions(),
              "published": published_figures(python or Path(sys.executable), args.venv.parent / "published",
                                             args.datasets)}
    report["classification"] = run_classification(args, python)
    report["forecasting"] = run_forecasting(args, python)
    report["versions"]["baselines"] = next((e["baselines"].get("versions") for task in
                                            ("classification", "forecasting") for e in report[task].values()
                                            if "versions" in e.get("baselines", {})), None)
    write_atomic(args.out / "results.json", json.dumps(report, indent=1) + "\n")
    text = tables(report)
    write_atomic(args.out / "tables.md", text)
    print(text)
    log(f"written: {args.out / 'results.json'}, {args.out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
