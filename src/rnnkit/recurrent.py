"""The machinery shared by RNN, LSTM and GRU layers: parameters, argument checks, layouts.

The concrete classes in :mod:`rnnkit.layers` name their cell kind (:mod:`rnnkit.kinds`) and
pass their own options; the kind gives the parameters, the state's parts and the kernel, after
the options are checked. Everything here mirrors ``torch.nn.RNNBase``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from rnnkit import kinds
from rnnkit.backend import Backend, Stepper, current
from rnnkit.checks import as_float_array, check_lengths, check_pair, check_shape, make_rng
from rnnkit.grad_mode import is_grad_enabled, no_grad
from rnnkit.inner_dropout import InnerDropout
from rnnkit.kernels.base import Weights
from rnnkit.module import Module, Parameter
from rnnkit.ranges import COUNT, PROBABILITY_BELOW_1
from rnnkit.stack import StackCache, stack_backward, stack_forward


def state_tuple(owner: str, kind: kinds.CellKind, state) -> tuple:
    """A state as the user gives it (``h``, or the pair ``(h, c)``) as a tuple of its parts."""
    return check_pair(owner, state) if len(kind.states) > 1 else (state,)


def state_value(kind: kinds.CellKind, parts: tuple):
    """The tuple of a state's parts as the user sees it: ``h``, or the pair ``(h, c)``."""
    return parts if len(kind.states) > 1 else parts[0]


class StepperCache:
    """A module's stepper (:meth:`rnnkit.backend.Backend.stepper`), made on its first one-step
    call and again whenever the backend in use changes."""

    def __init__(self) -> None:
        self._made: tuple[Backend, Stepper] | None = None

    def get(self, kernel, dtype) -> Stepper:
        backend = current()
        if self._made is None or self._made[0] is not backend:
            self._made = (backend, backend.stepper(kernel, dtype))
        return self._made[1]


def register_cell(module: Module, shapes, hidden_size: int, suffix: str, rng,
                  constants: dict[str, float] | None = None) -> dict[str, Parameter]:
    """Register one cell's parameters, each drawn from U(−1/√H, 1/√H) as PyTorch does, except
    those ``constants`` names (layer-norm gains start at 1, shifts at 0)."""
    k, constants = 1.0 / math.sqrt(hidden_size), constants or {}
    return {
        field: module.register_parameter(field + suffix, np.full(shape, constants[field]) if field in constants
                                         else rng.uniform(-k, k, size=shape))
        for field, shape in shapes
    }


def weights_of(group: dict[str, Parameter], attr: str) -> Weights:
    """The Weights record of a parameter group: its ``data`` (attr="data") or its ``grad``."""
    return Weights(**{field: getattr(p, attr) for field, p in group.items()})


