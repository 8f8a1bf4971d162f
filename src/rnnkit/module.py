"""Parameters and the module base class: naming, training mode and state dicts.

A :class:`Module` owns named :class:`Parameter` objects, buffers (arrays that are state but not
trained, such as a batch norm's running statistics) and child modules, registered once at
construction, in a fixed order, so ``named_parameters()``, ``named_buffers()`` and ``state_dict()``
list them exactly as PyTorch would: per module its parameters, then its buffers, then its children.
Modules know nothing of optimizers: an optimizer takes ``module.parameters()`` (never the buffers).
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
        self._buffers: dict[str, np.ndarray] = {}
        self._non_persistent: set[str] = set()        # buffers left out of the state dict
        self._modules: dict[str, Module] = {}

    # -- registration -------------------------------------------------------------------------
    def register_parameter(self, name: str, data: np.ndarray) -> Parameter:
        if name in self._parameters or name in self._buffers:
            raise ValueError(f"parameter {name!r}: the name is already registered")
        p = Parameter(np.ascontiguousarray(data, dtype=self.dtype))
        self._parameters[name] = p
        return p

    def register_buffer(self, name: str, array, persistent: bool = True) -> np.ndarray:
        """Register ``array`` (copied, C-ordered, its own dtype kept) as the buffer ``name``.

        Returns the buffer: the module keeps that very array, so updates must be in place
        (``buf[...] = v``, ``buf += 1``), as ``load_state_dict`` does. ``persistent=False`` keeps it
        out of the state dict, as in PyTorch.
        """
        if name in self._buffers or name in self._parameters:
            raise ValueError(f"buffer {name!r}: the name is already registered")
        a = np.asarray(array)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"buffer {name!r} must be an array of real numbers, got dtype {a.dtype}")
        self._buffers[name] = np.array(a, order="C")
        if not persistent:
            self._non_persistent.add(name)
        return self._buffers[name]

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

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_buffers(prefix + name + ".")

    def buffers(self) -> list[np.ndarray]:
        return [b for _, b in self.named_buffers()]

    def _named_state(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """What the state dict holds, in PyTorch's order: per module its parameters' arrays, then
        its persistent buffers, then its children's."""
        for name, p in self._parameters.items():
            yield prefix + name, p.data
        for name, b in self._buffers.items():
            if name not in self._non_persistent:
                yield prefix + name, b
        for name, m in self._modules.items():
            yield from m._named_state(prefix + name + ".")

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
        """Copies of every parameter and persistent buffer, keyed and ordered as PyTorch's."""
        return OrderedDict((name, a.copy()) for name, a in self._named_state())

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True) -> None:
        """Copy arrays (NumPy or anything with ``__array__``) into the parameters and buffers.

        Strict (the default): every key must be present, known and of the right shape; the error
        lists every missing, unexpected and mis-shaped key at once. Non-strict loads what matches
        by name and shape and still rejects mis-shaped keys. Nothing is changed when it raises.
        """
        own = dict(self._named_state())
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
        for k, a in own.items():
            if k in arrays:
                a[...] = arrays[k]                  # in place: each keeps its own dtype
