"""``export``: a module as a checked ONNX file, written atomically; ``to_model`` without writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnkit.files import atomic_write, write_json
from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.errors import ExportTypeError, ExportValueError
from rnnkit.onnx.graph import Graph
from rnnkit.onnx.registry import exporter_for
from rnnkit.ranges import Range

# Opset 19: recent, and run by every onnxruntime the extras allow (>= 1.16). Nothing the exporter
# uses changed after opset 14 (Unsqueeze/Split take axes and sizes as inputs since 13), so
# opset=14 and later all give the same graph.
DEFAULT_OPSET = 19
MIN_OPSET = 14


def check_opset(opset) -> int:
    """``opset`` (None: :data:`DEFAULT_OPSET`), from :data:`MIN_OPSET` to the installed onnx's newest."""
    if opset is None:
        return DEFAULT_OPSET
    newest = require_onnx().defs.onnx_opset_version()
    try:
        return Range(int, low=MIN_OPSET, high=newest, also=(None,)).check("opset", opset)
    except TypeError as exc:
        raise ExportTypeError("opset", str(exc)) from None
    except ValueError as exc:
        raise ExportValueError("opset", f"{exc} (the installed onnx knows up to {newest})") from None


def to_model(module, lengths: bool = False, opset: int | None = None):
    """The inference graph of ``module`` as an ``onnx.ModelProto``, checked by onnx's full check.

    The graph computes the module's forward in eval mode (dropout is the identity) in the module's
    dtype. See :func:`export` for the interface.
    """
    return _build(module, lengths, opset)[0]


def _build(module, lengths: bool, opset: int | None):
    """(checked ModelProto, {suffix: JSON document to write beside the file})."""
    onnx = require_onnx()
    if not isinstance(lengths, bool):
        raise ExportTypeError("lengths", f"lengths must be True or False, got {type(lengths).__name__} {lengths!r}")
    fn, dtype_of = exporter_for(module)
    g = Graph(dtype_of(module), check_opset(opset))
    fn(g, module, lengths)
    model = g.to_model(doc=f"rnnkit {type(module).__name__}: {module!r}"[:2000])
    onnx.checker.check_model(model, full_check=True)
    return model, g.sidecars


def export(module, path, lengths: bool = False, opset: int | None = None) -> Path:
    """Write the ONNX graph of ``module`` to ``path`` (temporary file + rename: never half a file).

    module: an RNN / LSTM / GRU layer (any options), an RNNCell / LSTMCell / GRUCell, a CharLM, a
    pooling layer, a fitted sequence estimator of rnnkit.models, or any type registered with :func:`rnnkit.onnx.register_exporter`.

    Layers: inputs ``input`` (T, B, I) — (B, T, I) with batch_first —, ``h0`` (L·D, B, H_out) and,
    for the LSTM, ``c0`` (L·D, B, H) (inputs like the others: zeros for a fresh sequence,
    :func:`rnnkit.onnx.zero_state_feeds`), ``lengths`` (B,) int64 with
    ``lengths=True`` (each in [1, T], PyTorch's packed-sequence semantics); outputs ``output``,
    ``h_n`` (, ``c_n``) with the shapes of the layer's forward. Batch and time are dynamic.
    Cells: ``input`` (B, I), ``h0`` (, ``c0``) (B, n) → ``h1`` (, ``c1``).
    CharLM: ``tokens`` (T, B) int64, ``h0``, ``c0`` → ``logits`` (T, B, V), ``h_n``, ``c_n``.
    A fitted RNNClassifier / RNNRegressor: ``input`` (B, T, F) float32 (+ ``lengths``) → ``label``
    and ``probabilities`` / ``prediction``, everything ``predict`` does (rnnkit.onnx.estimators);
    an RNNForecaster: ``input`` (B, window_, F) (+ ``exog``) → ``forecast`` (B, output_steps, F)
    (rnnkit.onnx.forecaster). A classifier whose labels ONNX cannot hold also writes them to
    ``MODEL.classes.json`` beside the file.

    opset: the ONNX opset (default :data:`DEFAULT_OPSET`; 14 up to what the installed onnx knows).
    Returns the path written.
    """
    return write(module, path, lengths, opset).path


@dataclass(frozen=True)
class Written:
    """What :func:`write` wrote: the file, its model, and the files beside it by suffix."""
    path: Path
    model: object                      # onnx.ModelProto
    sidecars: dict[str, Path]          # e.g. {CLASSES_SUFFIX: MODEL.classes.json}; removed ones left out


def write(module, path, lengths: bool = False, opset: int | None = None) -> Written:
    """:func:`export`, returning what it wrote (for the command line's report)."""
    onnx = require_onnx()
    model, sidecars = _build(module, lengths, opset)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"rnnkit.onnx.export: {path} is a directory; give a file name such as model.onnx")
    atomic_write(path, lambda tmp: onnx.save_model(model, tmp))
    written = {}
    for suffix, document in sidecars.items():          # after the model: never one without it
        target = path.with_suffix(suffix)
        if document is None:
            target.unlink(missing_ok=True)
        else:
            write_json(target, document)
            written[suffix] = target
    return Written(path, model, written)
