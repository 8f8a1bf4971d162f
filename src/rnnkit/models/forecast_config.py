"""RNNForecaster's own defaults, each with the measurement or the reason behind it.

The network and training defaults it shares with the other estimators are in
:mod:`rnnkit.models.config`; the constants of its parts sit beside the code they steer
(``rnnkit.models.season``, ``transforms``, ``linear_path``, ``intervals``, ``forecaster``), each
with its reason. Measured with scripts/tune_forecaster.py on the development series (sktime's
lynx, shampoo sales and US consumption changes; simulated trend + season, AR(9) and
multiplicative-season series of seeds 100-102), two seeds;
docs/sequence_models.md, "How the defaults were chosen".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForecastParams:
    window: str | int = "auto"       # max(24, 2 seasons), at most a third of the series
                                     # (rnnkit.models.season.auto_window): a function of the
                                     # season and the length only, so noise cannot move it
    output_steps: int = 1            # the network corrects one step; longer horizons recurse
    season: str | int = "auto"       # periodogram peak confirmed by the autocorrelation: the true
                                     # period for noisy sines of periods 4-50 in 5 of 5 draws,
                                     # 1 for white noise, random walks and AR(1) (tests)
    n_estimators: int = 1            # networks averaged in the correction; 3: RMSE 0.997x of one
                                     # network's (geometric mean, 16 fits: 8 development series,
                                     # 2 seeds), at ~5x the fit time; the correction was kept in
                                     # 3 of those 16 fits with one network, 4 with three
    normalize: str = "global"        # the network's input, in the adjusted space: "last" gave
                                     # RMSE 0.636x Holt-Winters' against 0.639x (geometric mean
                                     # over the 12 development series, 2 seeds): no difference
    pooling: str = "last"            # the window's last hidden state (from the former tuning:
                                     # max pooling 1.78, attention 1.40, last 1.38 relative RMSE)
    patience: int = 10               # epochs without a lower validation loss (the estimators'
                                     # default is 30): the network starts at the linear forecast
                                     # and its best epoch came within the first 10 in all 24
                                     # development fits; the same forecasts in all 24, with 12
                                     # epochs per fit on average instead of 36 (a fit's time is
                                     # nearly all epochs)
    # Training: early stopping on the most recent windows (the older half of the held-out 20%;
    # the newer half chooses α), Adam at a constant rate — the protocol the forecaster's
    # correction was measured with, not the classifier's fixed-step cosine one: the network
    # starts at the linear forecast and must stop as soon as it stops helping.
    epochs: int = 300                # an upper bound; early stopping ends most fits far sooner
    batch_size: int = 32
    lr: float = 3e-3
    schedule: str = "constant"
    validation_fraction: float = 0.2


DEFAULTS = ForecastParams()
