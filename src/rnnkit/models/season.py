"""The season of a series and the forecaster's window, chosen so that noise does not move them.

Season (:func:`estimate_season`): a periodogram peak, tested against its own neighbourhood,
refined to an integer period and confirmed by the autocorrelation:

    r_t   = x_t − (a + b t)                      the series less its least-squares line
    I_k   = |Σ_t r_t e^{−2πi k t / n}|²           periodogram, frequency k / n, period n / k
    B_k   = median(the 2w values around I_k) / ln 2    the local background (an exponential's
                                                  mean, from its median)
    P(m)  = n/2 · (the sum of squares a sinusoid of period m explains in r beside a line)
                                                  the power at exactly period m (= I_k at a bin)
    m     = the integer period of highest P(m)/B near the three highest I_k / B_k
    test  P(m)/B > ln(#frequencies) + PEAK_MARGIN   under a smooth spectrum (white noise, a
                                                  random walk's 1/f²) I_k / B_k is about
                                                  exponential: its maximum rarely passes
    fundamental: a multiple j·m (≤ max_period) replaces m if its own peak passes a test at
            level ln(#multiples) + ln(1/α) and its autocorrelation is higher by 1/√n (the
            12-month season of a series whose 6-month harmonic is the stronger)
    ρ(m) > 2/√n and ρ(m) − min_{0<k<m} ρ(k) > 4/√n, else no season (1)

Detrending by a line, not by differencing: differencing scales a slow season down by
2 sin(π/m) and doubles the noise, which made the former estimate (the highest autocorrelation
peak of the differenced series) return 1, 3, 53 and 1 for four noise draws of a period-50 sine.
The local background keeps a random walk (whose periodogram falls as 1/f²) from passing.

Window (:func:`auto_window`): a function of the season and the series length only.
"""

from __future__ import annotations

import math

import numpy as np

# window="auto": AUTO_WINDOW steps (two years of monthly data, a day of hourly data) or two
# seasons if longer, at most a third of the series so that enough windows remain to train on.
AUTO_WINDOW = 24
SEASON_ALPHA = 0.01          # the fundamental's test: a false peak with chance ~1%
BACKGROUND_HALF_WIDTH = 8    # w: the background is the median of the 2w neighbouring values;
                             # with w = 3 (7 values) the median was so noisy that 4 of 20 white
                             # noise series of 300 steps passed the test at ln(#freq) + 4.6
PEAK_MARGIN = 10.0           # the peak test: P/B > ln(#frequencies) + PEAK_MARGIN. With w = 8,
                             # P/B − ln(#freq) over 200 draws, 99th percentile: white noise 10,
                             # random walk of 300 steps 21 (its 1/f² slope within the window);
                             # with the autocorrelation tests, 0-2 false seasons in 100 draws of
                             # white noise, random walks and AR(1) of 60-1000 steps, and the
                             # true period for sines of periods 4-50 at noise 0.5-1.0 (200+ steps)


def detrended(x: np.ndarray) -> np.ndarray:
    """x less its least-squares line (n,)."""
    t = np.arange(len(x), dtype=np.float64)
    design = np.stack([np.ones_like(t), t], axis=1)
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ coef


def autocorrelation(r: np.ndarray, max_lag: int) -> np.ndarray:
    """ρ(0..max_lag) of r (the biased estimator: Σ r_t r_{t+k} / Σ r_t², which shrinks with k)."""
    r = r - r.mean()
    denom = float(np.dot(r, r))
    return np.array([np.dot(r[:len(r) - k], r[k:]) / denom for k in range(max_lag + 1)])


def estimate_season(series, max_period: int | None = None) -> int:
    """The season (period in steps, >= 2) of the first series, or 1 if none is found."""
    x = np.asarray(series, np.float64).reshape(len(series), -1)[:, 0]
    n = len(x)
    max_period = min(max_period or n // 3, n // 2)
    if n < 8 or max_period < 2:
        return 1
    r = detrended(x)
    if not np.any(np.abs(r) > 1e-12 * (1 + np.abs(x).max())):
        return 1
    k_lo, k_hi = max(1, math.ceil(n / max_period)), n // 2
    if k_lo > k_hi:
        return 1
    power = np.abs(np.fft.rfft(r)) ** 2                          # I_k, k = 0 .. n // 2
    background = _backgrounds(power, k_lo, k_hi)
    coarse = power / background
    top = k_lo + np.argsort(-coarse[k_lo:k_hi + 1], kind="stable")[:3]
    found = [max(_band(n, int(k), max_period), key=lambda m: _ratio(r, m, background)) for k in top]
    m = max(found, key=lambda m: _ratio(r, m, background))
    if _ratio(r, m, background) <= math.log(k_hi - k_lo + 1) + PEAK_MARGIN:
        return 1
    acf = autocorrelation(r, max_period)
    multiples = range(2, max_period // m + 1)                   # the fundamental of a harmonic:
    level = math.log(max(1, len(multiples))) + math.log(1 / SEASON_ALPHA)   # its own peak, and
    better = [j * m for j in multiples if _ratio(r, j * m, background) > level  # a higher ρ
              and acf[j * m] > acf[m] + 1 / math.sqrt(n)]
    if better:
        m = max(better, key=lambda k: acf[k])
    trough = acf[1:m].min()
    return m if acf[m] > 2 / math.sqrt(n) and acf[m] - trough > 4 / math.sqrt(n) else 1


def _backgrounds(power: np.ndarray, k_lo: int, k_hi: int) -> np.ndarray:
    """B_k for every bin (inf outside [k_lo, k_hi]): the median of the 2w neighbours of k / ln 2."""
    w, out = BACKGROUND_HALF_WIDTH, np.full(len(power), np.inf)
    for k in range(k_lo, k_hi + 1):
        near = np.r_[power[max(1, k - w):k], power[k + 1:k + w + 1]]
        out[k] = np.median(near) / math.log(2) + 1e-300
    return out


def _band(n: int, k: int, max_period: int) -> range:
    """The integer periods whose frequency lies within one bin of k / n."""
    lo = max(2, math.floor(n / (k + 1)) + 1)
    hi = min(max_period, math.ceil(n / (k - 1)) - 1 if k > 1 else max_period)
    return range(lo, hi + 1) if lo <= hi else range(min(max_period, max(2, round(n / k))), min(max_period, max(2, round(n / k))) + 1)


def _ratio(r: np.ndarray, m: int, background: np.ndarray) -> float:
    """The power at exactly period m over the background of its bin. The power is n/2 times the
    sum of squares that a sinusoid of period m explains in r beside a line (r is detrended, and
    a sinusoid of a fractional number of cycles is not orthogonal to the line): the periodogram
    value at an exact bin, without the bias towards periods the line distorts."""
    n = len(r)
    t = np.arange(n, dtype=np.float64)
    basis = np.stack([np.ones(n), t / n, np.cos(2 * np.pi * t / m), np.sin(2 * np.pi * t / m)], axis=1)
    q, _ = np.linalg.qr(basis)                                   # (n, 4) orthonormal
    ess = float(np.sum((q[:, 2:].T @ r) ** 2))
    return (n / 2) * ess / background[min(len(background) - 1, max(1, round(n / m)))]


def auto_window(season: int, n: int, horizon: int) -> int:
    """window="auto": max(AUTO_WINDOW, 2·season), at most a third of the n − horizon windows' span."""
    return max(1, min(max(AUTO_WINDOW, 2 * season), (n - horizon) // 3))
