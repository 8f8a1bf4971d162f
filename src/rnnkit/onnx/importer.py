"""``load_layer``: the one LSTM / GRU / RNN node of an ONNX graph as an rnnkit layer.

Works on graphs written by PyTorch's exporter, by tf2onnx (Keras) and by :func:`rnnkit.onnx.export`
(one layer): the node's weights W, R, B (and the LSTM's peepholes P) are read — from initializers,
Constant nodes, or, when the exporter computed them from constants (Slice, Concat, ...), by
evaluating that constant part of the graph — and turned back from ONNX's gate orders into
PyTorch's. The layer computes the node: ``out, state = layer(x, state, lengths=...)`` equals its Y
(with directions side by side, (T, B, D·H)), Y_h and Y_c. A layer fed batch-major (``layout=1``,
or through a Transpose (1, 0, 2), as exporters write ``batch_first`` layers) gets ``batch_first``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.kinds import BY_TITLE, layer_class
from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.recurrent import FORMS, from_onnx_order, peephole_order


class OnnxImportError(ValueError):
    """The file is not an ONNX model, or its recurrent node has no rnnkit equivalent."""


def load_layer(path, *, dtype=None):
    """An rnnkit RNN / LSTM / GRU layer (eval mode) computing the single recurrent node of the graph.

    dtype: the layer's dtype (default: that of the node's weights, float32 or float64).
    Raises :class:`OnnxImportError` naming the file and what was found when the file is not ONNX,
    when the graph has no recurrent node or several, or when the node uses what rnnkit lacks
    (clip, input_forget, non-default activations, a reverse-only direction).
    """
    onnx = require_onnx()
    path = Path(path)
    model = _read(onnx, path)
    node = _recurrent_node(path, model)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    _check_attributes(path, node, attrs)
    weights = _weights(onnx, path, model, node)
    layer = _build(node.op_type, attrs, weights, dtype, batch_first=_batch_major_input(onnx, model, node, attrs))
    return layer.eval()


def _read(onnx, path: Path):
    if not path.is_file():
        raise OnnxImportError(f"{path}: no such file")
    try:
        return onnx.load_model(str(path))
    except Exception as exc:                       # protobuf's DecodeError and friends
        raise OnnxImportError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from None


def _recurrent_node(path: Path, model):
    nodes = [n for n in model.graph.node if n.op_type in BY_TITLE]
    if len(nodes) == 1:
        return nodes[0]
    if not nodes:
        ops = sorted({n.op_type for n in model.graph.node})
        raise OnnxImportError(f"{path}: the graph has no LSTM, GRU or RNN node (its operators: "
                              f"{', '.join(ops) or 'none'})")
    found = ", ".join(f"{n.op_type} {n.name or '(unnamed)'!r}" for n in nodes)
    raise OnnxImportError(f"{path}: the graph has {len(nodes)} recurrent nodes ({found}); load_layer "
                          "takes a graph with exactly one (export one layer per file)")


def _check_attributes(path: Path, node, attrs: dict) -> None:
    what = f"{path}: {node.op_type} node {node.name or '(unnamed)'!r}"
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "bidirectional"):
        raise OnnxImportError(f"{what} runs direction={direction!r}; rnnkit layers run forward or both ways")
    if "clip" in attrs:
        raise OnnxImportError(f"{what} clips its pre-activations (clip={attrs['clip']}); rnnkit has no clip")
    if attrs.get("input_forget", 0):
        raise OnnxImportError(f"{what} couples the input and forget gates (input_forget=1); rnnkit has no such LSTM")
    for key in ("activation_alpha", "activation_beta"):
        if key in attrs:
            raise OnnxImportError(f"{what} has {key}={list(attrs[key])}; rnnkit's activations take no parameters")
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    D = 2 if direction == "bidirectional" else 1
    kind = BY_TITLE[node.op_type]
    allowed = [a * D for a in FORMS[kind.name].activations]
    if acts and tuple(a.capitalize() for a in acts) not in allowed:
        raise OnnxImportError(f"{what} uses activations {acts}; rnnkit supports "
                              + " or ".join(str(list(a)) for a in allowed))


def _weights(onnx, path: Path, model, node) -> dict[str, np.ndarray]:
    """W, R and, when given, B and P: from initializers, Constant nodes, or the constant subgraph."""
    names = dict(zip(("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"), node.input))
    wanted = {key: names[key] for key in ("W", "R", "B", "P") if names.get(key)}
    known = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] in wanted.values() and n.attribute[0].name == "value":
            known[n.output[0]] = onnx.numpy_helper.to_array(onnx.helper.get_attribute_value(n.attribute[0]))
    missing = [v for v in wanted.values() if v not in known]
    if missing:
        known.update(_evaluate_constants(onnx, path, model, missing))
    return {key: np.asarray(known[name]) for key, name in wanted.items()}


def _evaluate_constants(onnx, path: Path, model, outputs: list[str]) -> dict[str, np.ndarray]:
    """Values computed from constants only (e.g. weights sliced and concatenated by an exporter):
    the nodes they depend on, run by onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator
    producers = {out: n for n in model.graph.node for out in n.output}
    constants = {t.name for t in model.graph.initializer}
    needed, stack, inputs = [], list(outputs), set()
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if node is None:
            if name and name not in constants:
                inputs.add(name)
            continue
        if node not in needed:
            needed.append(node)
            stack.extend(node.input)
    if inputs:
        raise OnnxImportError(f"{path}: the recurrent node's weights depend on graph inputs {sorted(inputs)}; "
                              "load_layer needs constant weights")
    order = [n for n in model.graph.node if n in needed]                 # the graph's topological order
    graph = onnx.helper.make_graph(order, "weights", [], [onnx.helper.make_empty_tensor_value_info(o) for o in outputs],
                                   list(model.graph.initializer))
    sub = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return dict(zip(outputs, ReferenceEvaluator(sub).run(None, {})))


