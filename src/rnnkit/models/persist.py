"""Saving and loading fitted estimators: one safetensors file, no pickle.

Tensors: the network's weights (``net.<name>``) plus the estimator's own arrays (``scaler.mean``,
``scaler.scale``, ...). Metadata (JSON, under the ``rnnkit`` key): the format name and version,
the estimator class, its hyperparameters, the network configuration and the learned attributes
that are not arrays — class labels among them, stored with their numpy dtype so that int64,
str, bool and float labels come back exactly as they went in. Written atomically (temporary
file, then rename), with the helpers of ``rnnkit.lm.checkpoint``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnkit.lm.checkpoint import prefixed, read_tensors, unprefixed, write_tensors
from rnnkit.errors import UserError

FORMAT, VERSION = "rnnkit.models", 2     # 2: an ensemble of networks; 1 (one network) still loads


class ModelFileError(UserError):
    """A file that is not a saved model of the expected estimator."""


def encode_labels(labels: np.ndarray) -> dict:
    """Labels as JSON: their dtype and their values (refuses labels JSON cannot hold exactly)."""
    values = labels.tolist()
    if labels.dtype == object:
        bad = [v for v in values if not isinstance(v, (str, int, float, bool)) or v is None]
        if bad:
            raise TypeError(f"cannot save class labels of type {type(bad[0]).__name__} ({bad[0]!r}): "
                            "labels must be numbers, strings or bools")
    elif labels.dtype.kind not in "biufU":
        raise TypeError(f"cannot save class labels of dtype {labels.dtype}: labels must be numbers, "
                        "strings or bools")
    return {"dtype": "object" if labels.dtype == object else labels.dtype.str, "values": values}


def decode_labels(data: dict) -> np.ndarray:
    dtype = object if data["dtype"] == "object" else np.dtype(data["dtype"])
    out = np.empty(len(data["values"]), dtype=dtype)
    out[:] = data["values"]
    return out


def save_model(path, estimator: str, params: dict, net, arrays: dict[str, np.ndarray], meta: dict) -> None:
    params = {k: _param_json(v) for k, v in params.items()}
    header = {"format": FORMAT, "version": VERSION, "estimator": estimator, "params": params,
              "net": net.cfg.to_json(), "members": len(net), **meta}
    json.dumps(header)                                  # fail before writing anything
    write_tensors(Path(path), prefixed("net.", net.state_dict()) | arrays, header)


SCALARS = (int, float, str, bool, type(None))


def _param_json(value):
    """A hyperparameter as JSON: scalars as they are, tuples of scalars (conv_filters) as lists;
    anything else (a RandomState instance) is not kept."""
    if isinstance(value, (tuple, list)) and all(isinstance(v, SCALARS) for v in value):
        return list(value)
    return value if isinstance(value, SCALARS) else None


def params_from_json(params: dict) -> dict:
    """The inverse of the saving: JSON lists back to the tuples they were."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def load_model(path, estimator: str) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(header, net weights, other arrays) of a file saved by ``estimator``; ModelFileError otherwise."""
    path = Path(path)
    tensors, header = _read(path, f"{estimator}.save")
    if header.get("estimator") != estimator:
        raise ModelFileError(f"{path}: holds an {header.get('estimator')}, not an {estimator}; "
                             f"load it with {header.get('estimator')}.load")
    weights = unprefixed("net.", tensors)
    if header["version"] == 1:                          # one network: the ensemble's member 0
        weights = prefixed("0.", weights)
        header = header | {"members": 1} | ({"history": [header["history"]]} if "history" in header else {})
    return header, weights, {k: v for k, v in tensors.items() if not k.startswith("net.")}


def load_estimator(path):
    """The fitted estimator saved at ``path`` by ``save``, whichever of the three it is."""
    import rnnkit.models
    path = Path(path)
    _, header = _read(path, "an estimator's save")
    name = header.get("estimator")
    if name not in rnnkit.models.__all__:
        raise ModelFileError(f"{path}: holds an unknown estimator {name!r} (expected one of "
                             f"{', '.join(rnnkit.models.__all__)})")
    return getattr(rnnkit.models, name).load(path)


def _read(path: Path, writer: str) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, header) of an rnnkit sequence model file of this format version."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file (expected a model saved by {writer})")
    try:
        tensors, header = read_tensors(path)
    except Exception as exc:                            # safetensors raises its own error types
        raise ModelFileError(f"{path}: not a safetensors model file ({type(exc).__name__}: {exc})") from None
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an rnnkit sequence model (format {header.get('format')!r}, "
                             f"expected {FORMAT!r})")
    if header.get("version") not in (1, VERSION):
        raise ModelFileError(f"{path}: format version {header.get('version')!r}; this rnnkit reads 1 and {VERSION}")
    return tensors, header
