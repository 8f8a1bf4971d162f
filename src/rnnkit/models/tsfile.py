"""The .ts format of the UCR/UEA archive (as aeon and sktime write it), read into rnnkit's layout.

    # free text                   description lines ('#'; the archive's files also use '%')
    @problemName GunPoint         metadata: @<identifier> <value>; identifiers in any case
    @univariate true              @dimensions C: C channels per case (1 when univariate)
    @equalLength true             @seriesLength T
    @missing false                true: '?' marks a missing value
    @timeStamps false             true: values are "(timestamp,value)" pairs (not read here)
    @classLabel true 1 2          the last field of each case is its class label ...
    @targetLabel true             ... or its regression target (neither: no last field)
    @data
    1.0,2.5,3.1:0.2,0.4,0.3:walk  one case per line: channels separated by ':', values by ','

A case of C channels of T values becomes a (T, C) array — rnnkit's (T_i, F) with F = C, the
transpose of the archive's (channels, time). Missing values at the end of a case (in every
channel) only shorten it, as the archive pads its variable-length sets; missing values anywhere
else are refused with the line number, since the estimators need complete sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.errors import DataError


@dataclass(frozen=True)
class TsData:
    X: np.ndarray | list[np.ndarray]    # (n, T, F) if every case has T steps, else n (T_i, F) arrays
    labels: list[str] | None            # each case's last field as written (None: no labels)
    kind: str                           # "class", "target" (regression) or "none"
    header: dict[str, str]              # the @identifiers, lower-case, with their values


def _header_and_data(path: Path) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The metadata block and the (line number, text) of each case after @data."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(f"{path}: not a readable text file ({exc})") from None
    header: dict[str, str] = {}
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text[0] in "#%":
            continue
        if not text.startswith("@"):
            raise DataError(f"{path}, line {i + 1}: expected a '@' metadata line or '@data' before "
                            f"the cases, got {text[:40]!r}")
        key, _, value = text[1:].partition(" ")
        if key.lower() == "data":
            cases = [(j + 1, s.strip()) for j, s in enumerate(lines[i + 1:], i + 1) if s.strip()]
            return header, cases
        header[key.lower()] = value.strip()
    raise DataError(f"{path}: no '@data' line (a .ts file has its metadata, then @data, then one "
                    "case per line)")


def _label_kind(path: Path, header: dict[str, str]) -> str:
    if header.get("timestamps", "false").lower() == "true":
        raise DataError(f"{path}: @timeStamps true (values given as (timestamp,value) pairs) is not "
                        "supported; write the values without their timestamps")
    if header.get("classlabel", "false").split()[:1] == ["true"]:
        return "class"
    if header.get("targetlabel", "false").split()[:1] == ["true"]:
        return "target"
    return "none"


def _case(path: Path, number: int, text: str, labelled: bool) -> tuple[np.ndarray, str | None]:
    """One case: its (T, C) values with trailing missing steps removed, and its label."""
    fields = text.split(":")
    label = fields.pop().strip() if labelled else None
    if not fields:
        raise DataError(f"{path}, line {number}: expected values before the label, got {text[:40]!r}")
    try:
        channels = [np.array(f.replace("?", "nan").split(","), dtype=np.float64) for f in fields]
    except ValueError as exc:
        raise DataError(f"{path}, line {number}: a value is not a number ({exc}); a case is "
                        "comma-separated values per channel, channels separated by ':', "
                        "the label last") from None
    lengths = {len(c) for c in channels}
    if len(lengths) > 1:
        raise DataError(f"{path}, line {number}: the channels have different lengths "
                        f"{[len(c) for c in channels]}; rnnkit needs one length per case")
    x = np.stack(channels, axis=1)                                      # (T, C)
    observed = np.flatnonzero(~np.isnan(x).all(axis=1))
    x = x[:observed[-1] + 1] if len(observed) else x[:0]
    if len(x) == 0:
        raise DataError(f"{path}, line {number}: the case has no values")
    if not np.isfinite(x).all():
        raise DataError(f"{path}, line {number}: missing or infinite values inside the case "
                        "(only missing values at its end may shorten it)")
    return x, label


def read_ts(path) -> TsData:
    """Every case of a .ts file, its labels (or targets) as written, and its metadata."""
    path = Path(path)
    header, cases = _header_and_data(path)
    kind = _label_kind(path, header)
    if not cases:
        raise DataError(f"{path}: no cases after @data")
    parsed = [_case(path, number, text, kind != "none") for number, text in cases]
    X = [x for x, _ in parsed]
    for (number, _), x in zip(cases, X):
        if x.shape[1] != X[0].shape[1]:
            raise DataError(f"{path}, line {number}: {x.shape[1]} channel(s), but the first case "
                            f"has {X[0].shape[1]}")
    declared = header.get("dimensions")
    if declared is not None and declared.isdigit() and int(declared) != X[0].shape[1]:
        raise DataError(f"{path}: @dimensions {declared}, but the cases have {X[0].shape[1]} channel(s)")
    labels = [label for _, label in parsed] if kind != "none" else None
    if len({len(x) for x in X}) == 1:
        return TsData(np.stack(X), labels, kind, header)
    return TsData(X, labels, kind, header)