def _batch_major_input(onnx, model, node, attrs: dict) -> bool:
    """Whether the graph feeds the node batch-major: ``layout=1``, or (as PyTorch's and rnnkit's
    exporters write batch_first layers) X made by a Transpose with perm (1, 0, 2)."""
    if attrs.get("layout", 0):
        return True
    producer = next((n for n in model.graph.node if node.input[0] in n.output), None)
    if producer is None or producer.op_type != "Transpose":
        return False
    perm = [list(onnx.helper.get_attribute_value(a)) for a in producer.attribute if a.name == "perm"]
    return perm == [[1, 0, 2]]


def _build(op: str, attrs: dict, w: dict[str, np.ndarray], dtype, batch_first: bool):
    """The rnnkit layer holding the node's weights in PyTorch's layout and gate order."""
    kind = BY_TITLE[op]
    D, GH, I = w["W"].shape
    H = int(attrs.get("hidden_size", GH // kind.num_gates))
    dtype = np.dtype(dtype or (w["W"].dtype if w["W"].dtype in (np.float32, np.float64) else np.float32))
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    options = FORMS[kind.name].options({**attrs, "activations": acts}, w)
    layer = layer_class(kind.name)(I, H, bidirectional=D == 2, bias="B" in w, batch_first=batch_first, dtype=dtype,
                                   rng=0, **options)
    state = {}
    for d in range(D):
        s = "_l0" + ("_reverse" if d else "")
        state["weight_ih" + s] = from_onnx_order(w["W"][d], kind)
        state["weight_hh" + s] = from_onnx_order(w["R"][d], kind)
        if "B" in w:
            b_ih, b_hh = np.split(w["B"][d], 2)
            state["bias_ih" + s], state["bias_hh" + s] = from_onnx_order(b_ih, kind), from_onnx_order(b_hh, kind)
        if "P" in w:
            for gate, part in zip(peephole_order(kind), np.split(w["P"][d], 3)):
                state[f"weight_c{gate}" + s] = part
    layer.load_state_dict(state)
    return layer
