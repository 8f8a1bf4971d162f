"""The sequence classifier and regressor of :mod:`rnnkit.models` as ONNX: all of ``predict``.

Inputs: ``input`` (B, T, F) float32, batch-major like scikit-learn's X (a 2-D X of univariate
sequences goes in as ``X[:, :, None]``), batch and time dynamic; with ``lengths=True`` also
``lengths`` (B,) int64, each in [1, T]: sequences of different lengths padded to T (what
``predict`` does with a ragged list). The graph then does what ``predict`` does:

    z = (x − mean) / scale,  0 at padded steps        the standardisation learned in fit ("global"),
      or (x − m_i) / s_i beside (log s_i − μ_ℓ) / σ_ℓ  per sequence over its valid steps ("sequence")
    frames of k steps (k = frame_ > 1):  T zero-padded to T' = ⌈T/k⌉·k, (B, T', F) → (B, T'/k, k·F),
                                          lengths → ⌈L/k⌉         (rnnkit.models.data.stack_frames)
    logits = head(pool(stack(z, lengths), lengths))   (B, K)      (rnnkit.onnx.network)

Classifier outputs: ``label`` (B,) — the labels' own dtype, see :mod:`rnnkit.onnx.labels` — and
``probabilities`` (B, K), columns in the order of ``classes_``. Labels ONNX cannot hold: outputs
``label_index`` (B,) int64 into ``classes_`` and ``probabilities``; the labels go to
``MODEL.classes.json`` beside the file. Either way the model's metadata (``rnnkit.classes``)
holds the labels as JSON. Regressor output: ``prediction``, (B,) or (B, k) as the y of ``fit``,
de-standardised (z · y_scale_ + y_mean_).

float32: ``predict`` runs in float64, the graph in float32. The weights lose nothing (training ran
in float32; prediction only widens them) and float32 is what onnxruntime's LSTM / GRU / RNN
kernels run; the difference is float32 rounding, about 1e-6 relative (the tests bound it at
2e-5 on probabilities and on predictions relative to max(1, |value|)); a label can differ from
``predict``'s only when two classes' probabilities agree to that precision.
"""

from __future__ import annotations

import json

import numpy as np

from rnnkit.models._sklearn import NotFittedError
from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.persist import encode_labels
from rnnkit.models.regressor import RNNRegressor
from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.graph import Graph, dim, reduce, step_mask
from rnnkit.onnx.interface import lengths_input
from rnnkit.onnx.labels import label_array, tensor_type
from rnnkit.onnx.network import sequence_net
from rnnkit.onnx.registry import register_exporter

CLASSES_SUFFIX = ".classes.json"          # MODEL.onnx -> MODEL.classes.json


def float32(_estimator) -> np.dtype:
    """The graph's float type for every estimator (see the module docstring)."""
    return np.dtype(np.float32)


def check_fitted(est, attribute: str = "net_") -> None:
    if not hasattr(est, attribute):
        raise NotFittedError(f"rnnkit.onnx.export: this {type(est).__name__} is not fitted yet; call fit "
                             f"(or {type(est).__name__}.load a saved one) before exporting it")


def sequences_input(g: Graph, est, lengths: bool) -> tuple[str, str | None]:
    """The inputs ``input`` (B, T, F) (and ``lengths``) → (network input (T', B, k·F'), its lengths)."""
    x = g.add_input("input", g.elem_type, ["batch", "time", est.n_channels_])
    lens = lengths_input(g) if lengths else None
    sc = est.scaler_
    valid = None if lens is None else g.op("Unsqueeze", step_mask(g, dim(g, x, 1, "steps"), lens, batch_major=True),
                                           g.ints([2]), hint="x_valid")              # (B, T, 1)
    if sc.mode == "global":
        z = g.op("Div", g.op("Sub", x, g.const(sc.mean, "x_mean")), g.const(sc.scale, "x_scale"), hint="x_std")
    else:
        z = per_sequence(g, sc, x, valid, lens)
    if valid is not None:                        # padding is 0 after standardising, as in Scaler.transform
        z = g.op("Where", valid, z, g.const(np.array(0.0), "zero"), hint="x_masked")
    if est.frame_ > 1:
        z, lens = frames(g, z, est.frame_, sc.features_out, lens)
    return g.op("Transpose", z, perm=[1, 0, 2], hint="x_time_major"), lens


