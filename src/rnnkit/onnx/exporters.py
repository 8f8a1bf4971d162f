"""The exporters of rnnkit's own module types: layers, cells and the character language model.

Each declares the graph interface of its module and composes the body from shared pieces; see
:mod:`rnnkit.onnx.registry` for how another module type plugs in.

Layers: ``input`` (T, B, I) — (B, T, I) with batch_first —, ``h0`` (and ``c0``) of shape
(L·D, B, n) (zeros for a fresh sequence), ``lengths`` (B,) int64 when exported with lengths →
``output``, ``h_n`` (, ``c_n``).
Cells: ``input`` (B, I), ``h0`` (, ``c0``) (B, n) → ``h1`` (, ``c1``): the state after one step.
Language model: ``tokens`` (T, B) int64, ``h0`` (, ``c0``) → ``logits`` (T, B, V), ``h_n`` (, ``c_n``)
(with the adaptive softmax, ``logits`` are the log-probabilities themselves).
"""

from __future__ import annotations

from rnnkit.cells import CellBase
from rnnkit.lm.model import CharLM
from rnnkit.norm.between import NormedStack
from rnnkit.onnx.adaptive import adaptive_log_prob
from rnnkit.onnx.between import normed_stack, normed_stack_spec
from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.errors import ExportValueError
from rnnkit.onnx.graph import Graph, linear
from rnnkit.onnx.interface import lengths_input, sequence_input, state_inputs, state_outputs
from rnnkit.onnx.recurrent import stack
from rnnkit.onnx.registry import register_exporter, register_lazy
from rnnkit.onnx.spec import stack_spec
from rnnkit.recurrent import RecurrentBase


@register_exporter(RecurrentBase)
def export_layer(g: Graph, layer: RecurrentBase, lengths: bool) -> None:
    spec = stack_spec(layer)
    x = sequence_input(g, spec, layer.batch_first)                                 # (T, B, I)
    states = state_inputs(g, spec)
    lens = lengths_input(g) if lengths else None
    y, finals = stack(g, spec, x, states, lens)
    if layer.batch_first:
        y = g.op("Transpose", y, perm=[1, 0, 2], hint="output_batch_major")
    shape = ["batch", "time", spec.num_directions * spec.h_out] if layer.batch_first else \
        ["time", "batch", spec.num_directions * spec.h_out]
    g.add_output(y, "output", g.elem_type, shape)
    state_outputs(g, spec, finals)


@register_exporter(CellBase)
def export_cell(g: Graph, cell: CellBase, lengths: bool) -> None:
    if lengths:
        raise ExportValueError("lengths", "rnnkit.onnx.export: lengths=True applies to sequences; "
                                          "a cell takes one step")
    spec = stack_spec(cell)
    x = g.add_input("input", g.elem_type, ["batch", spec.input_size])             # (B, I)
    states = state_inputs(g, spec, stacked=False)                                 # (B, n) each
    one = g.ints([0])
    y, finals = stack(g, spec, g.op("Unsqueeze", x, one), tuple(g.op("Unsqueeze", s, one) for s in states), None)
    state_outputs(g, spec, tuple(g.op("Squeeze", f, one) for f in finals), suffix="1", stacked=False)


@register_exporter(CharLM)
def export_charlm(g: Graph, model: CharLM, lengths: bool) -> None:
    """Embedding → stack (with norms between the layers: rnnkit.onnx.between) → (dropout: identity)
    → Linear, or the adaptive softmax's log-probabilities; the state in and out for streaming."""
    onnx = require_onnx()
    normed = isinstance(model.rnn, NormedStack)
    spec = normed_stack_spec(model.rnn) if normed else stack_spec(model.rnn)
    tokens = g.add_input("tokens", onnx.TensorProto.INT64, ["time", "batch"])
    e = g.op("Gather", g.const(model.embed.weight.data, "embed_weight"), tokens, axis=0, hint="embedded")
    states = state_inputs(g, spec)
    lens = lengths_input(g) if lengths else None
    h, finals = normed_stack(g, model.rnn, e, states, lens) if normed else stack(g, spec, e, states, lens)
    if model.adaptive:                    # log-probabilities: their softmax is the distribution too
        logits = adaptive_log_prob(g, h, model.head)                               # (T, B, V)
    else:
        bias = None if model.head.bias is None else model.head.bias.data
        logits = linear(g, h, model.head.weight.data, bias, "head")                # (T, B, V)
    g.add_output(logits, "logits", g.elem_type, ["time", "batch", model.cfg.vocab_size])
    state_outputs(g, spec, finals)


# The sequence estimators (rnnkit.models) import scikit-learn: their exporters load on first use.
for _name in ("classifier.RNNClassifier", "regressor.RNNRegressor"):
    register_lazy(f"rnnkit.models.{_name}", "rnnkit.onnx.estimators")
register_lazy("rnnkit.models.forecaster.RNNForecaster", "rnnkit.onnx.forecaster")
