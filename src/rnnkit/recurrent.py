"""The machinery shared by RNN, LSTM and GRU layers: parameters, argument checks, layouts.

The concrete classes in :mod:`rnnkit.layers` only choose a kernel and the shape of the state
(a single ``h`` or an ``(h, c)`` pair). Everything here mirrors ``torch.nn.RNNBase``.
"""

from __future__ import annotations

import math

import numpy as np

from rnnkit.checks import (
    as_float_array, check_dropout, check_lengths, check_positive_int, check_shape, make_rng,
)
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.kernels.base import Kernel, Weights
from rnnkit.module import Module, Parameter
from rnnkit import engine, stack
from rnnkit.stack import StackCache, stack_backward, stack_forward


def cell_param_shapes(
    gates: int, input_size: int, hidden_size: int, bias: bool, proj_size: int = 0, peephole: bool = False,
) -> list[tuple[str, tuple[int, ...]]]:
    """(field, shape) of one cell's parameters, in PyTorch's registration order."""
    h_out = proj_size or hidden_size
    shapes = [("weight_ih", (gates * hidden_size, input_size)), ("weight_hh", (gates * hidden_size, h_out))]
    if bias:
        shapes += [("bias_ih", (gates * hidden_size,)), ("bias_hh", (gates * hidden_size,))]
    if proj_size:
        shapes += [("weight_hr", (proj_size, hidden_size))]
    if peephole:
        shapes += [(f"weight_c{gate}", (hidden_size,)) for gate in "ifo"]
    return shapes


def register_cell(module: Module, shapes, hidden_size: int, suffix: str, rng) -> dict[str, Parameter]:
    """Register one cell's parameters, each drawn from U(−1/√H, 1/√H) as PyTorch does."""
    k = 1.0 / math.sqrt(hidden_size)
    return {
        field: module.register_parameter(field + suffix, rng.uniform(-k, k, size=shape))
        for field, shape in shapes
    }


def weights_of(group: dict[str, Parameter], attr: str) -> Weights:
    """The Weights record of a parameter group: its ``data`` (attr="data") or its ``grad``."""
    return Weights(**{field: getattr(p, attr) for field, p in group.items()})


