"""The optional dependencies of ONNX export and import, imported on first use.

``import rnnkit`` and ``import rnnkit.onnx`` work without them; the first call that needs one
says what to install.
"""

from __future__ import annotations

INSTALL = "pip install 'rnnkit[onnx]'"


class MissingDependency(ImportError):
    """An optional package that the call needs is not installed; the message says which."""


def require_onnx():
    """The ``onnx`` package (graph building, checking, loading)."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (a submodule not imported by ``import onnx``)
    except ImportError as exc:
        raise MissingDependency(f"ONNX export and import need the onnx package: {INSTALL}") from exc
    return onnx


def require_onnxruntime():
    """The ``onnxruntime`` package (running exported graphs)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependency(f"running ONNX graphs needs onnxruntime: {INSTALL}") from exc
    return onnxruntime
