"""An onnxruntime session for an exported graph (a path or a ModelProto), on the CPU, and the zero
states a fresh sequence feeds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.onnx.deps import require_onnxruntime
from rnnkit.onnx.interface import STATE_NAMES

STATE_INPUTS = tuple(f"{name}{suffix}" for suffix in ("0",) for name in STATE_NAMES)     # h0, c0
ONNX_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def session(model, threads: int | None = None):
    """``onnxruntime.InferenceSession`` for ``model`` (a path or an ``onnx.ModelProto``).

    threads: intra-op threads (None: onnxruntime's default, one per core). onnxruntime's log
    keeps its default level (warnings): rnnkit's graphs give it nothing to warn about.
    """
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def zero_state_feeds(sess, batch: int) -> dict[str, np.ndarray]:
    """The feeds ``h0`` (, ``c0``) of a fresh sequence: zeros of the session's state inputs' shapes
    for ``batch`` sequences (the graph's symbolic batch axis set to it)."""
    feeds = {}
    for i in sess.get_inputs():
        if i.name in STATE_INPUTS:
            shape = [batch if not isinstance(d, int) else d for d in i.shape]
            feeds[i.name] = np.zeros(shape, ONNX_FLOATS[i.type])
    return feeds
