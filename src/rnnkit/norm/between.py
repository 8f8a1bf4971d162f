r"""Normalisation between stacked recurrent layers and before the output layer.

A stack of L recurrent layers, each followed by a normalisation of its output sequence:

    h⁰ = x                                                  (T, B, I)
    hᵏ = norm_k(RNN_k(hᵏ⁻¹; s₀ᵏ))                           (T, B, F), F = D·H_out, k = 1..L
    hᵏ ← dropout(hᵏ)                                        k < L, training only
    output = hᴸ; final states stacked (L·D, B, n) in the plain stack's order

- ``norm="batch"`` (Laurent et al. 2016, "batch normalized recurrent neural networks": between
  layers, not in the recurrence): per feature f over the T·B valid positions (t < lengths[b]),
  μ_f, σ²_f of the batch in training and the running statistics in eval (:class:`BatchNorm1d`).
- ``norm="layer"`` (Ba, Kiros & Hinton 2016): per position (t, b) over the F features
  (:class:`LayerNorm`); it needs no batch statistics, so training and eval compute the same.

Outputs at padded positions (t ≥ lengths[b]) are 0, as the recurrent layers' are. The backward
pass runs the same pieces in reverse: dropout's mask, the norm's backward (through its batch or
position statistics), the recurrent layer's BPTT. The recurrent parameters keep the names of
the plain L-layer stack (``weight_ih_l{k}``, ``weight_hh_l{k}_reverse``, ...: layer k's
``weight_ih_l0`` is the stack's ``weight_ih_l{k}``), so tools that read a stack's weights read
these; the norms follow a PyTorch ``ModuleList``: ``norms.{k}.weight``, ``norms.{k}.running_mean``.
"""

from __future__ import annotations

import re

import numpy as np

from rnnkit.checks import as_float_array, check_choice, check_lengths, check_shape, make_rng
from rnnkit.dropout import Dropout
from rnnkit.module import Module
from rnnkit.norm.batch import BatchNorm1d
from rnnkit.norm.layer import LayerNorm
from rnnkit.ranges import COUNT, PROBABILITY_BELOW_1

NORMS = ("none", "batch", "layer")        # "none": the plain stack, no module of this file
LAYER_KEY = re.compile(r"layers\.(\d+)\.(\w+?)_l0(_reverse)?$")     # layer k's own name of a parameter


def stack_name(name: str) -> str:
    """``layers.{k}.weight_ih_l0[_reverse]`` → ``weight_ih_l{k}[_reverse]``; other names unchanged."""
    m = LAYER_KEY.match(name)
    return f"{m[2]}_l{m[1]}{m[3] or ''}" if m else name


def layer_name(name: str) -> str:
    """The inverse of :func:`stack_name` for a recurrent parameter (``weight_ih_l{k}``...)."""
    m = re.match(r"(\w+?)_l(\d+)(_reverse)?$", name)
    return f"layers.{m[2]}.{m[1]}_l0{m[3] or ''}" if m and not name.startswith("norms.") else name


def check_norm(name: str, value) -> str:
    return check_choice(name, value, NORMS)


def _sequence(owner: str, x, dtype, features: int, name: str = "x") -> np.ndarray:
    x = as_float_array(name, x, dtype)
    if x.ndim != 3 or x.shape[2] != features:
        raise ValueError(f"{owner}: {name} must be a time-major sequence (T, B, {features}), got shape {x.shape}")
    return x


class SequenceBatchNorm(BatchNorm1d):
    """:class:`BatchNorm1d` of a time-major sequence (T, B, F): statistics per feature over the
    T·B positions (the valid ones with ``lengths``). The same parameters, buffers and state dict
    as ``BatchNorm1d(F)``; PyTorch computes it as ``bn(x.permute(1, 2, 0)).permute(2, 0, 1)``."""

    def forward(self, x, lengths=None) -> np.ndarray:
        x = _sequence("SequenceBatchNorm", x, self.dtype, self.num_features)
        y = super().forward(x.transpose(1, 2, 0), lengths)          # (B, F, T): channels = features
        return np.ascontiguousarray(y.transpose(2, 0, 1))

    def backward(self, dout) -> np.ndarray:
        dy = as_float_array("dout", dout, self.dtype)
        if dy.ndim != 3:
            raise ValueError(f"SequenceBatchNorm.backward: dout must be (T, B, F) as the output, got {dy.shape}")
        return np.ascontiguousarray(super().backward(dy.transpose(1, 2, 0)).transpose(2, 0, 1))


