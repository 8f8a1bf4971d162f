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
registers its own. A type whose module is costly to import (the sequence estimators import
scikit-learn) is registered by name with :func:`register_lazy`: the module holding its exporter
is imported the first time such an object is exported, so ``import rnnkit.onnx`` (and the command
line, which imports it) stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

EXPORTERS: dict[type, tuple[Callable, Callable]] = {}      # type -> (exporter, module -> float dtype)
LAZY: dict[str, str] = {}                                  # "module.Class" -> module registering its exporter


def _module_dtype(module) -> np.dtype:
    return np.dtype(module.dtype)


def register_exporter(cls: type, *, dtype: Callable = _module_dtype) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the exporter of ``cls`` (and its subclasses); ``dtype(module)`` gives the
    graph's float type (default: the module's ``dtype`` attribute)."""
    def decorate(fn: Callable) -> Callable:
        EXPORTERS[cls] = (fn, dtype)
        return fn
    return decorate


def register_lazy(qualified_name: str, exporter_module: str) -> None:
    """Importing ``exporter_module`` registers the exporter of the class ``qualified_name``
    ("package.module.Class"); it is imported when an instance is first exported."""
    LAZY[qualified_name] = exporter_module


def exporter_for(module) -> tuple[Callable, Callable]:
    """(exporter, dtype function) registered for the module's type or its nearest base class."""
    for cls in type(module).__mro__:
        lazy = LAZY.get(f"{cls.__module__}.{cls.__qualname__}")
        if cls not in EXPORTERS and lazy is not None:
            importlib.import_module(lazy)
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    names = [c.__name__ for c in EXPORTERS] + [name.rsplit(".", 1)[1] for name in LAZY]
    supported = ", ".join(sorted(set(names)))
    raise TypeError(f"rnnkit.onnx.export: cannot export a {type(module).__name__}; "
                    f"supported module types: {supported}")
