"""Single-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell`` with PyTorch's signatures and names.

A cell runs the same kernel as the layers, one step at a time, for streaming inference,
generation and hand-written loops. Two ways to use it:

- ``h, c = cell(x, (h, c))`` then ``dx, (dh, dc) = cell.backward(dh, dc)``: differentiates the most
  recent call only, like a layer.
- The step-level pair for your own loops::

      state, cache = cell.step(x_t, state)               # keep each cache
      dx_t, dstate = cell.step_backward(dstate, cache)   # in reverse order; grads accumulate

  ``dstate`` passed to ``step_backward`` is the total gradient reaching the step's new state
  (from its output plus from the next step). Stepping a cell through a sequence gives exactly the
  whole-sequence layer's outputs and gradients (the tests check it).

x is (B, I) or unbatched (I,); states (B, H) or (H,); None means zeros.

Dropout inside the recurrence (``recurrent_dropout``, ``zoneout``; :mod:`rnnkit.inner_dropout`):
in training mode a call draws the masks of a sequence of one step from ``rng`` (the call's, else
the cell's). To step through a sequence as a layer does — one recurrent-dropout mask for all its
steps — draw the masks once and give each step its row::

    masks = cell.draw_masks(batch, steps)              # what a one-layer layer draws, same order
    state, cache = cell.step(x[t], state, masks=masks.at(t))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit import kinds
from rnnkit.backend import Backend, current
from rnnkit.checks import as_float_array, check_shape, make_rng
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.inner_dropout import InnerDropout, Masks, check_masks
from rnnkit.kernels.base import Tape
from rnnkit.module import Module
from rnnkit.ranges import COUNT
from rnnkit.recurrent import StepperCache, register_cell, state_tuple, state_value, weights_of


class StepCache(NamedTuple):
    """What one step keeps for :meth:`CellBase.step_backward`."""

    tape: Tape            # the step's tape: gate activations, states, as a sequence of length 1
    batched: bool         # x was (B, I) rather than (I,)
    backend: Backend      # the backend that made the tape


class CellBase(Module):
    """One cell of a kind (``kind = kinds.KINDS["lstm"]``), with that kind's cell options."""

    kind: kinds.CellKind

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            kinds.register_class(cls, cls.kind, cell=True)

    def __init__(self, input_size: int, hidden_size: int, bias: bool, options: dict | None = None,
                 *, dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.input_size = COUNT.check("input_size", input_size)
        self.hidden_size = COUNT.check("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.options = self.kind.check_options(options or {}, cell=True)
        for name, value in self.options.items():
            setattr(self, name, value)
        self.kernel = self.kind.kernel(self.hidden_size, self.options)
        self.inner_dropout = InnerDropout(self.options["recurrent_dropout"], self.options["zoneout"])
        shapes = self.kind.param_shapes(self.input_size, self.hidden_size, self.bias, self.options)
        self.rng = make_rng(rng)                  # the parameters' draws, then training mode's masks
        self._group = register_cell(self, shapes, self.hidden_size, "", self.rng,
                                    self.kind.param_constants(self.options))
        self._last: StepCache | None = None
        self._stepper = StepperCache()            # for steps that keep nothing (streaming)
        self._arrays = None                       # (stepper, parameter arrays, its arrays of them)
        self._last_call: str | None = None

    # -- how a state looks to the user: h, or the pair (h, c) --------------------------------
    def _state_to_tuple(self, state) -> tuple:
        return state_tuple(self.kind.title + "Cell", self.kind, state)

    def _state_from_tuple(self, states: tuple):
        return state_value(self.kind, states)

    # -- the step-level pair -----------------------------------------------------------------
    def _inputs(self, x, state) -> tuple[np.ndarray, tuple, bool]:
        """x as (1, B, I) and the state as ((1, B, n), ...), checked; and whether x was batched."""
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (B, {self.input_size}) or ({self.input_size},), got {x.shape}")
        batched = x.ndim == 2
        xb = x[None] if batched else x[None, None]                           # (1, B, I)
        return xb, self._states_in("state", state, xb.shape[1], batched), batched

    def draw_masks(self, batch: int, steps: int = 1, *, rng=None) -> Masks | None:
        """The masks of dropout inside the recurrence for ``steps`` steps of ``batch`` sequences in
        the current mode, drawn from ``rng`` (else the cell's) as a one-layer, one-direction layer
        of the same options draws them; None when there are none. Give step t ``masks.at(t)``."""
        batch = COUNT.check("batch", batch)
        steps = COUNT.check("steps", steps)
        source = self.rng if rng is None else make_rng(rng)
        return self.inner_dropout.draw(self.training, source, steps, batch, self.kernel.state_sizes(), self.dtype)

    def _masks(self, masks, rng, batch: int) -> Masks | None:
        """A call's masks: those given (checked), else a one-step draw (None if this mode has none)."""
        if masks is None:
            return self.draw_masks(batch, 1, rng=rng) if self.inner_dropout.active(self.training) else None
        return check_masks(masks, self.inner_dropout, self.training, batch, self.kernel.state_sizes())

    def step(self, x, state=None, *, masks: Masks | None = None, rng=None) -> tuple[object, StepCache]:
        """One step: returns (new state, cache for :meth:`step_backward`). ``masks`` (one step's,
        e.g. ``draw_masks(B, T).at(t)``) or else masks drawn from ``rng`` / the cell's rng, in
        training mode and with ``recurrent_dropout`` or ``zoneout``."""
        xb, state0, batched = self._inputs(x, state)
        return self._step(xb, state0, batched, self._masks(masks, rng, xb.shape[1]), keep_tape=True)

    def _step(self, xb, state0, batched: bool, masks: Masks | None, keep_tape: bool):
        backend = current()
        tape, = backend.layer_forward(self.kernel, [weights_of(self._group, "data")], [xb], [state0], None,
                                      keep_tape, [masks])
        new = tuple(s[-1] if batched else s[-1, 0] for s in tape.states)
        return self._state_from_tuple(new), StepCache(tape, batched, backend)

    def step_backward(self, dstate, cache: StepCache):
        """Back through one step: returns (dx, gradient reaching the previous state)."""
        tape, batched, backend = cache
        dnew = self._states_in("dstate", dstate, tape.x.shape[1], batched)
        dout = np.zeros_like(tape.states[0][1:])                             # all of it is in dstate
        (dx, dprev), = backend.layer_backward(
            self.kernel, [weights_of(self._group, "data")], [weights_of(self._group, "grad")], [tape], [dout],
            [dnew])
        dprev = tuple(d if batched else d[0] for d in dprev)
        return (dx[0] if batched else dx[0, 0]), self._state_from_tuple(dprev)

    # -- call / backward, like a layer -------------------------------------------------------
    def __call__(self, x, state=None, *, masks: Masks | None = None, rng=None):
        return self.forward(x, state, masks=masks, rng=rng)

    def forward(self, x, state=None, *, masks: Masks | None = None, rng=None):
        if not is_grad_enabled():
            self._last, self._last_call = None, "no_grad"
            if masks is None and not self.inner_dropout.active(self.training):
                return self._infer(x, state)
            xb, state0, batched = self._inputs(x, state)
            return self._step(xb, state0, batched, self._masks(masks, rng, xb.shape[1]), keep_tape=False)[0]
        new, cache = self.step(x, state, masks=masks, rng=rng)
        self._last, self._last_call = cache, "grad"
        return new

    def _infer(self, x, state):
        """One step without a tape, through the backend's stepper: on the engine, a compiled step
        that reads the weights as they lie (:mod:`rnnkit.engine.step`), for streaming inference.
        Inputs that are already C-ordered arrays of the cell's dtype and shapes skip the general
        conversion (a step of a small cell takes a few microseconds: the checks must not take more)."""
        stepper = self._stepper.get(self.kernel, self.dtype)
        states = self._ready_states(x, state)
        batched = states is not None
        if states is None:
            xb, state0, batched = self._inputs(x, state)
            x, states = np.ascontiguousarray(xb[0]), tuple(np.ascontiguousarray(s[0]) for s in state0)
        new = stepper(self._step_arrays(stepper), x, states)
        return self._state_from_tuple(new if batched else tuple(s[0] for s in new))

    def _step_arrays(self, stepper) -> object:
        """The stepper's weight arrays, rebuilt only when a parameter's array was replaced (or the
        stepper, with the backend)."""
        if self._arrays is not None and self._arrays[0] is stepper:
            for p, a in zip(self._group.values(), self._arrays[1]):
                if p.data is not a:
                    break
            else:
                return self._arrays[2]
        data = tuple(p.data for p in self._group.values())
        self._arrays = (stepper, data, stepper.weights(weights_of(self._group, "data")))
        return self._arrays[2]

    def _ready_states(self, x, state) -> tuple | None:
        """The state as a tuple of (B, H) arrays if x (B, I) and it need no conversion, else None."""
        if not (type(x) is np.ndarray and x.dtype == self.dtype and x.ndim == 2
                and x.shape[1] == self.input_size and x.flags.c_contiguous):
            return None
        shape = (x.shape[0], self.hidden_size)
        if state is None:
            return tuple(np.zeros(shape, self.dtype) for _ in self.kernel.state_sizes())
        parts = state if type(state) is tuple else (state,)
        if len(parts) != len(self.kernel.state_sizes()):
            return None
        for part in parts:
            if not (type(part) is np.ndarray and part.dtype == self.dtype and part.shape == shape
                    and part.flags.c_contiguous):
                return None
        return parts

    def _backward(self, dstate):
        name = type(self).__name__
        if self._last_call is None:
            raise RuntimeError(f"{name}.backward: no forward call to differentiate; call the cell first")
        if self._last is None:
            raise RuntimeError(f"{name}.backward: the last call ran under rnnkit.no_grad() and kept no cache")
        return self.step_backward(dstate, self._last)

    def _states_in(self, name: str, state, batch: int, batched: bool) -> tuple:
        sizes = self.kernel.state_sizes()
        parts = (None,) * len(sizes) if state is None else self._state_to_tuple(state)
        out = []
        for k, (part, n) in enumerate(zip(parts, sizes)):
            label = name if len(sizes) == 1 else f"{name}[{k}]"
            if part is None:
                out.append(np.zeros((1, batch, n), self.dtype))
                continue
            a = as_float_array(label, part, self.dtype)
            check_shape(label, a, (batch, n) if batched else (n,), "(batch, hidden_size)" if batched
                        else "(hidden_size,) for unbatched input")
            out.append(a.reshape(1, batch, n))
        return tuple(out)


class RNNCell(CellBase):
    r"""Elman cell: ``h' = φ(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)``, φ = tanh or relu.

    ``h = cell(x, h)``; ``dx, dh = cell.backward(dh')``. ``layer_norm=True``: as :class:`rnnkit.RNN`'s,
    parameters ``ln_weight_ih``, ``ln_weight_hh``.
    """

    kind = kinds.KINDS["rnn"]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, *, layer_norm: bool = False, dtype=np.float32,
                 rng=None) -> None:
        super().__init__(input_size, hidden_size, bias, dict(nonlinearity=nonlinearity,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                         layer_norm=layer_norm), dtype=dtype, rng=rng)

    def backward(self, dh):
        return self._backward(dh)


class GRUCell(CellBase):
    r"""GRU cell (gate order r, z, n)::

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),   z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))       reset_after=True (PyTorch)
        n = tanh(x W_inᵀ + b_in + (r ⊙ h) W_hnᵀ + b_hn)       reset_after=False (Cho 2014)
        h' = (1 − z) ⊙ n + z ⊙ h

    ``h = cell(x, h)``; ``dx, dh = cell.backward(dh')``. ``layer_norm=True``: as :class:`rnnkit.GRU`'s,
    parameters ``ln_weight_ih``, ``ln_weight_hh``.
    """

    kind = kinds.KINDS["gru"]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, reset_after: bool = True,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, *, layer_norm: bool = False, dtype=np.float32,
                 rng=None) -> None:
        super().__init__(input_size, hidden_size, bias, dict(reset_after=reset_after,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                         layer_norm=layer_norm), dtype=dtype, rng=rng)

    def backward(self, dh):
        return self._backward(dh)