def per_sequence(g: Graph, sc, x: str, valid: str | None, lens: str | None) -> str:
    """Scaler's "sequence" mode: z = (x − m_i) / s_i beside ℓ = (log s_i − μ_ℓ) / σ_ℓ, (B, T, 2F);
    m_i, s_i over each sequence's valid steps."""
    zero = g.const(np.array(0.0), "zero")
    if valid is None:
        count = g.op("Cast", dim(g, x, 1, "steps"), to=g.elem_type, hint="count")        # T
        inside = x
    else:
        count = g.op("Unsqueeze", g.op("Cast", lens, to=g.elem_type), g.ints([1, 2]), hint="count")  # (B,1,1)
        inside = g.op("Where", valid, x, zero, hint="x_inside")
    m = g.op("Div", reduce(g, "ReduceSum", inside, [1], keepdims=True), count, hint="seq_mean")  # (B, 1, F)
    dev = g.op("Sub", x, m, hint="seq_dev")
    sq = g.op("Mul", dev, dev)
    if valid is not None:
        sq = g.op("Where", valid, sq, zero)
    s = g.op("Sqrt", g.op("Div", reduce(g, "ReduceSum", sq, [1], keepdims=True), count), hint="seq_std")
    floor = g.op("Mul", g.op("Max", g.op("Abs", m), g.const(np.array(1.0), "one")), g.const(np.array(1e-12), "tiny"))
    divisor = g.op("Where", g.op("Greater", s, floor), s, g.const(np.array(1.0), "one"), hint="seq_divisor")
    z = g.op("Div", dev, divisor, hint="seq_z")
    log_s = g.op("Log", g.op("Max", s, g.const(1e-12 * sc.scale, "log_floor")), hint="seq_log_std")
    ell = g.op("Div", g.op("Sub", log_s, g.const(sc.log_mean, "log_mean")), g.const(sc.log_scale, "log_scale"))
    ell = g.op("Expand", ell, g.op("Shape", z), hint="seq_scale")                          # (B, T, F)
    return g.op("Concat", z, ell, axis=2, hint="x_std")


def frames(g: Graph, z: str, k: int, F: int, lengths: str | None) -> tuple[str, str | None]:
    """z (B, T, F) → (B, ⌈T/k⌉, k·F), zero-padded at the end; lengths L → ⌈L/k⌉."""
    T = dim(g, z, 1, "steps")
    pad = g.op("Mod", g.op("Sub", g.ints(k), g.op("Mod", T, g.ints(k))), g.ints(k), hint="frame_pad")
    pads = g.op("Concat", g.ints([0, 0, 0, 0]), g.op("Unsqueeze", pad, g.ints([0])), g.ints([0]), axis=0)
    z = g.op("Reshape", g.op("Pad", z, pads, hint="x_padded"), g.ints([0, -1, k * F]), hint="x_frames")
    if lengths is not None:
        lengths = g.op("Div", g.op("Add", lengths, g.ints(k - 1)), g.ints(k), hint="frame_lengths")
    return z, lengths


@register_exporter(RNNClassifier, dtype=float32)
def export_classifier(g: Graph, est: RNNClassifier, lengths: bool) -> None:
    onnx = require_onnx()
    check_fitted(est)
    x, lens = sequences_input(g, est, lengths)
    z = sequence_net(g, est.net_, x, lens)                                            # (B, K) logits
    index = g.op("ArgMax", z, axis=1, keepdims=0, hint="argmax")                      # first maximum, as numpy
    labels = label_array(est.classes_)
    encoded = encode_labels(est.classes_)
    if labels is None:
        g.add_output(index, "label_index", onnx.TensorProto.INT64, ["batch"])
        g.sidecars[CLASSES_SUFFIX] = encoded
    else:
        g.sidecars[CLASSES_SUFFIX] = None        # none beside this file: an older export's goes
        label = g.op("Gather", g.const(labels, "classes", dtype=labels.dtype), index, axis=0, hint="labels")
        g.add_output(label, "label", tensor_type(labels), ["batch"])
    g.add_output(g.op("Softmax", z, axis=1, hint="probs"), "probabilities", g.elem_type,
                 ["batch", len(est.classes_)])
    g.metadata.update({"rnnkit.estimator": "RNNClassifier", "rnnkit.classes": json.dumps(encoded)})


@register_exporter(RNNRegressor, dtype=float32)
def export_regressor(g: Graph, est: RNNRegressor, lengths: bool) -> None:
    check_fitted(est)
    x, lens = sequences_input(g, est, lengths)
    z = sequence_net(g, est.net_, x, lens)                                            # (B, k) standardised
    y = g.op("Add", g.op("Mul", z, g.const(est.y_scale_, "y_scale")), g.const(est.y_mean_, "y_mean"), hint="y")
    k = len(est.y_mean_)
    if est._y_ndim == 1:
        y = g.op("Squeeze", y, g.ints([1]), hint="y_1d")
    g.add_output(y, "prediction", g.elem_type, ["batch"] if est._y_ndim == 1 else ["batch", k])
    g.metadata["rnnkit.estimator"] = "RNNRegressor"
