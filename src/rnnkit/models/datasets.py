"""Data for the command line: UCR-layout files, single-series files, and aeon's bundled sets.

UCR layout (the UCR/UEA archive's .tsv and .csv files): one sequence per line, the class label
first, then the values; comma-, tab- or space-separated. Trailing empty or NaN fields mark a
shorter sequence (the archive pads variable-length sets that way). Series files: one number per
line, or a CSV/TSV with a header whose column is chosen by name (``column=``).

``aeon`` (optional, ``pip install "rnnkit[ucr]"``) ships a few UCR/UEA sets and the airline
series inside its package; they load by name, offline. aeon gives (n, channels, T) arrays (or a
list of (channels, T_i) arrays); rnnkit takes (n, T, F), so they are transposed here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError

BUNDLED_CLASSIFICATION = ("ACSF1", "ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand",
                          "JapaneseVowels", "OSULeaf", "PickupGestureWiimoteZ", "UnitTest")
BUNDLED_SERIES = {"airline": "load_airline"}   # aeon 1.6 deprecates its other bundled series


class DataError(UserError):
    """A data file or data set name that cannot be used."""


@dataclass(frozen=True)
class Labelled:
    X: list[np.ndarray] | np.ndarray      # (n, T, F) array, or a list of (T_i, F) arrays
    y: np.ndarray


def _sniff_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(f"{path}: not a readable text file ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{path}: the file is empty")
    first = lines[0]
    delim = "\t" if "\t" in first else "," if "," in first else None
    if delim is None:
        return [ln.split() for ln in lines]
    return [[f.strip() for f in row] for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delim)]


def _parse_labels(raw: list[str]) -> np.ndarray:
    """Labels as int if every one is an integer, else float if numeric, else str."""
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in raw])
        except ValueError:
            continue
    return np.array(raw)


def read_ucr(path) -> Labelled:
    """A UCR-layout file: label, then values; trailing NaN/empty fields shorten a sequence."""
    path = Path(path)
    rows = _sniff_rows(path)
    labels, seqs = [], []
    for i, row in enumerate(rows, 1):
        fields = list(row)
        while fields and fields[-1].lower() in ("", "nan", "?"):
            fields.pop()
        if len(fields) < 2:
            raise DataError(f"{path}, line {i}: expected a label and at least one value, got {row[:3]}")
        try:
            values = np.array([float(v) for v in fields[1:]])
        except ValueError as exc:
            raise DataError(f"{path}, line {i}: a value is not a number ({exc}); the UCR layout is "
                            "the label first, then the values") from None
        if not np.isfinite(values).all():
            raise DataError(f"{path}, line {i}: missing or infinite values inside the sequence "
                            "(only trailing NaN/empty fields may shorten it)")
        labels.append(fields[0])
        seqs.append(values)
    y = _parse_labels(labels)
    if len({len(s) for s in seqs}) == 1:
        return Labelled(np.stack(seqs)[:, :, None], y)
    return Labelled([s[:, None] for s in seqs], y)


def read_series(path, column: str | None = None) -> np.ndarray:
    """One series (N,) from a file of numbers, one per line, or a named column of a CSV/TSV."""
    path = Path(path)
    rows = _sniff_rows(path)
    header = rows[0]
    has_header = any(not _is_number(f) for f in header)
    if column is not None:
        if not has_header or column not in header:
            found = header if has_header else "no header line"
            raise DataError(f"{path}: no column named {column!r} (found {found})")
        k = header.index(column)
    elif has_header and len(header) > 1:
        numeric = [j for j in range(len(header)) if all(len(r) > j and _is_number(r[j]) for r in rows[1:])]
        if len(numeric) != 1:
            raise DataError(f"{path}: {len(header)} columns {header}; choose one with --column")
        k = numeric[0]
    else:
        k = 0
        if any(len(r) > 1 for r in rows[has_header:]):
            raise DataError(f"{path}: several values per line; give a header line and --column")
    values = []
    for i, row in enumerate(rows[1 if has_header else 0:], 2 if has_header else 1):
        if len(row) <= k or not _is_number(row[k]):
            raise DataError(f"{path}, line {i}: expected a number in column {k + 1}, got {row[k:k + 1]}")
        values.append(float(row[k]))
    series = np.array(values)
    if not np.isfinite(series).all():
        raise DataError(f"{path}: the series has missing or infinite values "
                        f"(first at line {int(np.argmin(np.isfinite(series))) + 1 + has_header})")
    return series


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _aeon(what: str):
    try:
        import aeon.datasets as ds
    except ImportError:
        raise DataError(f'{what} needs the aeon package: pip install "rnnkit[ucr]" (aeon ships '
                        "these data sets inside its package)") from None
    return ds


def _from_aeon(X) -> list[np.ndarray] | np.ndarray:
    """aeon's (n, channels, T) array or list of (channels, T_i) → rnnkit's (n, T, F) / (T_i, F)."""
    if isinstance(X, np.ndarray):
        return np.ascontiguousarray(X.transpose(0, 2, 1), dtype=np.float64)
    return [np.ascontiguousarray(np.asarray(x, np.float64).T) for x in X]


def load_ucr(name: str) -> tuple[Labelled, Labelled]:
    """(train, test) of a UCR/UEA set bundled with aeon, by name (offline)."""
    if name not in BUNDLED_CLASSIFICATION:
        raise DataError(f"--dataset {name!r}: not one of the sets bundled with aeon "
                        f"({', '.join(BUNDLED_CLASSIFICATION)}); for others, pass TRAIN and TEST files")
    ds = _aeon(f"--dataset {name}")
    parts = [ds.load_classification(name, split=split) for split in ("train", "test")]
    return tuple(Labelled(_from_aeon(X), _parse_labels([str(v) for v in y])) for X, y in parts)


def load_bundled_series(name: str) -> np.ndarray:
    if name not in BUNDLED_SERIES:
        raise DataError(f"--dataset {name!r}: expected one of {', '.join(BUNDLED_SERIES)}")
    ds = _aeon(f"--dataset {name}")
    return np.asarray(getattr(ds, BUNDLED_SERIES[name])(), dtype=np.float64).reshape(-1)
