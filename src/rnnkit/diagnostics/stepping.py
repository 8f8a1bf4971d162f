"""Stepping a one-directional layer stack cell by cell, to see what happens at each time step.

The layers keep their per-step values inside a tape for speed; the diagnostics want them one
step at a time (the gradient reaching every h_t, the gates at every step). These helpers turn
each layer of a stack into cells with the same weights and run BPTT over the stack step by step
with the cells' ``step`` / ``step_backward`` — the same kernels, so the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.kinds import cell_class
from rnnkit.layers import state_parts
from rnnkit.recurrent import RecurrentBase


def layer_cells(layer) -> list:
    """One cell per layer of a one-directional, unprojected RNN/LSTM/GRU (or of the layers of a
    NormedStack), with its weights.

    The cells compute in float64 whatever the layer's dtype: the gradients these diagnostics
    follow shrink by many orders of magnitude and would underflow float32 (below ~1e-45).
    """
    from rnnkit.norm.between import NormedStack
    if isinstance(layer, NormedStack):
        return [cell for sub in layer.layers for cell in layer_cells(sub)]
    if not isinstance(layer, RecurrentBase):
        raise TypeError(f"expected an RNN, LSTM or GRU layer, got {type(layer).__name__}")
    if layer.bidirectional or layer.proj_size:
        raise ValueError("stepping diagnostics need a one-directional layer without projection")
    options = {name: value for name, value in layer.options.items() if not layer.kind.option(name).layers_only}
    cells = []
    for k in range(layer.num_layers):
        in_size = layer.input_size if k == 0 else layer.hidden_size
        cell = cell_class(layer.kind.name)(in_size, layer.hidden_size, bias=layer.bias, dtype=np.float64, rng=0,
                                           **options)
        suffix = f"_l{k}"
        cell.load_state_dict({name[: -len(suffix)]: p.data for name, p in layer.named_parameters()
                              if name.endswith(suffix)})
        cells.append(cell)
    return cells


@dataclass(frozen=True)
class Trace:
    """A forward pass of a stack, step by step: caches[t][k] and states[t][k] after step t."""

    caches: list[list]
    states: list[list]
    norm_caches: list[list] | None = None   # [t][k]: the StepNorm cache of layer k's output, if any


@dataclass(frozen=True)
class StepNorm:
    """A norm between layers, applied to one step's output h (B, F) in eval mode: a function of
    that step alone (a batch norm's running statistics, a layer norm's own row), in float64."""

    module: object                      # the SequenceBatchNorm or SequenceLayerNorm

    def forward(self, h: np.ndarray):
        """(y (B, F), cache)."""
        from rnnkit.norm.batch import batch_norm_forward
        from rnnkit.norm.between import SequenceBatchNorm
        from rnnkit.norm.layer import layer_norm_forward
        m = self.module
        w = None if m.weight is None else m.weight.data.astype(np.float64)
        b = None if m.bias is None else m.bias.data.astype(np.float64)
        if isinstance(m, SequenceBatchNorm):
            y, cache, _ = batch_norm_forward(h[:, :, None], w, b, m.running_mean.astype(np.float64),
                                             m.running_var.astype(np.float64), m.eps, None)
            return y[:, :, 0], cache
        return layer_norm_forward(h, w, b, m.eps, (-1,))

    def backward(self, dy: np.ndarray, cache) -> np.ndarray:
        """dh (B, F) from dy (B, F) and the forward's cache."""
        from rnnkit.norm.batch import batch_norm_backward
        from rnnkit.norm.between import SequenceBatchNorm
        from rnnkit.norm.layer import layer_norm_backward
        m = self.module
        w = None if m.weight is None else m.weight.data.astype(np.float64)
        if isinstance(m, SequenceBatchNorm):
            return batch_norm_backward(dy[:, :, None], w, cache)[0][:, :, 0]
        return layer_norm_backward(dy, w, cache, (-1,))[0]


def between_steps(layer) -> list[StepNorm] | None:
    """For a NormedStack in eval mode, its norms as StepNorms (one per layer); else None."""
    from rnnkit.norm.between import NormedStack
    if not isinstance(layer, NormedStack):
        return None
    if layer.training:
        raise ValueError("stepping a NormedStack needs eval mode (batch statistics span every step)")
    return [StepNorm(n) for n in layer.norms]


def run_forward(cells: list, x: np.ndarray, between: list | None = None) -> Trace:
    """x (T, B, I): every layer steps through every time step, from zero states; ``between[k]``
    (:func:`between_steps`), if given, normalises layer k's output before the next layer reads it."""
    caches, states, norm_caches = [], [], []
    state = [None] * len(cells)
    for t in range(x.shape[0]):
        inp, row_c, row_s, row_n = x[t], [], [], []
        for k, cell in enumerate(cells):
            state[k], cache = cell.step(inp, state[k])
            inp = state_parts(state[k])[0]
            if between is not None:
                inp, norm_cache = between[k].forward(inp)
                row_n.append(norm_cache)
            row_c.append(cache)
            row_s.append(state[k])
        caches.append(row_c)
        states.append(row_s)
        norm_caches.append(row_n)
    return Trace(caches, states, norm_caches if between is not None else None)


def state_gradients(cells: list, trace: Trace, dh_last: np.ndarray, between: list | None = None) -> list[list[tuple]]:
    """Backward from a loss on the top layer's final output, whose gradient is ``dh_last`` (B, H);
    ``between``: the StepNorms the forward ran (the gradient from layer k + 1 passes through k's).

    Returns grads[t][k]: the gradient reaching layer k's state after step t, one array per state
    component ((dh,) or (dh, dc)), each (B, H).
    """
    T, L = len(trace.caches), len(cells)
    carry = [tuple(np.zeros_like(p) for p in state_parts(trace.states[-1][k])) for k in range(L)]
    carry[-1] = (carry[-1][0] + dh_last,) + carry[-1][1:]
    grads: list[list[tuple]] = [[()] * L for _ in range(T)]
    for t in range(T - 1, -1, -1):
        d_from_above = None
        for k in range(L - 1, -1, -1):
            if d_from_above is not None and between is not None:
                d_from_above = between[k].backward(d_from_above, trace.norm_caches[t][k])
            d = carry[k] if d_from_above is None else (carry[k][0] + d_from_above,) + carry[k][1:]
            grads[t][k] = d
            arg = d if len(d) == 2 else d[0]
            d_from_above, prev = cells[k].step_backward(arg, trace.caches[t][k])
            carry[k] = state_parts(prev)
    return grads
