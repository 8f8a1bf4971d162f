"""The time index of a series file: its date column, and the dates of the steps after it.

A CSV/TSV series file may carry a column of dates beside its values (``Date,Passengers`` /
``1949-01,112``). :func:`read_dates` finds the first column whose every value is an ISO date or
time NumPy reads (``1949``, ``1949-01``, ``1949-01-31``, ``2021-05-01 00:30:00``, a trailing
``+00:00`` ignored); :func:`next_dates` continues it by its step when the step is regular (dates
on the first of each month step by months). Without such a column the index is the row number.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rnnkit.models.datasets import _sniff_rows

_TZ = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def _parse(values: list[str]) -> np.ndarray | None:
    try:
        dates = np.array([np.datetime64(_TZ.sub("", v.strip()).replace(" ", "T")) for v in values])
    except ValueError:
        return None
    if dates.dtype == np.dtype("datetime64[D]") and len(dates) > 1:
        days = (dates - dates.astype("datetime64[M]")).astype(np.int64)
        if np.all(days == 0):                               # the first of each month: months
            dates = dates.astype("datetime64[M]")
    return dates


def read_dates(path, n: int) -> np.ndarray | None:
    """The date column (n,) datetime64 of a series file, or None if it has none."""
    rows = _sniff_rows(Path(path))
    if len(rows) != n + 1 or len(rows[0]) < 2:               # a header line and n rows of data
        return None
    for k in range(len(rows[0])):
        values = [r[k] if len(r) > k else "" for r in rows[1:]]
        if all(re.match(r"^\d{4}(-\d\d)", v.strip()) for v in values):
            dates = _parse(values)
            if dates is not None:
                return dates
    return None


def next_dates(dates: np.ndarray, h: int) -> np.ndarray | None:
    """The h dates after ``dates`` if they are evenly spaced (in their unit), else None."""
    if len(dates) < 2:
        return None
    steps = np.diff(dates)
    if not np.all(steps == steps[0]) or steps[0] <= np.timedelta64(0):
        return None
    return dates[-1] + steps[0] * np.arange(1, h + 1)


def labels(dates: np.ndarray) -> list[str]:
    return [str(d) for d in dates]
