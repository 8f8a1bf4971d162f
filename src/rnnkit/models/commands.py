"""The command-line side of the sequence models: ``rnnkit classify`` and ``rnnkit forecast``.

Parsing only: the options become a job (``rnnkit.models.run``) and the estimator's keyword
arguments; options not given keep the estimator's defaults (``rnnkit.models.config``).
"""

from __future__ import annotations

import argparse
import json

from rnnkit.models.config import (
    AUTO_COUNT, AUTO_FRAME_STEPS, FCN_DROPOUT, FCN_FILTERS, FCN_HIDDEN, FCN_KERNELS, SCHEDULES, SHARE, FitSettings as S, NetParams as N,
)
from rnnkit.models.data import SEQUENCE_NORMALIZATIONS
from rnnkit.models.datasets import BUNDLED_CLASSIFICATION, BUNDLED_SERIES
from rnnkit.models.forecast_config import DEFAULTS as D
from rnnkit.models.network import CELLS
from rnnkit.models.series import NORMALIZATIONS
from rnnkit.outputs import output_file, replacing
from rnnkit.pooling import POOLINGS
from rnnkit.ranges import COUNT, FRACTION, NONNEGATIVE_INT, POSITIVE, PROBABILITY_BELOW_1, SEED


def sizes(text: str) -> tuple[int, ...]:
    """argparse ``type=``: comma-separated integers >= 1 ("32,64,32"), or "none" for ()."""
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1 (e.g. 32,64,32) or "
                                         f"'none', got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers >= 1, got {text!r}")
    return values


def _listed(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)

# (option, estimator parameter, type, help): the model and training options both commands share.
MODEL_OPTIONS = [
    ("--cell", "cell", str, f"{', '.join(sorted(CELLS))} (default {N.cell})"),
    ("--hidden", "hidden_size", NONNEGATIVE_INT,
     f"recurrent units (default {FCN_HIDDEN} to classify, {N.hidden_size} to forecast; 0: no recurrent branch)"),
    ("--layers", "num_layers", COUNT, f"recurrent layers (default {N.num_layers})"),
    ("--pooling", "pooling", str, f"{', '.join(POOLINGS)} (default: max to classify, last to forecast)"),
    ("--dropout", "dropout", PROBABILITY_BELOW_1,
     f"dropout before the head (default {FCN_DROPOUT} to classify, {N.dropout} to forecast)"),
    ("--epochs", "epochs", AUTO_COUNT, "epochs, or auto: a fixed number of optimizer steps within a "
                                          f"work budget (default {S.epochs} to classify, {D.epochs} to forecast)"),
    ("--batch-size", "batch_size", COUNT,
     f"sequences per step (default {S.batch_size} to classify, {D.batch_size} to forecast)"),
    ("--lr", "lr", POSITIVE, f"Adam's (peak) learning rate (default {S.lr} to classify, {D.lr} to forecast)"),
    ("--patience", "patience", COUNT, f"with a validation part: epochs without improvement before stopping "
                                      f"(default {S.patience}; forecast {D.patience})"),
    ("--val-fraction", "validation_fraction", SHARE,
     f"held out for early stopping (default {S.validation_fraction} to classify, {D.validation_fraction} to forecast)"),
    ("--time-budget", "time_budget", POSITIVE, "seconds of training at most (default: no limit)"),
]


# The options with a fixed set of values: checked by the parser, from the one list of the names.
CHOICES = {"--cell": tuple(sorted(CELLS)), "--pooling": POOLINGS}


def _add_model_options(p: argparse.ArgumentParser) -> None:
    for option, dest, typ, help_ in MODEL_OPTIONS:
        p.add_argument(option, dest=dest, type=typ, default=argparse.SUPPRESS, help=help_,
                       choices=CHOICES.get(option))
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--save", metavar="PATH", type=output_file,
                   help="write the fitted model (safetensors); a file there is replaced, as cp does")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _params(args: argparse.Namespace, extra: tuple[str, ...] = ()) -> dict:
    names = [dest for _, dest, _, _ in MODEL_OPTIONS] + list(extra)
    params = {k: getattr(args, k) for k in names if hasattr(args, k)}
    return params | {"random_state": args.seed, "verbose": 0 if (args.quiet or args.json) else 1}


