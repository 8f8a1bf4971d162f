"""An onnxruntime session for an exported graph (a path or a ModelProto), on the CPU."""

from __future__ import annotations

from pathlib import Path

from rnnkit.onnx.deps import require_onnxruntime


def session(model, threads: int | None = None):
    """``onnxruntime.InferenceSession`` for ``model`` (a path or an ``onnx.ModelProto``).

    threads: intra-op threads (None: onnxruntime's default, one per core). Warnings are not
    logged: onnxruntime warns about every graph input that has a default value, which is how an
    exported graph makes its initial states optional.
    """
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3                                    # errors only
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
