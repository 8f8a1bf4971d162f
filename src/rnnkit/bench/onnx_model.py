"""An rnnkit (or PyTorch) recurrent stack as an ONNX graph, for onnxruntime to run.

ONNX's LSTM/GRU/RNN operators take all directions of one layer at once, with their own gate
orders: LSTM ``i, o, f, c`` (PyTorch: i, f, g, o), GRU ``z, r, h`` (PyTorch: r, z, n) with
``linear_before_reset=1`` for PyTorch's reset-after form, peepholes ``P = [w_ci, w_co, w_cf]``.
A layer's output Y is (T, D, B, H); the next layer wants (T, B, D·H), hence a Transpose and a
Reshape between layers.
"""

from __future__ import annotations

import numpy as np

# Row blocks of PyTorch's stacked weights, in ONNX's order.
_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def _reorder(a: np.ndarray, cell: str) -> np.ndarray:
    blocks = np.split(a, len(_ORDER[cell]), axis=0)
    return np.concatenate([blocks[k] for k in _ORDER[cell]], axis=0)


def _layer_inputs(state: dict, cell: str, layer: int, dirs: int, peephole: bool) -> dict[str, np.ndarray]:
    """W (D, G·H, I), R (D, G·H, H), B (D, 2·G·H) and P (D, 3H) of one layer, in ONNX's layout."""
    suffixes = [f"_l{layer}", f"_l{layer}_reverse"][:dirs]
    out = {
        "W": np.stack([_reorder(state["weight_ih" + s], cell) for s in suffixes]),
        "R": np.stack([_reorder(state["weight_hh" + s], cell) for s in suffixes]),
        "B": np.stack([np.concatenate([_reorder(state["bias_ih" + s], cell), _reorder(state["bias_hh" + s], cell)])
                       for s in suffixes]),
    }
    if peephole:
        out["P"] = np.stack([np.concatenate([state[f"weight_c{g}" + s] for g in "iof"]) for s in suffixes])
    return out


def build_model(state: dict, cell: str, hidden: int, layers: int, bidirectional: bool, peephole: bool = False,
                nonlinearity: str = "tanh"):
    """An onnx ModelProto taking X (T, B, I) float32 and returning Y (T, B, D·H) — the layer output."""
    from onnx import TensorProto, helper, numpy_helper

    dirs = 2 if bidirectional else 1
    nodes, inits, x = [], [], "X"
    for k in range(layers):
        names = {}
        for key, value in _layer_inputs(state, cell, k, dirs, peephole).items():
            names[key] = f"{key}{k}"
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), names[key]))
        attrs = {"hidden_size": hidden, "direction": "bidirectional" if bidirectional else "forward"}
        if cell == "gru":
            attrs["linear_before_reset"] = 1
        if cell == "rnn":
            attrs["activations"] = [nonlinearity.capitalize()] * dirs
        inputs = [x, names["W"], names["R"], names["B"]] + (["", "", "", names["P"]] if peephole else [])
        nodes.append(helper.make_node(_OP[cell], inputs, [f"Y{k}"], **attrs))
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "shape"], [f"L{k}"]))       # (T, B, D·H)
        x = f"L{k}"
    nodes[-1].output[0] = "Y"
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"))
    graph = helper.make_graph(
        nodes, "rnnkit", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", "I"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def session(model, threads: int):
    """An onnxruntime session on the CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