class SequenceLayerNorm(LayerNorm):
    """:class:`LayerNorm` over the last axis of a sequence (T, B, F), 0 at padded positions."""

    def __init__(self, num_features: int, eps: float = 1e-5, *, dtype=np.float32) -> None:
        super().__init__(num_features, eps, dtype=dtype)
        self._valid: np.ndarray | None = None          # (T, B, 1) of the last call; None: all valid

    def __call__(self, x, lengths=None):
        return self.forward(x, lengths)

    def forward(self, x, lengths=None) -> np.ndarray:
        x = _sequence("SequenceLayerNorm", x, self.dtype, self.normalized_shape[0])
        lengths = check_lengths(lengths, x.shape[1], x.shape[0])
        y = super().forward(x)
        self._valid = None if lengths is None else (np.arange(x.shape[0])[:, None] < lengths)[:, :, None]
        return y if self._valid is None else np.where(self._valid, y, y.dtype.type(0))

    def backward(self, dout) -> np.ndarray:
        dy = as_float_array("dout", dout, self.dtype)
        return super().backward(dy if self._valid is None else np.where(self._valid, dy, dy.dtype.type(0)))


def sequence_norm(norm: str, features: int, *, dtype=np.float32) -> Module:
    """The module of ``norm`` ("batch" | "layer") for a sequence of ``features`` features."""
    check_norm("norm", norm)
    if norm == "none":
        raise ValueError('sequence_norm: norm "none" has no module (use the plain stack)')
    return SequenceBatchNorm(features, dtype=dtype) if norm == "batch" else SequenceLayerNorm(features, dtype=dtype)


