"""The layers of convolutional blocks as ONNX pieces (inference mode), and their exporters alone.

Each piece takes the value names it reads and returns the name of its output, like the other
pieces (:mod:`rnnkit.onnx.graph`), so an exporter composes Conv1d → BatchNorm1d → ReLU as three calls:

    conv1d(g, conv, x)               x (N, C_in, L) → Conv (kernel_shape, strides, dilations, group,
                                     pads [p_l, p_r]); another padding mode first pads with Pad
                                     (reflect → "reflect", replicate → "edge", circular → "wrap", opset ≥ 19).
                                     float64: Pad, then one MatMul per kernel offset (onnxruntime has no
                                     float64 Conv)
    batch_norm(g, bn, x, lengths)    BatchNormalization with the running statistics (eval mode); kept
                                     as its own node, not folded into a preceding Conv's weights:
                                     onnxruntime fuses Conv + BatchNormalization itself when it loads
                                     the graph. With lengths (B,) int64: Where(t < lengths[n], y, 0)
    relu(g, x)                       Relu
    layer_norm(g, ln, x)             LayerNormalization over the trailing axes (opset ≥ 17)

The exporters alone: Conv1d ``input`` (N, C_in, L) → ``output`` (N, C_out, L_out); BatchNorm1d
``input`` (N, C, L) (+ ``lengths`` (N,) int64 with lengths=True) → ``output``; LayerNorm ``input``
(d0, d1, *normalized_shape) → ``output`` (an ONNX input has a fixed rank; the piece itself takes
any). ReLU has no exporter alone: a graph of one Relu of some fixed rank serves nobody; compositions
use :func:`relu`.
"""

from __future__ import annotations

import numpy as np

from rnnkit.conv import Conv1d, weight_matrix
from rnnkit.norm import BatchNorm1d, LayerNorm
from rnnkit.onnx.errors import ExportValueError
from rnnkit.onnx.graph import Graph, dim, step_mask
from rnnkit.onnx.interface import lengths_input
from rnnkit.onnx.registry import register_exporter

PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def conv1d(g: Graph, conv: Conv1d, x: str) -> str:
    """y (N, C_out, L_out) of the convolution on x (N, C_in, L).

    A float32 graph uses Conv. onnxruntime's CPU Conv has no float64 kernel, so a float64 graph
    computes the same sum as one MatMul per kernel offset j (:func:`_conv_products`)."""
    geo = conv.geometry
    native = np.dtype(g.dtype) == np.float32
    pads = [geo.left, geo.right]
    if geo.mode != "zeros" or not native:
        if geo.mode == "circular" and g.opset < 19:
            raise ExportValueError("opset", f"rnnkit.onnx: Conv1d(padding_mode='circular') needs ONNX Pad's "
                                            f"mode 'wrap', opset >= 19; got opset {g.opset}")
        if geo.left or geo.right:
            x = g.op("Pad", x, g.ints([0, 0, geo.left, 0, 0, geo.right]), mode=PAD_MODES[geo.mode], hint="conv_pad")
        pads = [0, 0]
    if not native:
        return _conv_products(g, conv, x)
    inputs = [x, g.const(conv.weight.data, "conv_weight")]
    if conv.bias is not None:
        inputs.append(g.const(conv.bias.data, "conv_bias"))
    return g.op("Conv", *inputs, kernel_shape=[geo.kernel], strides=[geo.stride], dilations=[geo.dilation],
                group=geo.groups, pads=pads, hint="conv")


def _conv_products(g: Graph, conv: Conv1d, xp: str) -> str:
    """y = b + Σ_j W2_j · x̃[:, :, j·d :: s] (L_out positions each) on the padded x̃ (N, C_in, L_p),
    with W2_j (C_out, C_in) the offset-j block of rnnkit's weight matrix (block-diagonal for groups)."""
    geo = conv.geometry
    k, d = geo.kernel, geo.dilation
    W2 = weight_matrix(conv.weight.data, geo.groups).reshape(conv.out_channels, k, conv.in_channels)
    terms = []
    for j in range(k):
        tail = (k - 1 - j) * d                               # positions the window may not start in
        taps = g.op("Slice", xp, g.ints([j * d]), g.ints([-tail if tail else np.iinfo(np.int64).max]),
                    g.ints([2]), g.ints([geo.stride]), hint=f"conv_taps{j}")          # (N, C_in, L_out)
        terms.append(g.op("MatMul", g.const(np.ascontiguousarray(W2[:, j]), f"conv_w{j}"), taps, hint=f"conv_t{j}"))
    y = g.op("Sum", *terms, hint="conv") if k > 1 else terms[0]
    return y if conv.bias is None else g.op("Add", y, g.const(conv.bias.data[:, None], "conv_bias"), hint="conv_out")


