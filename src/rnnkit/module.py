"""Parameters and the module base class: naming, training mode and state dicts.

A :class:`Module` owns named :class:`Parameter` objects (and child modules) registered once at
construction, in a fixed order, so ``named_parameters()`` and ``state_dict()`` list them exactly as
PyTorch would. Modules know nothing of optimizers: an optimizer takes ``module.parameters()``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import numpy as np

from rnnkit.checks import check_float_dtype


class Parameter:
    """A trainable array ``data`` and the gradient ``grad`` accumulated into it (same shape, dtype)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: a tree of named parameters with PyTorch's naming and state-dict conventions."""

    def __init__(self, *, dtype=np.float32) -> None:
        self.dtype = check_float_dtype(dtype)
        self.training = True
        self._parameters: dict[str, Parameter] = {}
        self._modules: dict[str, Module] = {}

    # -- registration -------------------------------------------------------------------------
    def register_parameter(self, name: str, data: np.ndarray) -> Parameter:
        if name in self._parameters:
            raise ValueError(f"parameter {name!r} is already registered")
        p = Parameter(np.ascontiguousarray(data, dtype=self.dtype))
        self._parameters[name] = p
        return p

    def register_module(self, name: str, module: Module) -> Module:
        if name in self._modules:
            raise ValueError(f"module {name!r} is already registered")
        self._modules[name] = module
        return module

    # -- traversal ----------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad.fill(0)

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state dicts --------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Copies of every parameter, keyed by PyTorch's names."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy arrays (NumPy or anything with ``__array__``) into the parameters.

        Strict (the default): every key must be present, known and of the right shape; the error
        lists every missing, unexpected and mis-shaped key at once. Non-strict loads what matches
        by name and shape and still rejects mis-shaped keys. Nothing is changed when it raises.
        """
        own = dict(self.named_parameters())
        arrays = {k: np.asarray(v) for k, v in state_dict.items()}
        missing = [k for k in own if k not in arrays]
        unexpected = [k for k in arrays if k not in own]
        misshaped = [
            f"{k}: expected shape {own[k].shape}, got {arrays[k].shape}"
            for k in own if k in arrays and arrays[k].shape != own[k].shape
        ]
        not_real = [
            f"{k}: expected real numbers, got dtype {a.dtype}"
            for k, a in arrays.items() if k in own and a.dtype.kind not in "fiu"
        ]
        problems = misshaped + not_real + ([f"missing keys {missing}"] if strict and missing else [])
        problems += [f"unexpected keys {unexpected}"] if strict and unexpected else []
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for k, p in own.items():
            if k in arrays:
                p.data[...] = arrays[k]