def add_classify_parser(sub) -> None:
    p = sub.add_parser("classify", help="sequence classification against simple baselines",
                       description="Fit an RNN classifier on TRAIN and report its accuracy, "
                                   "per-class precision and recall and confusion matrix on TEST, "
                                   "beside the majority class (and 1-NN DTW with --dtw). Files: "
                                   "the archive's .ts format, or the UCR layout (one sequence per "
                                   "line, the label first).")
    p.add_argument("train", nargs="?", metavar="TRAIN", help="training file (.ts, or UCR layout CSV/TSV)")
    p.add_argument("test", nargs="?", metavar="TEST", help="test file (same formats)")
    p.add_argument("--dataset", metavar="NAME", choices=BUNDLED_CLASSIFICATION, help="a UCR/UEA set bundled with sktime (the ucr "
                   f"extra): {', '.join(BUNDLED_CLASSIFICATION)}")
    p.add_argument("--bidirectional", action="store_true", default=argparse.SUPPRESS,
                   help="bidirectional recurrent layers")
    p.add_argument("--frame", type=COUNT, default=argparse.SUPPRESS,
                   help=f"steps stacked per network step (default: auto, at most {AUTO_FRAME_STEPS} frames)")
    p.add_argument("--conv-filters", dest="conv_filters", type=sizes, default=argparse.SUPPRESS,
                   help=f"channels of the convolutional blocks (default {_listed(FCN_FILTERS)}; none: "
                        "the recurrent network alone)")
    p.add_argument("--conv-kernels", dest="conv_kernels", type=sizes, default=argparse.SUPPRESS,
                   help=f"their kernel sizes (default {_listed(FCN_KERNELS)})")
    p.add_argument("--n-estimators", dest="n_estimators", type=AUTO_COUNT, default=argparse.SUPPRESS,
                   help="networks averaged (default auto: as many as the work budget allows, at most 5)")
    p.add_argument("--normalize", choices=SEQUENCE_NORMALIZATIONS, default=argparse.SUPPRESS,
                   help="standardise over all training steps (global), each sequence on its own "
                        "(sequence), or auto: per sequence when their spreads differ 100-fold (default)")
    p.add_argument("--schedule", choices=SCHEDULES, default=argparse.SUPPRESS,
                   help=f"the learning rate over training (default {S.schedule}: warm-up, then cosine decay)")
    _add_model_options(p)
    p.add_argument("--dtw", action="store_true",
                   help="also 1-NN DTW (full window) on the same split (the ucr extra: dtaidistance)")
    p.add_argument("--plot", metavar="PNG", type=output_file,
                   help="draw the confusion matrix into this PNG file (needs matplotlib)")
    p.set_defaults(func=cmd_classify)


def add_forecast_parser(sub) -> None:
    p = sub.add_parser("forecast", help="forecast a series against last-value and seasonal-naive",
                       description="Hold out the last --horizon values of a series, fit an RNN "
                                   "forecaster on the rest and report MAPE and RMSE beside the "
                                   "last-value and seasonal-naive forecasts, with a prediction "
                                   "interval (--future: forecast beyond the end instead; "
                                   "--backtest N: also N expanding windows).")
    p.add_argument("series", nargs="?", metavar="SERIES",
                   help="file: one number per line, or a CSV/TSV with a header (see --column)")
    p.add_argument("--column", help="the column of SERIES (or of a --dataset's file) to forecast, by header name")
    p.add_argument("--dataset", metavar="NAME", choices=list(BUNDLED_SERIES), help="a series bundled with sktime (the ucr extra): "
                   f"{', '.join(BUNDLED_SERIES)}; airline: monthly passengers 1949-1960")
    p.add_argument("--horizon", type=COUNT, required=True, help="steps to forecast")
    p.add_argument("--season", type=COUNT, help="the season, of the model and of seasonal naive "
                   "(default: estimated from the periodogram and the autocorrelation)")
    p.add_argument("--future", action="store_true", help="fit on the whole series, forecast after it")
    p.add_argument("--window", type=COUNT, default=argparse.SUPPRESS, help="past steps per forecast (default auto)")
    p.add_argument("--output-steps", dest="output_steps", type=COUNT, default=argparse.SUPPRESS,
                   help="steps the network predicts at once (default 1)")
    p.add_argument("--normalize", choices=NORMALIZATIONS, default=argparse.SUPPRESS,
                   help="windows relative to the series' mean and spread (default), to their "
                        "last value (trending series), or both")
    p.add_argument("--backtest", metavar="N", type=COUNT,
                   help="also refit on N expanding windows and report each window's errors")
    p.add_argument("--coverage", type=FRACTION, default=0.9,
                   help="of the prediction intervals (default 0.9)")
    p.add_argument("--plot", metavar="PNG", type=output_file,
                   help="draw history, forecast and interval into this PNG file (needs matplotlib)")
    _add_model_options(p)
    p.set_defaults(func=cmd_forecast)