class LSTMCell(CellBase):
    r"""LSTM cell (gate order i, f, g, o; peephole terms in brackets)::

        i = σ(x W_iiᵀ + b_ii + h W_hiᵀ + b_hi [+ w_ci ⊙ c])
        f = σ(x W_ifᵀ + b_if + h W_hfᵀ + b_hf [+ w_cf ⊙ c])
        g = tanh(x W_igᵀ + b_ig + h W_hgᵀ + b_hg)
        c' = f ⊙ c + i ⊙ g
        o = σ(x W_ioᵀ + b_io + h W_hoᵀ + b_ho [+ w_co ⊙ c'])
        h' = o ⊙ tanh(c')

    ``h, c = cell(x, (h, c))``; ``dx, (dh, dc) = cell.backward(dh', dc')``. ``layer_norm=True``: as
    :class:`rnnkit.LSTM`'s, parameters ``ln_weight_ih``, ``ln_weight_hh``, ``ln_weight_c``, ``ln_bias_c``.
    """

    kind = kinds.KINDS["lstm"]

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, peephole: bool = False,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, *, layer_norm: bool = False, dtype=np.float32,
                 rng=None) -> None:
        super().__init__(input_size, hidden_size, bias, dict(peephole=peephole,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                         layer_norm=layer_norm), dtype=dtype, rng=rng)

    def backward(self, dh, dc=None):
        return self._backward((dh, dc))