class NormedStack(Module):
    """L one-layer recurrent layers of kind ``cell`` ("lstm", "gru", "rnn"), each followed by a
    normalisation (``norm``: "batch" | "layer") and, but the last, by dropout; called and
    differentiated as the L-layer ``rnnkit.LSTM`` / ``GRU`` / ``RNN`` (time-major, states
    (L·D, B, n)). ``options``: the layers' own options (``peephole``, ``nonlinearity``, ...)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, norm: str = "layer",
                 dropout: float = 0.0, bidirectional: bool = False, options: dict | None = None, *,
                 dtype=np.float32, rng=None) -> None:
        from rnnkit.kinds import layer_class         # the layers import the kinds, which import this lazily
        super().__init__(dtype=dtype)
        self.norm = check_norm("norm", norm)
        if norm == "none":
            raise ValueError('NormedStack: norm must be "batch" or "layer" ("none" is the plain stack)')
        self.input_size = COUNT.check("input_size", input_size)
        self.hidden_size = COUNT.check("hidden_size", hidden_size)
        self.num_layers = COUNT.check("num_layers", num_layers)
        self.dropout = PROBABILITY_BELOW_1.check("dropout", dropout)
        rng = make_rng(rng)
        self.rng = rng                                # the layers' and the dropouts': one generator
        cls = layer_class(cell)
        self.kind = cls.kind
        self.layers, width = [], input_size
        for k in range(num_layers):
            layer = cls(width, hidden_size, bidirectional=bidirectional, dtype=dtype, rng=rng, **(options or {}))
            width = layer.num_directions * (layer.proj_size or hidden_size)
            self.layers.append(self.register_module(f"layers.{k}", layer))
        self.num_directions, self.proj_size, self.bidirectional = layer.num_directions, layer.proj_size, layer.bidirectional
        self.output_size = width
        self.norms = [self.register_module(f"norms.{k}", sequence_norm(norm, width, dtype=dtype))
                      for k in range(num_layers)]
        self.drops = [self.register_module(f"drops.{k}", Dropout(self.dropout, dtype=dtype, rng=rng))
                      for k in range(num_layers - 1)]

    def __call__(self, x, state=None, lengths=None):
        return self.forward(x, state, lengths)

    # The layers are children (training mode, traversal) but their parameters carry the stack's names.
    def named_parameters(self, prefix: str = ""):
        return ((prefix + stack_name(n), p) for n, p in super().named_parameters())

    def named_buffers(self, prefix: str = ""):
        return ((prefix + stack_name(n), b) for n, b in super().named_buffers())

    def _named_state(self, prefix: str = ""):
        return ((prefix + stack_name(n), a) for n, a in super()._named_state())

    def use_rng(self, rng) -> None:
        """Draw every layer's and every dropout's masks from ``rng`` from now on."""
        self.rng = rng
        for part in (*self.layers, *self.drops):
            part.use_rng(rng)

    def state_shapes(self, batch: int) -> tuple[tuple[int, ...], ...]:
        """(L·D, B, n) for each part of the state, as the plain L-layer stack's."""
        return tuple((self.num_layers * s[0], batch, s[2]) for s in self.layers[0].state_shapes(batch))

    def _parts(self, name: str, state, batch: int) -> list:
        """The state (None, h, or (h, c)) as one value of the same form per layer (None: zeros)."""
        from rnnkit.recurrent import state_tuple, state_value
        if state is None:
            return [None] * self.num_layers
        parts = state_tuple(self.kind.title, self.kind, state)
        shapes = self.state_shapes(batch)
        arrays = []
        for i, (part, shape) in enumerate(zip(parts, shapes)):
            label = name if len(shapes) == 1 else f"{name}[{i}]"
            a = np.zeros(shape, self.dtype) if part is None else as_float_array(label, part, self.dtype)
            check_shape(label, a, shape, "(num_layers*num_directions, batch, size)")
            arrays.append(a)
        D = self.num_directions
        return [state_value(self.kind, tuple(a[k * D:(k + 1) * D] for a in arrays)) for k in range(self.num_layers)]

    def _joined(self, per_layer: list):
        from rnnkit.recurrent import state_tuple, state_value
        tuples = [state_tuple(self.kind.title, self.kind, s) for s in per_layer]
        return state_value(self.kind, tuple(np.concatenate(p) for p in zip(*tuples)))

    def forward(self, x, state=None, lengths=None):
        """x (T, B, I), state as the L-layer stack's (or None), lengths (B,) → (output (T, B, F), state)."""
        h = _sequence("NormedStack", x, self.dtype, self.input_size)
        states = self._parts("state", state, h.shape[1])
        finals = []
        for k, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            h, final = layer(h, states[k], lengths=lengths)
            h = norm(h, lengths)
            if k < self.num_layers - 1:
                h = self.drops[k](h)
            finals.append(final)
        return h, self._joined(finals)

    def backward(self, dout, dstate=None):
        """(dx, gradient of the initial state) of the last forward call; parameter gradients added
        into each ``p.grad``. ``dstate`` like the final state (None: zeros)."""
        dh = _sequence("NormedStack.backward", dout, self.dtype, self.output_size, "dout")
        dfinals = self._parts("dstate", dstate, dh.shape[1])
        dstates = [None] * self.num_layers
        for k in reversed(range(self.num_layers)):
            if k < self.num_layers - 1:
                dh = self.drops[k].backward(dh)
            dh, dstates[k] = self.layers[k].backward(self.norms[k].backward(dh), dfinals[k])
        return dh, self._joined(dstates)

    def __repr__(self) -> str:
        return (f"NormedStack({self.kind.name!r}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"norm={self.norm!r}, dropout={self.dropout}, bidirectional={self.bidirectional}, dtype={self.dtype.name})")
