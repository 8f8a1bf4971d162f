"""Which function exports which module type: one registry, keyed by type.

An exporter is ``fn(g: Graph, module, lengths: bool) -> None``: it declares the graph's inputs and
outputs on ``g`` (a builder whose float type is the module's ``dtype``, or what the registration's
``dtype`` function says) and composes the body from the shared pieces (:func:`rnnkit.onnx.recurrent.stack`,
:func:`rnnkit.onnx.graph.linear`, :func:`rnnkit.onnx.interface.state_inputs`, ...). A new module
type plugs in with one decorated function::

    @register_exporter(MyModel)
    def _export_my_model(g, model, lengths):
        ...

Lookup walks the module's class hierarchy, so a subclass uses its parent's exporter unless it
registers its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EXPORTERS: dict[type, tuple[Callable, Callable]] = {}      # type -> (exporter, module -> float dtype)


def _module_dtype(module) -> np.dtype:
    return np.dtype(module.dtype)


def register_exporter(cls: type, *, dtype: Callable = _module_dtype) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the exporter of ``cls`` (and its subclasses); ``dtype(module)`` gives the
    graph's float type (default: the module's ``dtype`` attribute)."""
    def decorate(fn: Callable) -> Callable:
        EXPORTERS[cls] = (fn, dtype)
        return fn
    return decorate


def exporter_for(module) -> tuple[Callable, Callable]:
    """(exporter, dtype function) registered for the module's type or its nearest base class."""
    for cls in type(module).__mro__:
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    supported = ", ".join(sorted(c.__name__ for c in EXPORTERS))
    raise TypeError(f"rnnkit.onnx.export: cannot export a {type(module).__name__}; "
                    f"supported module types: {supported}")
