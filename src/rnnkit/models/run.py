"""What ``rnnkit classify`` and ``rnnkit forecast`` do, as library functions returning plain dicts.

Classification: fit RNNClassifier on the training sequences; its accuracy, per-class precision
and recall and confusion matrix on the test sequences (``plot=``: drawn to a PNG), beside the
majority class and (``dtw=True``, the ``ucr`` extra) 1-NN DTW on the same split.
Forecasting: hold out the last ``horizon`` values, fit RNNForecaster on the rest, forecast them
with a prediction interval, and report MAPE and RMSE beside the last-value and seasonal-naive
forecasts; or, with ``future=True``, fit on the whole series and return the ``horizon`` values
after it. ``backtest=N``: also refit on N expanding windows (``rnnkit.models.cross_validate``)
and report each window's errors beside seasonal naive's and its interval's coverage. The
forecast carries its time index (the file's dates, if it has a date column); ``plot=``: drawn
to a PNG with the history and the interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from rnnkit.models import baselines
from rnnkit.models.datasets import (
    BUNDLED_SERIES, DataError, Labelled, bundled_dir, load_bundled_series, load_ucr, read_labelled, read_series,
)
from rnnkit.models.metrics import class_report
from rnnkit.ranges import COUNT, Range


@dataclass(frozen=True)
class ClassifyJob:
    train: str | None = None            # .ts or UCR-layout file, or None with dataset
    test: str | None = None
    dataset: str | None = None          # a set bundled with sktime, loaded offline
    dtw: bool = False                   # also run 1-NN DTW (slow on long series: O(n_train·n_test·T²))
    save: str | None = None             # write the fitted model here
    plot: str | None = None             # draw the confusion matrix into this PNG


@dataclass(frozen=True)
class ForecastJob:
    horizon: int                        # steps to forecast (and, unless future, to hold out)
    series: str | None = None           # file: one number per line, or a CSV/TSV column
    column: str | None = None
    dataset: str | None = None          # a series bundled with sktime (BUNDLED_SERIES), offline
    season: int | None = None           # the season (model and seasonal naive); None: estimated
    future: bool = False                # fit on everything, forecast beyond the end
    save: str | None = None
    backtest: int | None = None         # windows of an expanding-window backtest (None: none)
    coverage: float = 0.9               # of the prediction intervals
    plot: str | None = None             # draw history, forecast and interval into this PNG


def _describe(data: Labelled) -> dict:
    lengths = [len(x) for x in data.X]
    feats = data.X[0].shape[-1]
    return {"n": len(data.y), "min_length": int(min(lengths)), "max_length": int(max(lengths)),
            "features": int(feats)}


def _classification_data(job: ClassifyJob) -> tuple[Labelled, Labelled, str]:
    if job.dataset:
        if job.train or job.test:
            raise DataError("give either --dataset NAME or TRAIN and TEST files, not both")
        train, test = load_ucr(job.dataset)
        name = job.dataset
    else:
        if not (job.train and job.test):
            raise DataError("expected TRAIN and TEST files (.ts, or the UCR layout: label, then "
                            "values), or --dataset NAME")
        train, test = read_labelled(job.train), read_labelled(job.test)
        name = f"{job.train} / {job.test}"
    if train.y.dtype != test.y.dtype and train.y.dtype.kind != test.y.dtype.kind:
        test = Labelled(test.X, test.y.astype(str))
        train = Labelled(train.X, train.y.astype(str))
    return train, test, name


def _dtw(train: Labelled, test: Labelled) -> dict:
    start = time.perf_counter()
    predicted = baselines.dtw_1nn(train.X, train.y, test.X)
    return {"dtw_1nn": float(np.mean(predicted == test.y)),
            "dtw_1nn_seconds": round(time.perf_counter() - start, 2)}


def run_classify(job: ClassifyJob, params: dict) -> dict:
    from rnnkit.models import RNNClassifier
    if job.plot:                              # missing packages are reported before the work
        from rnnkit.plots import require_matplotlib
        require_matplotlib()
    if job.dtw:
        baselines.dtw_module()
    train, test, name = _classification_data(job)
    clf = RNNClassifier(**params)        # its errors of bad input are UserErrors: one line, exit 2
    start = time.perf_counter()
    clf.fit(train.X, train.y)
    seconds = time.perf_counter() - start
    predicted = clf.predict(test.X)
    report = class_report(test.y, predicted)
    result = {"dataset": name, "train": _describe(train), "test": _describe(test),
              "classes": len(np.unique(train.y)), "accuracy": float(np.mean(predicted == test.y)),
              "fit_seconds": round(seconds, 2), "epochs": clf.n_epochs_, "members": len(clf.net_),
              "frame": clf.frame_, "stop_reason": clf.history_[0].stop_reason, "report": report.to_json(),
              "baselines": {"majority_class": baselines.majority_accuracy(train.y, test.y)}}
    if job.dtw:
        result["baselines"] |= _dtw(train, test)
    if job.save:
        clf.save(job.save)
    if job.plot:
        from rnnkit.plots.confusion import plot_confusion
        plot_confusion(report.labels, report.confusion, job.plot,
                       f"{name}: rnnkit accuracy {result['accuracy']:.3f}")
    return result


def run_forecast(job: ForecastJob, params: dict) -> dict:
    from rnnkit.models import RNNForecaster
    from rnnkit.models.timeindex import read_dates
    if job.plot:
        from rnnkit.plots import require_matplotlib
        require_matplotlib()                             # before the work, not after it
    if job.dataset:
        if job.series:
            raise DataError("give either --dataset NAME or a SERIES file, not both")
        series, name = load_bundled_series(job.dataset, job.column), job.dataset
    elif job.series:
        series, name = read_series(job.series, job.column), job.series
    else:
        raise DataError("expected a SERIES file (one number per line, or a CSV column) or --dataset NAME")
    file = bundled_dir(f"--dataset {job.dataset}") / BUNDLED_SERIES[job.dataset][0] if job.dataset else job.series
    dates = read_dates(file, len(series))
    h = COUNT.check("--horizon", job.horizon, DataError)
    train = series if job.future else series[:-h]
    if len(train) < 4:
        raise DataError(f"the series has {len(series)} values; holding out --horizon {h} leaves "
                        f"{len(train)} to train on (at least 4 are needed)")
    season = job.season if job.season is not None else baselines.estimate_season(train)
    Range(int, low=1, high=len(train)).check("--season", season, DataError)
    params = params | ({"season": job.season} if job.season is not None else {})
    fc = RNNForecaster(**params)
    start = time.perf_counter()
    fc.fit(train)
    seconds = time.perf_counter() - start
    forecast = fc.predict(h)
    lower, upper = fc.predict_interval(h, job.coverage)
    result = {"series": name, "length": len(series), "horizon": h, "season": season,
              "window": fc.window_, "fit_seconds": round(seconds, 2), "epochs": fc.n_epochs_,
              "linear_path": fc.choices_[0], "correction": fc.correction_,
              "index": _index(dates, len(train), h), "forecast": forecast.tolist(),
              "coverage": job.coverage, "lower": lower.tolist(), "upper": upper.tolist()}
    if not job.future:
        actual = series[-h:]
        naive = {"last_value": baselines.last_value(train, h),
                 "seasonal_naive": baselines.seasonal_naive(train, h, season)}
        result["actual"] = actual.tolist()
        inside = lambda lo, hi: float(np.mean((actual >= lo) & (actual <= hi)))
        result["rnnkit"] = {"mape": baselines.mape(actual, forecast), "rmse": baselines.rmse(actual, forecast),
                            "covered": inside(lower, upper),
                            # the share inside the 80% and 95% intervals too (scripts/seqmodels_table.py)
                            "coverage": {str(level): inside(*fc.predict_interval(h, level / 100))
                                         for level in (80, 95)}}
        result["baselines"] = {k: {"mape": baselines.mape(actual, v), "rmse": baselines.rmse(actual, v)}
                               for k, v in naive.items()}
    if job.backtest:
        result["backtest"] = _backtest(series, h, job, params, dates, season)
    if job.save:
        fc.save(job.save)
    if job.plot:
        _plot(job, name, train, result, dates)
    return result


def _index(dates, n_train: int, h: int) -> list:
    """The labels of the h forecast steps after n_train rows: dates if the file had them."""
    from rnnkit.models.timeindex import labels, next_dates
    if dates is not None:
        ahead = dates[n_train:n_train + h] if n_train + h <= len(dates) else next_dates(dates, h)
        if ahead is not None:
            return labels(ahead)
    return list(range(n_train, n_train + h))


def _backtest(series: np.ndarray, h: int, job: ForecastJob, params: dict, dates, season: int) -> dict:
    """Each window of an expanding-window backtest: rnnkit's and seasonal naive's errors, coverage."""
    from rnnkit.models import RNNForecaster, cross_validate
    bt = cross_validate(RNNForecaster(**params), series, h, n_windows=job.backtest, coverage=job.coverage)
    windows = []
    for i, c in enumerate(bt.cutoffs):
        naive = baselines.seasonal_naive(series[:c], h, min(season, int(c)))
        windows.append({"cutoff": int(c), "first": _index(dates, int(c), 1)[0],
                        "rnnkit": {"mape": float(bt.mape[i]), "rmse": float(bt.rmse[i]),
                                   "covered": float(bt.covered[i])},
                        "seasonal_naive": {"mape": baselines.mape(bt.actual[i], naive),
                                           "rmse": baselines.rmse(bt.actual[i], naive)}})
    mean = {k: {m: float(np.mean([w[k][m] for w in windows])) for m in windows[0][k]}
            for k in ("rnnkit", "seasonal_naive")}
    return {"windows": windows, "mean": mean}


def _plot(job: ForecastJob, name: str, train: np.ndarray, r: dict, dates) -> None:
    from rnnkit.plots.forecast import plot_forecast
    dated = dates is not None and isinstance(r["index"][0], str)      # else row numbers for both
    hist = [str(d) for d in dates[:len(train)]] if dated else list(range(len(train)))
    plot_forecast(job.plot, hist, train, r["index"], r["forecast"], r["lower"], r["upper"], r.get("actual"),
                  job.coverage, title=f"{name}: {job.horizon}-step forecast")