def batch_norm(g: Graph, bn: BatchNorm1d, x: str, lengths: str | None = None) -> str:
    """BatchNorm1d in eval mode on x (N, C) or (N, C, L); lengths (N,) int64 (3-D x only) zeroes the
    padded positions t ≥ lengths[n]."""
    if bn.running_mean is None:
        raise ValueError("rnnkit.onnx: a BatchNorm1d with track_running_stats=False normalises with each "
                         "batch's own statistics even in eval mode; an inference graph needs running statistics")
    C = bn.num_features
    scale = np.ones(C) if bn.weight is None else bn.weight.data
    shift = np.zeros(C) if bn.bias is None else bn.bias.data
    # ONNX's epsilon attribute is a float32: what it loses of ε goes into the variance constant,
    # so that var + ε is the module's to float64 rounding (1e-3 would otherwise be off by 5e-11).
    var = bn.running_var.astype(np.float64) + (bn.eps - float(np.float32(bn.eps)))
    y = g.op("BatchNormalization", x, g.const(scale, "bn_scale"), g.const(shift, "bn_bias"),
             g.const(bn.running_mean, "bn_mean"), g.const(var, "bn_var"), epsilon=bn.eps, hint="bn")
    if lengths is None:
        return y
    valid = g.op("Unsqueeze", step_mask(g, dim(g, x, 2, "length"), lengths, batch_major=True), g.ints([1]),
                 hint="bn_valid")                                                       # (N, 1, L)
    return g.op("Where", valid, y, g.const(np.array(0.0), "zero"), hint="bn_masked")


def relu(g: Graph, x: str) -> str:
    return g.op("Relu", x, hint="relu")


def layer_norm(g: Graph, ln: LayerNorm, x: str) -> str:
    """LayerNorm over the trailing len(normalized_shape) axes of x."""
    if g.opset < 17:
        raise ExportValueError("opset", f"rnnkit.onnx: LayerNorm is exported as LayerNormalization, which needs "
                                        f"opset >= 17; got opset {g.opset}")
    scale = np.ones(ln.normalized_shape) if ln.weight is None else ln.weight.data
    inputs = [x, g.const(scale, "ln_scale")] + ([] if ln.bias is None else [g.const(ln.bias.data, "ln_bias")])
    return g.op("LayerNormalization", *inputs, axis=-len(ln.normalized_shape), epsilon=ln.eps, hint="ln")


def _no_lengths(module, lengths: bool) -> None:
    if lengths:
        raise ExportValueError("lengths", f"rnnkit.onnx.export: a {type(module).__name__} takes no lengths "
                                          "(only BatchNorm1d masks padded positions)")


@register_exporter(Conv1d)
def export_conv1d(g: Graph, conv: Conv1d, lengths: bool) -> None:
    _no_lengths(conv, lengths)
    x = g.add_input("input", g.elem_type, ["batch", conv.in_channels, "length"])
    g.add_output(conv1d(g, conv, x), "output", g.elem_type, ["batch", conv.out_channels, "out_length"])


@register_exporter(BatchNorm1d)
def export_batch_norm(g: Graph, bn: BatchNorm1d, lengths: bool) -> None:
    x = g.add_input("input", g.elem_type, ["batch", bn.num_features, "length"])
    y = batch_norm(g, bn, x, lengths_input(g) if lengths else None)
    g.add_output(y, "output", g.elem_type, ["batch", bn.num_features, "length"])


@register_exporter(LayerNorm)
def export_layer_norm(g: Graph, ln: LayerNorm, lengths: bool) -> None:
    _no_lengths(ln, lengths)
    shape = ["d0", "d1", *ln.normalized_shape]                  # e.g. (T, B, F): an ONNX input has a rank
    g.add_output(layer_norm(g, ln, g.add_input("input", g.elem_type, shape)), "output", g.elem_type, shape)
