"""RNNForecaster: a linear autoregressive path and a recurrent network that corrects it.

    a_t = g_λ(x_t) − s_{t mod m}                   adjusted series (rnnkit.models.linear_path)
    â_{t+1..t+H} = Aᵀ a_{t−L+1..t} + b + α σ_r · net(ã_{t−L+1..t}, ẽ)
    x̂ = g_λ⁻¹(â + s)

The linear path (Box-Cox λ, seasonal offsets s, AR(p) on Δ^d a, all in closed form) is fitted
first; the network (LSTNet's highway idea in reverse: the linear part is the highway, fitted
exactly) learns what the linear path leaves, in units of its one-step error σ_r. Its output
layer starts at zero, so training starts exactly at the linear forecast; α ∈ {0, ½, 1} (how
much of the correction is kept) is chosen on the most recent windows, the ones held out for
early stopping — on a series where the network does not help, α = 0 and the forecast is the
linear path's. Intervals: split-conformal on the linear path's out-of-sample multi-step errors,
refitted at origins over the most recent steps (rnnkit.models.intervals).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict

import numpy as np

from rnnkit.checks import check_choice
from rnnkit.errors import InputError
from rnnkit.losses import mean_squared_error
from rnnkit.models._sklearn import r2_score, sklearn_tags
from rnnkit.models.base import RecurrentEstimator, seed_from
from rnnkit.models.config import AUTO_COUNT, FitSettings, NetParams, from_params
from rnnkit.models.data import Sequences
from rnnkit.models.forecast_config import DEFAULTS
from rnnkit.models.intervals import check_coverage, conformal_quantile, extend, spread_and_scores
from rnnkit.models.linear_path import VALIDATION_MIN_STEPS, LinearPath, backtest_errors, fit_linear_path
from rnnkit.models.network import NetConfig, SequenceNet
from rnnkit.models.season import auto_window, estimate_season
from rnnkit.models.series import NORMALIZATIONS, SeriesScale, as_series, normalise_windows, rows, sliding
from rnnkit.models.training import PREDICT_BATCH, predict_network
from rnnkit.ranges import COUNT

N, S, D = NetParams, FitSettings, DEFAULTS         # the defaults of the constructor's parameters

# The share α of the network's correction kept, chosen on the held-out windows by the error of
# recursive forecasts of max(output_steps, season, 8) steps: chosen by one-step error instead,
# α = 1 made a simulated AR(9) series' 20-step RMSE 2.58 against the linear path's 1.80 (the
# network helped one step ahead and hurt when fed back). α > 0 must lower that error by 1%.
CORRECTIONS = (0.0, 0.5, 1.0)
CORRECTION_MARGIN = 0.01
# The held-out windows (validation_fraction of them) are split in two: the older half decides
# early stopping, the newer half α, so that α is not chosen on the windows that chose the epoch
# (on that AR(9) series the shared windows said the network lowered the error by 16%; on the
# test steps it raised it by 43%). With fewer than 2·MIN_ALPHA_WINDOWS, both use all of them.
MIN_ALPHA_WINDOWS = 4
# Intervals: the linear path is refitted at up to CALIBRATION_ORIGINS origins, evenly spread over
# the most recent CALIBRATION_SHARE of the training series, and forecasts to its end: the
# out-of-sample errors that the conformal scores and the spread per step come from.
CALIBRATION_SHARE = 0.4
CALIBRATION_ORIGINS = 40

# scikit-learn's conformance checks that cannot apply to a forecaster, with the reason. Since
# scikit-learn 1.6 these go to check_estimator / parametrize_with_checks as expected_failed_checks
# (the older _xfail_checks tag no longer exists); the tests pass exactly this dict.
SKLEARN_EXPECTED_FAILURES = {
    "check_fit1d": "X is one series, rows are time steps: a 1-D X is a univariate series "
                   "(the commonest input), not an error",
    "check_methods_subset_invariance": "the rows of X are consecutive time steps: each row's "
                                       "forecast depends on the rows before it",
    "check_methods_sample_order_invariance": "the rows of X are consecutive time steps: "
                                             "reordering them changes the series",
}


class RNNForecaster(RecurrentEstimator):
    """Forecasts a series from its last ``window`` values: a linear AR path plus an RNN correction.

    ``fit(X)``: X is the series, (N,) or (N, F) (rows are time steps; F series are forecast
    together, each with its own linear path). ``exog`` (N, E) adds extra input series whose
    future values are known when forecasting (the network reads them; the linear path does not).
    ``season``: the period of the seasonal offsets ("auto": ``estimate_season`` of the first
    series; 1: none). The network reads a window of the adjusted series a, normalised with its
    mean and spread (``normalize="global"``), relative to the window's last value (``"last"``)
    or both, and predicts ``output_steps`` corrections at once; longer forecasts feed forecasts
    back, ``output_steps`` at a time; ``n_estimators`` networks (each from its own initialisation
    and batch order) make an ensemble whose mean is the correction. The last ``validation_fraction`` of the windows (the most
    recent) is held out for early stopping and for the share α of the correction kept.

    ``predict(12)``: the 12 steps after the training series; ``predict(1, history=series[:t])``
    after any other history (at least ``window_`` steps; its first row is taken to stand where
    the training series' first row stood in the season). ``predict(X_new)`` with an array: the
    one-step-ahead forecasts of each row of ``X_new``, a continuation of the training series (or
    of ``history``); ``score(X_new)`` is their R². ``predict_interval(12, coverage=0.9)``:
    (lower, upper) bounds (split-conformal, see ``rnnkit.models.intervals``).

    Learned: ``path_`` (the linear path), ``season_``, ``window_``, ``correction_`` (α),
    ``choices_`` (each series' λ, offsets, d and AR order), ``net_`` (the ensemble, ``NetEnsemble``),
    ``history_`` (one per network).
    ``y`` in ``fit`` is ignored (scikit-learn's API for estimators without targets).
    Other parameters as :class:`RNNClassifier`.
    """

    def __init__(self, window=D.window, output_steps=D.output_steps, season=D.season,
                 n_estimators=D.n_estimators, normalize=D.normalize, cell=N.cell, hidden_size=N.hidden_size,
                 num_layers=N.num_layers, pooling=D.pooling, dropout=N.dropout, norm_between=N.norm_between,
                 layer_norm=N.layer_norm, recurrent_dropout=N.recurrent_dropout, zoneout=N.zoneout, epochs=D.epochs,
                 batch_size=D.batch_size, lr=D.lr, schedule=D.schedule, weight_decay=S.weight_decay,
                 clip=S.clip, patience=D.patience, validation_fraction=D.validation_fraction,
                 time_budget=S.time_budget, verbose=S.verbose, random_state=None):
        self.window = window
        self.output_steps = output_steps
        self.season = season
        self.n_estimators = n_estimators
        self.normalize = normalize
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.pooling = pooling
        self.dropout = dropout
        self.norm_between = norm_between
        self.layer_norm = layer_norm
        self.recurrent_dropout = recurrent_dropout
        self.zoneout = zoneout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.schedule = schedule
        self.weight_decay = weight_decay
        self.clip = clip
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.time_budget = time_budget
        self.verbose = verbose
        self.random_state = random_state

    def __sklearn_tags__(self):
        return sklearn_tags(super().__sklearn_tags__(), target_required=False)

    # -- fitting --------------------------------------------------------------------------------
    def _config(self) -> tuple[NetParams, FitSettings, int]:
        """The checked network and training parameters and output_steps; window, season and
        normalize are checked too."""
        params = self.get_params(deep=False)
        net, settings = from_params(NetParams, params), from_params(FitSettings, params)
        check_choice("normalize", self.normalize, NORMALIZATIONS, InputError)
        H = COUNT.check("output_steps", self.output_steps, InputError)
        for name in ("window", "season"):
            AUTO_COUNT.check(name, getattr(self, name), InputError)
        return net, settings, H

    def fit(self, X, y=None, exog=None):
        """Learn to forecast the series X (N,) / (N, F); exog (N, E): extra known-future inputs."""
        net_params, settings, H = self._config()
        x = as_series(X)
        e = self._exog(exog, len(x), "exog", None)
        n = len(x)
        m = estimate_season(x[:, 0]) if self.season == "auto" else int(self.season)
        m = m if 2 * m < n else 1                     # offsets need two seasons at least
        L = auto_window(m, n, H) if self.window == "auto" else int(self.window)
        count = n - L - H + 1
        if count < 2:
            raise InputError(f"X has {n} sample(s) (time steps); with window={L} and output_steps={H} "
                             f"that leaves {max(count, 0)} training windows, at least 2 are needed "
                             f"(N >= window + output_steps + 1 = {L + H + 1})")
        path, choices = fit_linear_path(x, m, L, max(H, m, VALIDATION_MIN_STEPS))
        a = path.adjust(x[None], np.zeros(1, np.int64))[0]                  # (N, F)
        self.path_, self.season_, self.window_, self.choices_ = path, m, L, choices
        self.scale_ = SeriesScale.fit(a, e)
        self.n_features_in_, self.n_exog_ = x.shape[1], e.shape[1]
        rng = seed_from(self.random_state)
        n_alpha = self._fit_network(a, e, net_params, settings, rng)
        self.correction_ = self._choose_correction(a, e, n_alpha, max(H, m, VALIDATION_MIN_STEPS))
        self._series_ndim = np.ndim(X) if not isinstance(X, (list, tuple)) else np.asarray(X).ndim
        self.n_train_ = n
        self.last_window_, self.last_exog_ = x[-L:].copy(), e[-L:].copy()
        self.interval_spread_, self.calibration_ = self._calibrate(x)
        return self

    def _training_windows(self, a: np.ndarray, e: np.ndarray):
        """(network inputs (count, L, ·), residual targets (count, H·F)) of the adjusted series."""
        H, L, n = int(self.output_steps), self.window_, len(a)
        count = n - L - H + 1
        e_pad = np.concatenate([e, np.repeat(e[-1:], H, axis=0)]) if e.shape[1] else e
        wins = sliding(rows(a, e_pad, H)[:n - H], L)                       # (count, L, ·) ending at t
        inputs, _ = normalise_windows(wins, a.shape[1], self.normalize, self.scale_)
        linear = self.path_.forecast(wins[:, :, :a.shape[1]], H)            # (count, H, F)
        fut = sliding(a[L:], H)                                            # (count, H, F) a_{t+1..t+H}
        return inputs, ((fut - linear) / self.path_.scale).reshape(count, -1)

    def _fit_network(self, a, e, net_params: NetParams, settings: FitSettings, rng) -> int:
        """Train the correction's networks (output layers at zero) on the older windows; returns
        how many of the newest windows are left to choose α on."""
        inputs, targets = self._training_windows(a, e)
        count, L = len(inputs), self.window_
        n_val = int(round(settings.validation_fraction * count)) if count >= 8 else 0
        n_val = min(n_val, count - 2)                  # keep windows to train on, whatever the fraction
        n_alpha = n_val // 2 if n_val >= 2 * MIN_ALPHA_WINDOWS else n_val
        data = Sequences(inputs, np.full(count, L, np.int64), "3d")
        stop = n_val - n_alpha if n_alpha < n_val else n_val   # early stopping: the older half
        train, val = np.arange(count - n_val), np.arange(count - n_val, count - n_val + stop)
        cfg = NetConfig(inputs.shape[2], targets.shape[1], **asdict(net_params))
        self._train_networks(cfg, settings, data.subset(train), targets[train],
                             data.subset(val) if n_val else None, targets[val] if n_val else None,
                             mean_squared_error, rng)
        return n_alpha

    def _new_network(self, cfg: NetConfig, rng) -> SequenceNet:
        """A network whose output layer is zero: training starts exactly at the linear forecast."""
        net = super()._new_network(cfg, rng)
        net.head.weight.data[...] = 0.0
        if net.head.bias is not None:
            net.head.bias.data[...] = 0.0
        return net

    def _choose_correction(self, a: np.ndarray, e: np.ndarray, n_val: int, K: int) -> float:
        """α: the share of the network's correction whose recursive forecasts of up to K steps
        from the origins of the last n_val windows have the lowest mean squared error (adjusted
        space); α > 0 must beat the linear path alone by CORRECTION_MARGIN."""
        if not n_val:
            return 1.0
        n, L = len(a), self.window_
        origins = np.arange(n - int(self.output_steps) - n_val + 1, n - int(self.output_steps) + 1)
        windows = np.stack([a[o - L:o] for o in origins])
        e_ahead = self._exog_windows(e, origins - L, L + K + int(self.output_steps)) if e.shape[1] else None
        steps = origins[:, None] + np.arange(K)
        valid = steps < n
        losses = []
        for alpha in CORRECTIONS:
            self.correction_ = alpha
            err = self._recursive(windows, e_ahead, K) - a[np.minimum(steps, n - 1)]
            losses.append(float(np.mean(err[valid] ** 2)))
        best = int(np.argmin(losses))
        return CORRECTIONS[best] if losses[best] < (1 - CORRECTION_MARGIN) * losses[0] else 0.0

    def _calibrate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(v (F, K), sorted conformal scores (F, n_scores), inf-padded) from backtests of the
        linear path over the most recent CALIBRATION_SHARE of the series (rnnkit.models.intervals)."""
        n, F, m = len(x), x.shape[1], self.path_.season
        spreads, all_scores = [], []
        for f in range(F):
            model = self.path_.model(f)
            need = max(3 * (len(model.coef) + 1) + model.d, 2 * m + 1 if m > 1 else 0, 4)
            lo = min(max(int(round((1 - CALIBRATION_SHARE) * n)), need), n - 1)
            origins = np.unique(np.linspace(lo, n - 1, min(CALIBRATION_ORIGINS, n - lo)).round().astype(np.int64))
            v, sc = spread_and_scores(backtest_errors(x[:, f], self.path_, f, origins, n - lo))
            spreads.append(v)
            all_scores.append(sc)
        K, S = max(len(v) for v in spreads), max(1, max(len(sc) for sc in all_scores))
        v = np.stack([extend(s, K) if np.all(np.isfinite(s)) else np.full(K, np.inf) for s in spreads])
        return v, np.stack([np.pad(sc, (0, S - len(sc)), constant_values=np.inf) for sc in all_scores])

    def _exog(self, exog, rows_needed: int, name: str, fitted: int | None) -> np.ndarray:
        if exog is None:
            if fitted:
                raise InputError(f"{name} is required: the model was fitted with {fitted} extra input "
                                 f"series, so their values for these steps must be given ({rows_needed} rows)")
            return np.zeros((rows_needed, 0))
        e = as_series(exog, name)
        if fitted is not None and e.shape[1] != fitted:
            raise InputError(f"{name} has {e.shape[1]} series (columns), but the model was fitted with {fitted}")
        if len(e) != rows_needed:
            raise InputError(f"{name} must have {rows_needed} rows (one per time step), got {len(e)}")
        return e

    @staticmethod
    def _exog_windows(e: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """e rows starts .. starts + length − 1 (B, length, E), the last row repeated past the end."""
        idx = np.minimum(starts[:, None] + np.arange(length), len(e) - 1)
        return e[idx]

    # -- forecasting ----------------------------------------------------------------------------
    def _context(self, history, history_exog) -> tuple[np.ndarray, np.ndarray, int]:
        """The last window_ rows of the series (and extra inputs) to forecast from, and the row
        (counted from the series' start) of the first of them."""
        if history is None:
            if history_exog is not None:
                raise InputError("history_exog is given without history")
            return self.last_window_, self.last_exog_, self.n_train_ - self.window_
        x = self._series(history, "history")
        if len(x) < self.window_:
            raise InputError(f"history has {len(x)} steps, but this model needs at least window_="
                             f"{self.window_} (the window it was trained on)")
        e = self._exog(history_exog, len(x), "history_exog", self.n_exog_)
        return x[-self.window_:], e[-self.window_:], len(x) - self.window_

    def _series(self, X, name: str) -> np.ndarray:
        x = as_series(X, name)
        if x.shape[1] != self.n_features_in_:
            hint = "; Reshape your data: X.reshape(-1, 1) for one series" if np.ndim(X) == 1 else ""
            raise InputError(f"{name} has {x.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input (series){hint}")
        return x

    def _block(self, a: np.ndarray, e: np.ndarray | None) -> np.ndarray:
        """â (B, H, F) after adjusted windows a (B, L, F); e (B, L + H, E): their extra inputs."""
        H, F = int(self.output_steps), self.n_features_in_
        linear = self.path_.forecast(a, H)
        if self.correction_ == 0:
            return linear
        r = np.stack([rows(ai, ei, H) for ai, ei in zip(a, e)]) if e is not None else a
        inputs, _ = normalise_windows(r, F, self.normalize, self.scale_)
        data = Sequences(inputs, np.full(len(inputs), inputs.shape[1], np.int64), "3d")
        z = predict_network(self.net_, data, PREDICT_BATCH).astype(np.float64)    # the ensemble's mean
        z = z.reshape(len(a), H, F)
        return linear + self.correction_ * z * self.path_.scale

    def _recursive(self, a: np.ndarray, e: np.ndarray | None, h: int) -> np.ndarray:
        """â (B, h, F): blocks of output_steps fed back; e (B, ≥ L + h + H − 1, E) or None."""
        H, L = int(self.output_steps), self.window_
        out, done = [], 0
        while done < h:
            block = self._block(a[:, -L:], e[:, done:done + L + H] if e is not None else None)
            out.append(block[:, :h - done])
            a = np.concatenate([a, block], axis=1)
            done += H
        return np.concatenate(out, axis=1)

    def _adjusted_forecast(self, h: int, history, exog, history_exog) -> tuple[np.ndarray, int]:
        """(â (h, F) after the context, the row of its first step)."""
        self._check_fitted()
        COUNT.check("the number of steps to forecast", h, InputError)
        x0, e0, start = self._context(history, history_exog)
        e_future = self._exog(exog, int(h), "exog", self.n_exog_)
        e = None
        if self.n_exog_:
            e = np.concatenate([e0, e_future, np.repeat(e_future[-1:], int(self.output_steps), axis=0)])[None]
        a0 = self.path_.adjust(x0[None], np.array([start]))
        return self._recursive(a0, e, int(h))[0], start + self.window_

    def _shaped(self, out: np.ndarray) -> np.ndarray:
        return out[:, 0] if self._series_ndim == 1 and out.shape[1] == 1 else out

    def predict(self, X, history=None, exog=None, history_exog=None) -> np.ndarray:
        """X: an int h → the next h steps, (h,) or (h, F); or an array of observations continuing
        the series → the one-step-ahead forecast of each row, shaped like X.

        history: the series to continue instead of the training series (>= window_ steps);
        exog: the extra inputs of the forecast steps (h rows, or one per row of X);
        history_exog: the extra inputs aligned with ``history``.
        """
        self._check_fitted()
        if isinstance(X, numbers.Integral) and not isinstance(X, bool):
            a, row = self._adjusted_forecast(int(X), history, exog, history_exog)
            return self._shaped(self.path_.restore(a[None], np.array([row]))[0])
        x0, e0, start = self._context(history, history_exog)
        obs = self._series(X, "X")
        return self._shaped(self._one_step(obs, x0, e0, start, self._exog(exog, len(obs), "exog", self.n_exog_)))

    def predict_interval(self, h: int, coverage: float = 0.9, history=None, exog=None,
                         history_exog=None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each shaped like ``predict(h)``: bounds that hold each of the next h
        values with probability ``coverage`` (split-conformal, rnnkit.models.intervals)."""
        c = check_coverage(coverage)
        a, row = self._adjusted_forecast(h, history, exog, history_exog)
        q = np.array([conformal_quantile(s[np.isfinite(s)], c) for s in self.calibration_])   # (F,)
        half = q * np.stack([extend(v, int(h)) for v in self.interval_spread_], axis=1)       # (h, F)
        half = np.where(np.isfinite(half), half, np.inf)
        bounds = [self.path_.restore((a + sign * half)[None], np.array([row]))[0] for sign in (-1, 1)]
        return self._shaped(bounds[0]), self._shaped(bounds[1])

    def _one_step(self, obs: np.ndarray, x0, e0, start: int, e_obs) -> np.ndarray:
        H, L = int(self.output_steps), self.window_
        x = np.concatenate([x0, obs])[:-1]                             # the rows before each target
        a = self.path_.adjust(x[None], np.array([start]))[0]
        e = None
        if self.n_exog_:
            e = np.concatenate([e0, e_obs, np.repeat(e_obs[-1:], H, axis=0)])
            e = sliding(e[:len(x) + H], L + H)
        pred = self._block(sliding(a, L), e)[:, :1, :]                 # (M, 1, F)
        rows_at = start + L + np.arange(len(obs))
        var = self.one_step_variance()
        return np.concatenate([self.path_.restore(pred[i:i + 1], rows_at[i:i + 1], var)[0]
                               for i in range(len(obs))])

    def one_step_variance(self) -> np.ndarray:
        """(F,) v_1², the variance of a one-step forecast error in the transformed space (the
        backtests' spread, rnnkit.models.intervals); 0 for a series without one.

        One-step forecasts (``predict(X_new)``, ``score``) are the *mean* of the next value, g_λ⁻¹
        bias-adjusted with it (``transforms.bias_adjusted_inverse``): they are judged by squared
        error, and after a log the median g_λ⁻¹(â) is too low on the peaks (lynx, 14 held-out
        years: one-step RMSE 522 median, 480 mean, a 9-lag AR's 485). Forecasts of h steps
        (``predict(h)``) stay the median, as R's forecast and statsforecast give them: adjusted
        with the backtests' v_k², the airline's 36-month RMSE rose from 22.6 to 28.9."""
        self._check_fitted()
        v = self.interval_spread_[:, 0]
        return np.where(np.isfinite(v), v, 0.0) ** 2

    def score(self, X, y=None, exog=None) -> float:
        """R² of the one-step-ahead forecasts of X's rows (X continues the training series)."""
        obs = self._series(X, "X") if hasattr(self, "net_") else None
        pred = self.predict(X, exog=exog)
        return r2_score(obs, pred.reshape(len(obs), -1))

    # -- saving (RecurrentEstimator.save / load) -----------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        sc, p = self.scale_, self.path_
        return {"scale.mean": sc.mean, "scale.std": sc.std, "scale.step": sc.step,
                "scale.exog_mean": sc.exog_mean, "scale.exog_std": sc.exog_std,
                "path.lam": p.lam, "path.offsets": p.offsets, "path.coef": p.coef,
                "path.intercept": p.intercept, "path.d": p.d, "path.scale": p.scale,
                "calibration": self.calibration_, "interval_spread": self.interval_spread_,
                "last_window": self.last_window_, "last_exog": self.last_exog_}

    def _meta(self) -> dict:
        return {"window": self.window_, "series_ndim": self._series_ndim, "season": self.season_,
                "correction": self.correction_, "n_train": self.n_train_, "choices": self.choices_}

    def _restore(self, header: dict, a: dict) -> None:
        from rnnkit.models.persist import ModelFileError
        if "path.coef" not in a:
            raise ModelFileError("saved by an earlier rnnkit, whose forecaster had no linear path: "
                                 "fit the forecaster again and save it")
        self.scale_ = SeriesScale(a["scale.mean"], a["scale.std"], a["scale.step"],
                                  a["scale.exog_mean"], a["scale.exog_std"])
        self.path_ = LinearPath(a["path.lam"], a["path.offsets"], a["path.coef"], a["path.intercept"],
                                a["path.d"].astype(np.int64), a["path.scale"])
        self.calibration_, self.interval_spread_ = a["calibration"], a["interval_spread"]
        self.last_window_, self.last_exog_ = a["last_window"], a["last_exog"]
        self.window_, self._series_ndim = int(header["window"]), int(header["series_ndim"])
        self.season_, self.correction_ = int(header["season"]), float(header["correction"])
        self.n_train_, self.choices_ = int(header["n_train"]), list(header["choices"])
        self.n_features_in_, self.n_exog_ = self.last_window_.shape[1], self.last_exog_.shape[1]
