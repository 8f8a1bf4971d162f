"""ONNX export and import of rnnkit modules (optional extra: ``pip install 'rnnkit[onnx]'``).

    import rnnkit.onnx
    rnnkit.onnx.export(module, "model.onnx", lengths=False, opset=None)   # layer, cell, CharLM
    layer = rnnkit.onnx.load_layer("model.onnx")     # one LSTM / GRU / RNN node -> an rnnkit layer
    sess = rnnkit.onnx.session("model.onnx")         # an onnxruntime session on the CPU
    rnnkit.onnx.zero_state_feeds(sess, batch=4)      # {"h0": zeros, "c0": zeros}: a fresh sequence

Importing this package needs neither onnx nor onnxruntime; the first call that does says what to
install.
"""

from __future__ import annotations

from rnnkit.onnx.deps import MissingDependency
from rnnkit.onnx.export import DEFAULT_OPSET, export, to_model
from rnnkit.onnx.importer import OnnxImportError, load_layer
from rnnkit.onnx.registry import register_exporter
from rnnkit.onnx.runtime import session, zero_state_feeds

import rnnkit.onnx.exporters  # noqa: E402,F401  (registers the exporters of rnnkit's own modules)
import rnnkit.onnx.network  # noqa: E402,F401  (pooling layers and the estimators' network)
import rnnkit.onnx.conv_norm  # noqa: E402,F401  (Conv1d, BatchNorm1d, LayerNorm, ReLU)

__all__ = ["DEFAULT_OPSET", "MissingDependency", "OnnxImportError", "export", "load_layer",
           "register_exporter", "session", "to_model", "zero_state_feeds"]