def cmd_classify(args: argparse.Namespace) -> int:
    from rnnkit.models.metrics import format_report
    from rnnkit.models.run import ClassifyJob, run_classify
    replaced = replacing(args.save) if args.save else ""
    job = ClassifyJob(args.train, args.test, args.dataset, args.dtw, args.save, args.plot)
    r = run_classify(job, _params(args, ("bidirectional", "frame", "conv_filters", "conv_kernels",
                                         "n_estimators", "schedule", "normalize")))
    if args.json:
        print(json.dumps(r))
        return 0
    tr, te = r["train"], r["test"]
    length = f"T={tr['max_length']}" if tr["min_length"] == tr["max_length"] else \
        f"T={tr['min_length']}..{tr['max_length']}"
    print(f"{r['dataset']}: {tr['n']} training sequences ({length}, {tr['features']} feature(s)), "
          f"{te['n']} test, {r['classes']} classes")
    members = f"{r['members']} networks × " if r["members"] > 1 else ""
    print(f"  rnnkit RNNClassifier  accuracy {r['accuracy']:.3f}   (fit {r['fit_seconds']:.1f} s, "
          f"{members}{r['epochs']} epochs, {r['stop_reason']})")
    print(f"  majority class        accuracy {r['baselines']['majority_class']:.3f}")
    if "dtw_1nn" in r["baselines"]:
        print(f"  1-NN DTW              accuracy {r['baselines']['dtw_1nn']:.3f}   "
              f"({r['baselines']['dtw_1nn_seconds']:.1f} s)")
    print("rnnkit on the test set:")
    print(format_report(r["report"]))
    if args.save:
        print(f"model written to {args.save}{replaced}")
    if args.plot:
        print(f"confusion matrix drawn to {args.plot}")
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from rnnkit.models.run import ForecastJob, run_forecast
    replaced = replacing(args.save) if args.save else ""
    job = ForecastJob(args.horizon, args.series, args.column, args.dataset, args.season, args.future,
                      args.save, args.backtest, args.coverage, args.plot)
    r = run_forecast(job, _params(args, ("window", "output_steps", "normalize")))
    if args.json:
        print(json.dumps(r))
        return 0
    lp = r["linear_path"]
    print(f"{r['series']}: {r['length']} values, window {r['window']}, season {r['season']} "
          f"(fit {r['fit_seconds']:.1f} s, {r['epochs']} epochs; linear path λ={lp['lambda']:g}, "
          f"{'seasonal offsets, ' if lp['seasonal_offsets'] else ''}d={lp['d']}, AR({lp['order']}); "
          f"network correction x{r['correction']:g})")
    if "rnnkit" in r:
        print(f"  last {r['horizon']} values held out      MAPE      RMSE")
        rows = [("rnnkit RNNForecaster", r["rnnkit"])] + [
            (name.replace("_", " "), v) for name, v in r["baselines"].items()]
        for name, m in rows:
            print(f"  {name:<30} {m['mape']:6.2f}%  {m['rmse']:8.3f}")
        print(f"  {round(100 * r['coverage'])}% interval covers {r['rnnkit']['covered']:.0%} of the held-out values")
    if "backtest" in r:
        _print_backtest(r)
    pct = round(100 * r["coverage"])
    print(f"  {'step':<20} {'forecast':>10} {f'lower {pct}%':>12} {f'upper {pct}%':>12}"
          + (f" {'actual':>10}" if "actual" in r else ""))
    for i, t in enumerate(r["index"]):
        line = f"  {str(t):<20} {r['forecast'][i]:10.4g} {r['lower'][i]:12.4g} {r['upper'][i]:12.4g}"
        print(line + (f" {r['actual'][i]:10.4g}" if "actual" in r else ""))
    if args.save:
        print(f"model written to {args.save}{replaced}")
    if args.plot:
        print(f"forecast drawn to {args.plot}")
    return 0


def _print_backtest(r: dict) -> None:
    print(f"  backtest, {len(r['backtest']['windows'])} expanding windows of {r['horizon']} steps:")
    print(f"  {'window from':<20} {'rnnkit MAPE':>12} {'RMSE':>10} {'covered':>8} {'s-naive MAPE':>13} {'RMSE':>10}")
    for w in r["backtest"]["windows"] + [dict(first="mean", **r["backtest"]["mean"])]:
        a, b = w["rnnkit"], w["seasonal_naive"]
        print(f"  {str(w['first']):<20} {a['mape']:11.2f}% {a['rmse']:10.4g} {a['covered']:8.0%} "
              f"{b['mape']:12.2f}% {b['rmse']:10.4g}")
