"""Baselines beside rnnkit, run in their own environment (aeon, statsmodels, statsforecast).

    python scripts/baselines.py < request.json > result.json

scripts/seqmodels_table.py creates that environment (aeon pins numba below 0.64, so it never
shares rnnkit's) and runs this script once per data set, a JSON request on standard input and
one JSON object on standard output. rnnkit is not imported here.

Classification, {"task": "classify", "train": PATH.ts, "test": PATH.ts, "seeds": [0, ...]}:
on the archive's own train/test split, read by aeon's .ts reader,
    dtw_1nn      aeon's KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw"): full
                 window, squared point costs summed over channels (dependent DTW)
    minirocket   aeon's MiniRocketClassifier (the MiniRocket transform, then RidgeClassifierCV
                 over its alphas, as in Dempster et al. 2021), one fit per seed; unequal-length
                 sets are zero-padded at the end to the longest (aeon's Padder), as MiniRocket
                 needs one length
Forecasting, {"task": "forecast", "series": [...], "horizon": h, "season": m}: fit on all but
the last h values, forecast them in one go, and score MAPE and RMSE (and, where the method has
prediction intervals, the share of the held-out values inside its 80% and 95% intervals):
    seasonal_naive   x̂_{N+k} = x_{N+k−m·⌈k/m⌉}
    ar               AR(p) with an intercept fitted by least squares (statsmodels AutoReg, OLS),
                     p chosen by AIC over 1..min(max(2m, 8), N/4) (ar_select_order); recursive
    holt_winters     statsmodels ExponentialSmoothing: additive trend, multiplicative season
                     (additive if the series has values <= 0; none if m = 1), estimated start
    auto_ets         statsforecast AutoETS(season_length=m): the ETS model of lowest AICc
    auto_arima       statsforecast AutoARIMA(season_length=m)
A method that fails is reported with its error under "errors"; the others still run.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings

import numpy as np

LEVELS = (80, 95)


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, round(time.perf_counter() - start, 2)


def _load_ts(path):
    from aeon.datasets import load_from_ts_file
    return load_from_ts_file(path)


def _dtw(train, test, seed):
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier
    knn = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")
    return knn.fit(*train).predict(test[0])


def _minirocket(train, test, seed):
    from aeon.classification.convolution_based import MiniRocketClassifier
    X_train, X_test = train[0], test[0]
    if isinstance(X_train, list) or isinstance(X_test, list):        # unequal lengths
        from aeon.transformations.collection.unequal_length import Padder
        longest = max(x.shape[-1] for part in (X_train, X_test) for x in part)
        padder = Padder(padded_length=longest, fill_value=0)
        X_train, X_test = padder.fit_transform(X_train), padder.transform(X_test)
    clf = MiniRocketClassifier(random_state=seed)
    return clf.fit(X_train, train[1]).predict(X_test)


def _two_cases(data):
    """The first case of each of two classes: a fit that compiles aeon's numba kernels, so that
    the times reported leave out the compilation."""
    X, y = data
    idx = [int(np.flatnonzero(y == label)[0]) for label in np.unique(y)[:2]]
    return ([X[i] for i in idx] if isinstance(X, list) else X[idx]), y[idx]


def classify(request: dict) -> dict:
    train, test = _load_ts(request["train"]), _load_ts(request["test"])
    result, errors = {}, {}
    runs = {"dtw_1nn": (_dtw, [0]), "minirocket": (_minirocket, request.get("seeds", [0]))}
    for name in request.get("methods", list(runs)):
        fn, seeds = runs[name]
        try:
            fn(_two_cases(train), _two_cases(test), 0)
            acc, sec = [], []
            for seed in seeds:
                predicted, seconds = _timed(fn, train, test, seed)
                acc.append(float(np.mean(np.asarray(predicted) == np.asarray(test[1]))))
                sec.append(seconds)
            result[name] = {"accuracy": acc, "seconds": sec, "seeds": list(seeds)}
        except Exception as exc:                        # reported, and the other methods go on
            errors[name] = f"{type(exc).__name__}: {exc}"
    return {"results": result, "errors": errors}


def _seasonal_naive(y, h, m):
    return np.concatenate([y[-m:]] * (-(-h // m)))[:h], None


def _ar(y, h, m):
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order
    maxlag = max(1, min(max(2 * m, 8), len(y) // 4))
    lags = ar_select_order(y, maxlag=maxlag, ic="aic", trend="c").ar_lags or [1]
    fit = AutoReg(y, lags=lags, trend="c").fit()
    return fit.predict(start=len(y), end=len(y) + h - 1), None


def _holt_winters(y, h, m):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    season = None if m == 1 else ("mul" if y.min() > 0 else "add")
    model = ExponentialSmoothing(y, trend="add", seasonal=season, seasonal_periods=m if season else None,
                                 initialization_method="estimated")
    return model.fit().forecast(h), None


def _statsforecast(model):
    def run(y, h, m):
        out = model(season_length=m).fit(y).predict(h=h, level=list(LEVELS))
        return out["mean"], {lv: (out[f"lo-{lv}"], out[f"hi-{lv}"]) for lv in LEVELS}
    return run


def _auto_ets(y, h, m):
    from statsforecast.models import AutoETS
    return _statsforecast(AutoETS)(y, h, m)


def _auto_arima(y, h, m):
    from statsforecast.models import AutoARIMA
    return _statsforecast(AutoARIMA)(y, h, m)


FORECASTERS = {"seasonal_naive": _seasonal_naive, "ar": _ar, "holt_winters": _holt_winters,
               "auto_ets": _auto_ets, "auto_arima": _auto_arima}


def _scores(actual, forecast, intervals) -> dict:
    forecast = np.asarray(forecast, np.float64)
    if forecast.shape != actual.shape or not np.isfinite(forecast).all():
        raise ValueError(f"forecast of shape {forecast.shape} with non-finite values: {forecast[:4]}")
    out = {"mape": float(100 * np.mean(np.abs(actual - forecast) / np.abs(actual)))
           if np.all(actual != 0) else None,
           "rmse": float(np.sqrt(np.mean((actual - forecast) ** 2))), "forecast": forecast.tolist()}
    if intervals:
        out["coverage"] = {str(lv): float(np.mean((actual >= np.asarray(lo)) & (actual <= np.asarray(hi))))
                           for lv, (lo, hi) in intervals.items()}
    return out


def _warm_up(names) -> None:
    """Each method once on a short toy series: the imports and numba's compilation of
    statsforecast are then not counted in the times reported."""
    toy = 10 + np.sin(np.arange(40.0)) + 0.1 * np.arange(40.0)
    for name in names:
        try:
            FORECASTERS[name](toy, 4, 1)
        except Exception:
            pass                                     # the real run reports the error


def forecast(request: dict) -> dict:
    series = np.asarray(request["series"], np.float64)
    h, m = int(request["horizon"]), int(request["season"])
    train, actual = series[:-h], series[-h:]
    result, errors = {}, {}
    names = request.get("methods", list(FORECASTERS))
    _warm_up(names)
    for name in names:
        try:
            (pred, intervals), seconds = _timed(FORECASTERS[name], train, h, m)
            result[name] = _scores(actual, pred, intervals) | {"seconds": seconds}
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    return {"results": result, "errors": errors}


def versions() -> dict:
    from importlib.metadata import version
    return {p: version(p) for p in ("aeon", "statsmodels", "statsforecast", "numpy", "numba", "scikit-learn")}


def main() -> int:
    request = json.load(sys.stdin)
    warnings.simplefilter("ignore")                  # convergence chatter; the scores speak
    try:
        out = {"classify": classify, "forecast": forecast}[request["task"]](request)
    except Exception as exc:
        out = {"results": {}, "errors": {"all": f"{type(exc).__name__}: {exc}"},
               "traceback": traceback.format_exc()}
    print(json.dumps(out | {"versions": versions()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
