"""Which function exports which module type: one registry, keyed by type.

An exporter is ``fn(g: Graph, module, lengths: bool) -> None``: it declares the graph's inputs and
outputs on ``g`` and composes the body from the shared pieces (:func:`rnnkit.onnx.recurrent.stack`,
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

EXPORTERS: dict[type, Callable] = {}


def register_exporter(cls: type) -> Callable[[Callable], Callable]:
    def decorate(fn: Callable) -> Callable:
        EXPORTERS[cls] = fn
        return fn
    return decorate


def exporter_for(module) -> Callable:
    for cls in type(module).__mro__:
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    supported = ", ".join(sorted(c.__name__ for c in EXPORTERS))
    raise TypeError(f"rnnkit.onnx.export: cannot export a {type(module).__name__}; "
                    f"supported module types: {supported}")