class RecurrentBase(Module):
    """A stack of recurrent layers with PyTorch's constructor, call and state conventions."""

    def __init__(
        self, kernel: Kernel, input_size: int, hidden_size: int, num_layers: int = 1,
        bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
        bidirectional: bool = False, proj_size: int = 0, peephole: bool = False,
        *, dtype=np.float32, rng=None,
    ) -> None:
        super().__init__(dtype=dtype)
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.proj_size = check_positive_int("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={hidden_size}, got {proj_size}")
        self.dropout = check_dropout(dropout)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.kernel = kernel
        self.rng = make_rng(rng)
        self._groups = self._register_all(peephole)
        self._cache: StackCache | None = None
        self._last_call: str | None = None        # None, "grad" or "no_grad": for clear errors
        self._layout: tuple[bool, tuple[int, ...]] = (True, ())   # last call: batched?, output shape
        self._stepper = None                      # engine.CellStepper, made on the first one-step call

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _register_all(self, peephole: bool) -> list[list[dict[str, Parameter]]]:
        h_out, D = self.proj_size or self.hidden_size, self.num_directions
        groups = []
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else D * h_out
            shapes = cell_param_shapes(
                self.kernel.num_gates, in_size, self.hidden_size, self.bias, self.proj_size, peephole
            )
            groups.append([
                register_cell(self, shapes, self.hidden_size, f"_l{k}" + ("_reverse" if d else ""), self.rng)
                for d in range(D)
            ])
        return groups

    def state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of the state components for a batch: (num_layers·D, B, n) each."""
        return tuple((self.num_layers * self.num_directions, batch, n) for n in self.kernel.state_sizes())

    # -- subclasses say how a state looks to the user ----------------------------------------
    def _state_to_tuple(self, state) -> tuple:
        return (state,)

    def _state_from_tuple(self, states: tuple):
        return states[0]

    # -- forward -----------------------------------------------------------------------------
    def __call__(self, x, state=None, lengths=None):
        return self.forward(x, state, lengths=lengths)

    def forward(self, x, state=None, lengths=None):
        """x: (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched. Returns (output, state)."""
        x, batched = self._input_time_major(x)
        T, B, _ = x.shape
        lengths = check_lengths(lengths, B, T)
        state0 = self._states_in("state", state, B, batched)
        rng = self.rng if (self.training and self.dropout > 0) else None
        weights = [[weights_of(g, "data") for g in layer] for layer in self._groups]
        if T == 1 and rng is None and not self.proj_size and not is_grad_enabled() and stack.implementation() is engine:
            out, final, cache = self._one_step(weights, x, state0)          # streaming: no packing
        else:
            out, final, cache = stack_forward(self.kernel, weights, x, state0, lengths, self.dropout, rng,
                                              keep_tape=is_grad_enabled())
        self._cache = cache if is_grad_enabled() else None
        self._last_call = "grad" if is_grad_enabled() else "no_grad"
        self._layout = (batched, out.shape)
        return self._output_layout(out, batched), self._state_from_tuple(self._states_out(final, batched))

    def _one_step(self, weights, x, state0) -> tuple:
        """One time step of every layer and direction through the engine's streaming step (a
        sequence of one step reads the same forwards and backwards), for generation."""
        if self._stepper is None:
            self._stepper = engine.CellStepper(self.kernel, self.dtype)
        D = self.num_directions
        layer_in, finals = np.ascontiguousarray(x[0]), [[] for _ in state0]
        for k, layer in enumerate(weights):
            outs = []
            for d, w in enumerate(layer):
                states = tuple(np.ascontiguousarray(s[k * D + d]) for s in state0)
                new = self._stepper(self._stepper.weights(w), layer_in, states)
                outs.append(new[0])
                for f, s in zip(finals, new):
                    f.append(s)
            layer_in = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
        return layer_in[None], tuple(np.stack(f) for f in finals), None

    def backward(self, dout, dstate=None):
        """Gradients of the most recent forward call: returns (dx, gradient of the initial state).

        ``dout`` is shaped like that call's output; ``dstate`` like its final state (None: zeros).
        Parameter gradients are added into each ``p.grad``.
        """
        self._check_backward_allowed()
        batched, out_shape = self._layout
        dout = as_float_array("dout", dout, self.dtype)
        expected = self._output_layout(np.empty(out_shape, dtype=self.dtype), batched).shape
        check_shape("dout", dout, expected, "(the shape of the forward output)")
        dout = self._input_layout(dout, batched)
        dfinal = self._states_in("dstate", dstate, out_shape[1], batched)
        grads = [[weights_of(g, "grad") for g in layer] for layer in self._groups]
        dx, dstate0 = stack_backward(self.kernel, grads, self._cache, dout, dfinal)
        return self._output_layout(dx, batched), self._state_from_tuple(self._states_out(dstate0, batched))

    def _check_backward_allowed(self) -> None:
        name = type(self).__name__
        if self._last_call is None:
            raise RuntimeError(f"{name}.backward: no forward call to differentiate; call the layer first")
        if self._last_call == "no_grad":
            raise RuntimeError(
                f"{name}.backward: the last forward call ran under rnnkit.no_grad() and kept no cache"
            )

    # -- layouts -----------------------------------------------------------------------------
    def _input_time_major(self, x) -> tuple[np.ndarray, bool]:
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (2, 3):
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(
                f"x must have 3 dimensions {layout} or 2 (T, I) for unbatched input, got shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have input_size={self.input_size} features (last axis), got shape {x.shape}")
        batched = x.ndim == 3
        x = self._input_layout(x, batched)
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x must have at least one step and one sequence, got shape {x.shape}")
        return x, batched

    def _input_layout(self, a: np.ndarray, batched: bool) -> np.ndarray:
        if not batched:
            return a[:, None, :]
        return np.ascontiguousarray(a.transpose(1, 0, 2)) if self.batch_first else a

    def _output_layout(self, a: np.ndarray, batched: bool) -> np.ndarray:
        if not batched:
            return a[:, 0, :]
        return np.ascontiguousarray(a.transpose(1, 0, 2)) if self.batch_first else a

    def _states_in(self, name: str, state, batch: int, batched: bool) -> tuple:
        shapes = self.state_shapes(batch)
        parts = (None,) * len(shapes) if state is None else self._state_to_tuple(state)
        out = []
        for k, (part, shape) in enumerate(zip(parts, shapes)):
            label = name if len(shapes) == 1 else f"{name}[{k}]"
            if part is None:
                out.append(np.zeros(shape, self.dtype))
                continue
            a = as_float_array(label, part, self.dtype)
            expected = shape if batched else (shape[0], shape[2])
            check_shape(label, a, expected, "(num_layers*num_directions, batch, size)" if batched
                        else "(num_layers*num_directions, size) for unbatched input")
            out.append(a if batched else a[:, None, :])
        return tuple(out)

    def _states_out(self, states: tuple, batched: bool) -> tuple:
        return states if batched else tuple(s[:, 0, :] for s in states)

    def extra_repr(self) -> str:
        extra = f", proj_size={self.proj_size}" if self.proj_size else ""
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}"
                f"{extra}, dtype={self.dtype.name}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
