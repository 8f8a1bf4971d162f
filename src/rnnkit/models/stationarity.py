"""Does a series need differencing? The KPSS test of level stationarity.

Kwiatkowski, Phillips, Schmidt and Shin (1992), "Testing the null hypothesis of stationarity
against the alternative of a unit root", Journal of Econometrics 54:159-178. For a series y (n,),
with e_t = y_t − ȳ and the partial sums S_t = e_1 + … + e_t,

    η = Σ_t S_t² / (n² s²(l))
    s²(l) = (1/n) Σ_t e_t² + (2/n) Σ_{s=1..l} (1 − s/(l + 1)) Σ_{t>s} e_t e_{t−s}   (Newey-West)

with l = ⌊3√n / 13⌋ lags (the short truncation, as R's ``tseries::kpss`` and statsforecast's
``ndiffs`` use). A level-stationary series keeps its partial sums small; a random walk or a trend
makes them grow like n², so η above the 5% critical value 0.463 (the paper's table 1) rejects
stationarity. This is the test AutoARIMA uses to choose d, and the forecaster uses it the same
way: d = 1 is a candidate only where the test rejects (``linear_path.candidates``).
"""

from __future__ import annotations

import numpy as np

CRITICAL_5_PERCENT = 0.463      # KPSS (1992) table 1, level stationarity, 5% upper tail
MIN_LENGTH = 12                 # below this the test has no power: both d stay candidates


def kpss_lags(n: int) -> int:
    """l = ⌊3√n / 13⌋, the short Newey-West truncation."""
    return int(3 * np.sqrt(n) / 13)


def kpss_statistic(y: np.ndarray, lags: int | None = None) -> float:
    """η of the module docstring for the level-stationarity null (y (n,), finite)."""
    y = np.asarray(y, np.float64)
    n = len(y)
    e = y - y.mean()                                               # (n,)
    l = kpss_lags(n) if lags is None else lags
    s2 = e @ e / n
    for s in range(1, l + 1):
        s2 += 2.0 / n * (1.0 - s / (l + 1.0)) * (e[s:] @ e[:-s])
    if s2 <= 0.0:                                                  # a constant series is stationary
        return 0.0
    S = np.cumsum(e)                                               # (n,)
    return float(S @ S / (n * n * s2))


def needs_difference(y: np.ndarray) -> bool:
    """True when KPSS rejects level stationarity at 5% (or the series is too short to tell)."""
    y = np.asarray(y, np.float64)
    if len(y) < MIN_LENGTH:
        return True
    return kpss_statistic(y) > CRITICAL_5_PERCENT