class RecurrentBase(Module):
    """A stack of recurrent layers with PyTorch's constructor, call and state conventions.

    A subclass names its cell kind (``kind = kinds.KINDS["lstm"]``) and passes the kind's options
    (``peephole``, ...), which become attributes of the same names. ``recurrent_dropout`` and
    ``zoneout`` (every kind's) are dropout inside the recurrence (:mod:`rnnkit.inner_dropout`).
    """

    kind: kinds.CellKind

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            kinds.register_class(cls, cls.kind, cell=False)

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
        options: dict | None = None, *, dtype=np.float32, rng=None,
    ) -> None:
        super().__init__(dtype=dtype)
        self.input_size = COUNT.check("input_size", input_size)
        self.hidden_size = COUNT.check("hidden_size", hidden_size)
        self.num_layers = COUNT.check("num_layers", num_layers)
        self.options = self.kind.check_options(options or {})
        for name, value in self.options.items():
            setattr(self, name, value)
        self.proj_size = self.options.get("proj_size", 0)      # every layer has one, as in PyTorch
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={hidden_size}, got {self.proj_size}")
        self.dropout = PROBABILITY_BELOW_1.check("dropout", dropout)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.kernel = self.kind.kernel(self.hidden_size, self.options)
        self.inner_dropout = InnerDropout(self.options["recurrent_dropout"], self.options["zoneout"])
        self.rng = make_rng(rng)
        self._groups = self._register_all()
        self._cache: StackCache | None = None
        self._last_call: str | None = None        # None, "grad" or "no_grad": for clear errors
        self._layout: tuple[bool, tuple[int, ...]] = (True, ())   # last call: batched?, output shape
        self._stepper = StepperCache()            # for calls of one step that keep nothing
        self.quantized: str | None = None         # "int8": rnnkit.quantize_dynamic's, inference only
        self._ordered: list[tuple[Parameter, ...]] | None = None      # _weight_arrays' parameters

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _register_all(self) -> list[list[dict[str, Parameter]]]:
        h_out, D = self.proj_size or self.hidden_size, self.num_directions
        groups = []
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else D * h_out
            shapes = self.kind.param_shapes(in_size, self.hidden_size, self.bias, self.options)
            groups.append([
                register_cell(self, shapes, self.hidden_size, f"_l{k}" + ("_reverse" if d else ""), self.rng,
                              self.kind.param_constants(self.options))
                for d in range(D)
            ])
        return groups

    def use_rng(self, rng) -> None:
        """Draw training mode's masks from ``rng`` from now on (a Generator, or a stand-in such as
        :class:`rnnkit.distributed.ShardedRandom`); the parameters are already drawn."""
        self.rng = rng

    def state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of the state components for a batch: (num_layers·D, B, n) each."""
        return tuple((self.num_layers * self.num_directions, batch, n) for n in self.kernel.state_sizes())

    # -- how a state looks to the user: h, or the pair (h, c) --------------------------------
    def _state_to_tuple(self, state) -> tuple:
        return state_tuple(self.kind.title, self.kind, state)

    def _state_from_tuple(self, states: tuple):
        return state_value(self.kind, states)

    # -- forward -----------------------------------------------------------------------------
    def __call__(self, x, state=None, lengths=None, *, rng=None):
        return self.forward(x, state, lengths=lengths, rng=rng)

    def forward(self, x, state=None, lengths=None, *, rng=None):
        """x: (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched. Returns (output, state).

        Training mode's random masks (``dropout``, ``recurrent_dropout``, ``zoneout``) come from
        ``rng`` (a Generator or a seed) when given, else from the layer's own ``rng``. A layer of
        :func:`rnnkit.quantize_dynamic` runs inference, with int8 products, whatever the grad mode."""
        if self.quantized is not None:
            from rnnkit.precision import quantized
            with no_grad(), quantized():
                return self._forward(x, state, lengths, rng)
        return self._forward(x, state, lengths, rng)

    def _forward(self, x, state, lengths, rng):
        if state is None and lengths is None and rng is None:
            planned = self._planned_forward(x)
            if planned is not None:
                return planned
        x, batched = self._input_time_major(x)
        T, B, _ = x.shape
        lengths = check_lengths(lengths, B, T)
        state0 = self._states_in("state", state, B, batched)
        source = self.rng if rng is None else make_rng(rng)
        rng = source if (self.training and self.dropout > 0) else None
        weights = [[weights_of(group, "data") for group in layer] for layer in self._groups]
        stepper = self._stepper.get(self.kernel, self.dtype) if T == 1 and not is_grad_enabled() else None
        draw = None
        if self.inner_dropout.active(self.training):
            draw = functools.partial(self.inner_dropout.draw, self.training, source, T, B,
                                     self.kernel.state_sizes(), self.dtype)
        out, final, cache = stack_forward(self.kernel, weights, x, state0, lengths, self.dropout, rng,
                                          keep_tape=is_grad_enabled(), stepper=stepper, draw_masks=draw)
        self._cache = cache if is_grad_enabled() else None
        self._last_call = "grad" if is_grad_enabled() else "no_grad"
        self._layout = (batched, out.shape)
        return self._output_layout(out, batched), self._state_from_tuple(self._states_out(final, batched))

    def _planned_forward(self, x):
        """The call on the backend's plans (:func:`rnnkit.engine.callplan.stack_forward`) when it
        is the plain one — x (T, B, I) C-ordered of the layer's dtype, no state, lengths, masks or
        dropout, one direction — and every layer has a plan; else None. The same results as the
        general path, with less Python around the compiled loops."""
        if (type(x) is not np.ndarray or x.ndim != 3 or x.dtype != self.dtype or not x.flags.c_contiguous
                or self.batch_first or self.bidirectional or x.shape[2] != self.input_size):
            return None
        keep_tape, (T, B, _) = is_grad_enabled(), x.shape
        if (T < 1 or B < 1 or (T == 1 and not keep_tape) or self.inner_dropout.active(self.training)
                or (self.training and self.dropout > 0 and self.num_layers > 1)):
            return None
        backend = current()
        planned = getattr(backend, "planned_stack_forward", None)         # the engine's only
        done = None if planned is None else planned(self.kernel, self._weight_arrays(), x, keep_tape)
        if done is None:
            return None
        out, tapes = done
        final = tuple(np.empty((len(tapes), B, s.shape[2]), self.dtype) for s in tapes[0].states)
        for k, tape in enumerate(tapes):
            for f, s in zip(final, tape.states):
                f[k] = s[-1]
        self._cache = None
        if keep_tape:
            weights = [[weights_of(layer[0], "data")] for layer in self._groups]
            self._cache = StackCache(weights, [[t] for t in tapes], backend, [None] * len(tapes), None)
        self._last_call = "grad" if keep_tape else "no_grad"
        self._layout = (True, out.shape)
        return out, self._state_from_tuple(final)

    def _weight_arrays(self) -> list[tuple]:
        """Each layer's (first direction's) arrays in the order of the Weights record's fields."""
        if self._ordered is None:
            names = [f.name for f in dataclasses.fields(Weights)]
            self._ordered = [tuple(layer[0][n] for n in names if n in layer[0]) for layer in self._groups]
        return [tuple(p.data for p in params) for params in self._ordered]

    def backward(self, dout, dstate=None):
        """Gradients of the most recent forward call: returns (dx, gradient of the initial state).

        ``dout`` is shaped like that call's output; ``dstate`` like its final state (None: zeros).
        Parameter gradients are added into each ``p.grad``.
        """
        self._check_backward_allowed()
        batched, out_shape = self._layout
        dout = as_float_array("dout", dout, self.dtype)
        expected = self._output_shape(out_shape, batched)
        check_shape("dout", dout, expected, "(the shape of the forward output)")
        dout = self._input_layout(dout, batched)
        dfinal = self._states_in("dstate", dstate, out_shape[1], batched)
        grads = [[weights_of(group, "grad") for group in layer] for layer in self._groups]
        dx, dstate0 = stack_backward(self.kernel, grads, self._cache, dout, dfinal)
        return self._output_layout(dx, batched), self._state_from_tuple(self._states_out(dstate0, batched))

    def _check_backward_allowed(self) -> None:
        name = type(self).__name__
        if self.quantized is not None:
            raise RuntimeError(f"{name}.backward: the layer is quantised ({self.quantized}, "
                               "rnnkit.quantize_dynamic) for inference and has no backward")
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

    def _output_shape(self, shape: tuple, batched: bool) -> tuple:
        """The shape :meth:`_output_layout` gives a time-major array of ``shape``."""
        if not batched:
            return (shape[0], shape[2])
        return (shape[1], shape[0], shape[2]) if self.batch_first else tuple(shape)

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
        for name in ("recurrent_dropout", "zoneout"):
            extra += f", {name}={self.options[name]}" if self.options[name] else ""
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}"
                f"{extra}, dtype={self.dtype.name}" + (f", quantized={self.quantized}" if self.quantized else ""))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
