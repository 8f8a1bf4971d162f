"""Data for the command line: UCR-layout and .ts files, single-series files, and bundled sets.

UCR layout (the UCR/UEA archive's .tsv and .csv files): one sequence per line, the class label
first, then the values; comma-, tab- or space-separated. Trailing empty or NaN fields mark a
shorter sequence (the archive pads variable-length sets that way). The archive's .ts files
(multivariate, variable lengths): :mod:`rnnkit.models.tsfile`. Series files: one number per
line, or a CSV/TSV with a header whose column is chosen by name (``column=``).

Bundled sets (``pip install "rnnkit[ucr]"``): sktime ships nine UCR/UEA classification sets as
.ts files and a few classic series as CSV files inside its package, in
``sktime/datasets/data/``. rnnkit finds that directory with :func:`importlib.util.find_spec`
and reads the files itself, so sktime is never imported (that would import pandas and take
seconds) and its version does not matter as long as the files are there.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.errors import DataError
from rnnkit.models.tsfile import read_ts as _read_ts_file

# The UCR/UEA sets in sktime 1.2 (NAME/NAME_TRAIN.ts and NAME_TEST.ts): 1 channel unless noted.
# JapaneseVowels (12 channels) and PLAID are of variable length; BasicMotions has 6 channels.
# (aeon also bundled PickupGestureWiimoteZ; sktime does not, so it is not offered.)
BUNDLED_CLASSIFICATION = ("ACSF1", "ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand",
                          "JapaneseVowels", "OSULeaf", "PLAID", "UnitTest")
# name: (CSV file in sktime's data directory, the column read unless --column says otherwise)
BUNDLED_SERIES = {
    "airline": ("Airline/Airline.csv", "Passengers"),        # monthly, 1949-1960 (Box & Jenkins)
    "lynx": ("Lynx/Lynx.csv", "0"),                          # yearly trappings, 1821-1934
    "shampoo": ("ShampooSales/ShampooSales.csv", "Sales"),   # monthly, 3 years
    "uschange": ("Uschange/Uschange.csv", "Consumption"),    # quarterly % changes, 1970-2016
    "pbs": ("PBS_dataset/PBS_dataset.csv", "Scripts"),       # monthly counts, 1991-2008
    "solar": ("solar/solar.csv", "solar_gen"),               # half-hourly, 6 days of May 2021
    "longley": ("Longley/Longley.csv", "TOTEMP"),            # yearly, 1947-1962 (16 values)
}
_SKTIME = ('needs the data sets that ship inside sktime: pip install "rnnkit[ucr]" (rnnkit reads '
           "sktime's data files; it does not import sktime)")


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


def read_ts(path) -> Labelled:
    """A labelled .ts file: class labels parsed as read_ucr parses them, targets as floats."""
    ts = _read_ts_file(path)
    if ts.labels is None:
        raise DataError(f"{path}: the file has no labels (@classLabel or @targetLabel true)")
    if ts.kind == "target":
        try:
            return Labelled(ts.X, np.array([float(v) for v in ts.labels]))
        except ValueError as exc:
            raise DataError(f"{path}: a regression target is not a number ({exc})") from None
    return Labelled(ts.X, _parse_labels(ts.labels))


def read_labelled(path) -> Labelled:
    """Labelled sequences from a .ts file, or from a file in the UCR layout (any other name)."""
    return read_ts(path) if Path(path).suffix.lower() == ".ts" else read_ucr(path)


def bundled_dir(what: str = "--dataset") -> Path:
    """sktime's data directory, found without importing sktime."""
    try:
        spec = importlib.util.find_spec("sktime")
    except (ImportError, ValueError):     # ValueError: a module of that name without a spec
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{what} {_SKTIME}")
    for root in spec.submodule_search_locations:
        data = Path(root) / "datasets" / "data"
        if data.is_dir():
            return data
    raise DataError(f"{what}: sktime at {list(spec.submodule_search_locations)} has no "
                    'datasets/data directory; pip install "sktime>=1.2"')


def bundled_files(name: str) -> tuple[Path, Path]:
    """The (train, test) .ts files of a UCR/UEA set bundled with sktime."""
    if name not in BUNDLED_CLASSIFICATION:
        raise DataError(f"--dataset {name!r}: not one of the sets bundled with sktime "
                        f"({', '.join(BUNDLED_CLASSIFICATION)}); for others, pass TRAIN and TEST files")
    folder = bundled_dir(f"--dataset {name}") / name
    files = (folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"--dataset {name}: the installed sktime lacks {', '.join(missing)}")
    return files


def load_ucr(name: str) -> tuple[Labelled, Labelled]:
    """(train, test) of a UCR/UEA set bundled with sktime, by name (offline)."""
    return tuple(read_ts(path) for path in bundled_files(name))


def load_bundled_series(name: str, column: str | None = None) -> np.ndarray:
    """A series bundled with sktime, by name: its usual column, or ``column`` of the same file."""
    if name not in BUNDLED_SERIES:
        raise DataError(f"--dataset {name!r}: expected one of {', '.join(BUNDLED_SERIES)}")
    path, default = BUNDLED_SERIES[name]
    file = bundled_dir(f"--dataset {name}") / path
    if not file.is_file():
        raise DataError(f"--dataset {name}: the installed sktime lacks {file}")
    return read_series(file, column or default)
