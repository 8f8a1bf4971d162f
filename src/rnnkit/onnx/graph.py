"""A small builder for ONNX graphs: unique names, constants, nodes, inputs and outputs.

Exporters compose graphs from pieces (a stack, a linear head, an embedding) that each take value
names and return value names; the builder keeps the names unique and collects the initializers,
so pieces never need to know about each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnkit.onnx.deps import require_onnx


@dataclass
class Graph:
    """Nodes, initializers and the interface of one ONNX graph under construction.

    ``dtype`` is the float type of the exported module (float32 or float64): every float constant
    made with :meth:`const` takes it, so a float64 module gives a float64 graph.
    """

    dtype: np.dtype
    opset: int
    name: str = "rnnkit"
    prefix: str = ""                # prepended to every name: a body's names never meet the outer graph's
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)     # the model's metadata_props
    sidecars: dict[str, dict | None] = field(default_factory=dict)  # suffix -> JSON beside the file (None: remove)
    _names: set[str] = field(default_factory=set)

    def fresh(self, hint: str) -> str:
        """A name not used before in this graph: ``hint``, else ``hint_1``, ``hint_2``, ..."""
        candidate, n = self.prefix + hint, 0
        while candidate in self._names:
            n += 1
            candidate = f"{self.prefix}{hint}_{n}"
        self._names.add(candidate)
        return candidate

    def _claim(self, name: str) -> str:
        """An interface name, exactly as given: using one twice is a bug in an exporter."""
        name = self.prefix + name
        if name in self._names:
            raise ValueError(f"the graph already has a value named {name!r}")
        self._names.add(name)
        return name

    # -- values ---------------------------------------------------------------------------------
    def const(self, value, hint: str = "const", dtype=None) -> str:
        """An initializer holding ``value``; float arrays take the graph's dtype unless told."""
        onnx = require_onnx()
        a = np.asarray(value)
        if dtype is not None:
            a = a.astype(dtype)
        elif a.dtype.kind == "f":
            a = a.astype(self.dtype)
        name = self.fresh(hint)
        self.initializers.append(onnx.numpy_helper.from_array(np.array(a, order="C"), name))   # keeps 0-d
        return name

    def ints(self, values, hint: str = "ints") -> str:
        """An int64 vector constant: shapes, axes, split sizes, slice bounds."""
        return self.const(np.asarray(values, np.int64), hint)

    def op(self, op_type: str, *inputs: str, outputs: int = 1, hint: str | None = None, **attrs):
        """Add a node; returns its output name, or a list of names when ``outputs`` > 1."""
        onnx = require_onnx()
        base = hint or op_type.lower()
        names = [self.fresh(base if outputs == 1 else f"{base}_{k}") for k in range(outputs)]
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), names, name=self.fresh(f"node_{base}"),
                                                **attrs))
        return names[0] if outputs == 1 else names

    # -- interface ------------------------------------------------------------------------------
    def add_input(self, name: str, elem_type, shape: list) -> str:
        """A graph input, which the caller feeds (never an overridable initializer: runtimes do
        not list those as inputs, and onnxruntime warns that it cannot fold them)."""
        onnx = require_onnx()
        name = self._claim(name)
        self.inputs.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, value: str, name: str, elem_type, shape: list) -> None:
        """Expose ``value`` as the graph output ``name`` (through an Identity node)."""
        onnx = require_onnx()
        node = self.fresh(f"node_{name}")
        name = self._claim(name)
        self.nodes.append(onnx.helper.make_node("Identity", [value], [name], name=node))
        self.outputs.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))

    @property
    def elem_type(self) -> int:
        """The ONNX element type of the graph's floats."""
        onnx = require_onnx()
        return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(self.dtype))

    def to_graph(self):
        onnx = require_onnx()
        return onnx.helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)

    def to_model(self, doc: str = ""):
        """A ModelProto whose IR version matches the opset (as runtimes expect)."""
        onnx = require_onnx()
        import rnnkit
        model = onnx.helper.make_model_gen_version(
            self.to_graph(), opset_imports=[onnx.helper.make_opsetid("", self.opset)],
            producer_name="rnnkit", producer_version=rnnkit.__version__)
        model.doc_string = doc
        onnx.helper.set_model_props(model, self.metadata)
        return model

    def subgraph(self, name: str) -> "Graph":
        """A builder for a control-flow body (Scan, Loop): same dtype and opset, own names."""
        return Graph(self.dtype, self.opset, name=name, prefix=f"{name}/")


# -- small compositions used by several exporters ------------------------------------------------
def matmul_t(g: Graph, x: str, weight: np.ndarray, hint: str) -> str:
    """x Wᵀ for a weight stored as (out, in), as PyTorch stores it: one MatMul with Wᵀ constant."""
    return g.op("MatMul", x, g.const(np.ascontiguousarray(weight.T), hint + "_T"), hint=hint)


def linear(g: Graph, x: str, weight: np.ndarray, bias: np.ndarray | None, hint: str) -> str:
    """y = x Wᵀ + b over the last axis of x (any rank)."""
    y = matmul_t(g, x, weight, hint)
    return y if bias is None else g.op("Add", y, g.const(bias, hint + "_b"), hint=hint + "_out")


def reduce(g: Graph, op: str, x: str, axes: list[int], keepdims: bool = False, hint: str | None = None) -> str:
    """ReduceMax / ReduceMean / ReduceSum over ``axes``: an input since opset 18 (13 for ReduceSum),
    an attribute before."""
    since = 13 if op == "ReduceSum" else 18
    if g.opset >= since:
        return g.op(op, x, g.ints(axes), keepdims=int(keepdims), hint=hint)
    return g.op(op, x, axes=axes, keepdims=int(keepdims), hint=hint)


def step_mask(g: Graph, steps: str, lengths: str, batch_major: bool = False) -> str:
    """(T, B) bool — (B, T) if batch_major —: True where step t < lengths[b]; ``steps`` is T as an
    int64 scalar, ``lengths`` (B,) int64."""
    t = g.op("Range", g.ints(0), steps, g.ints(1), hint="t")                          # (T,)
    if batch_major:
        return g.op("Less", g.op("Unsqueeze", t, g.ints([0])), g.op("Unsqueeze", lengths, g.ints([1])),
                    hint="valid")
    return g.op("Less", g.op("Unsqueeze", t, g.ints([1])), g.op("Unsqueeze", lengths, g.ints([0])), hint="valid")


def dim(g: Graph, x: str, axis: int, hint: str = "dim") -> str:
    """The size of axis ``axis`` of ``x``, an int64 scalar."""
    return g.op("Gather", g.op("Shape", x), g.ints(axis), axis=0, hint=hint)
