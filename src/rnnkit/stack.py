"""A stack of recurrent layers, each with one or two directions, forward and backward.

Composition, not special cases: a layer is a list of directions, a stack is a list of layers; the
reverse direction is the same scan over each sequence reversed within its own length; layer k > 0
reads [forward output, reverse output] of layer k − 1, after dropout in training mode.
All arrays here are time-major: x (T, B, I), states (num_layers·D, B, n).

A layer's directions run on the backend in use (:func:`rnnkit.backend.current`: the engine,
compiled, the directions side by side, or the NumPy reference), through its ``layer_forward`` /
``layer_backward``; a call of one step that keeps nothing for backward (streaming inference)
goes through a ``stepper`` of that backend instead, in the same loop over layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnkit.backend import Backend, Stepper, current
from rnnkit.inner_dropout import Masks
from rnnkit.kernels.base import Kernel, Tape, Weights
from rnnkit.scan import reversal_index, reverse_time, scan_output


@dataclass(frozen=True)
class StackCache:
    """Everything one forward call of a stack keeps for its backward call."""

    weights: list[list[Weights]]           # [layer][direction], as used by the forward call
    tapes: list[list[Tape]]                # [layer][direction]
    backend: Backend                       # the backend that made the tapes
    dropout_masks: list[np.ndarray | None] # [layer]: scaled keep-mask on that layer's output
    reverse_index: np.ndarray | None       # (T, B) or None without lengths


def stack_forward(
    kernel: Kernel, weights: list[list[Weights]], x: np.ndarray, state0: tuple,
    lengths: np.ndarray | None, dropout: float, rng: np.random.Generator | None, keep_tape: bool = True,
    stepper: Stepper | None = None, draw_masks: Callable[[], Masks | None] | None = None,
):
    """Returns (output (T, B, D·H_out), final states, StackCache); without ``keep_tape`` (inference)
    the cache cannot be used for backward. ``stepper`` (the current backend's, for this kernel):
    a call of one step that keeps nothing and draws no dropout takes it, with no tape (the cache
    is then None). ``draw_masks``: the masks of dropout inside the recurrence
    (:mod:`rnnkit.inner_dropout`), drawn once per layer and direction in that order, each layer's
    before its output's dropout mask."""
    T, B, _ = x.shape
    D = len(weights[0])
    backend = current()
    step = stepper is not None and T == 1 and not keep_tape and rng is None and draw_masks is None
    mask = None if lengths is None else (np.arange(T)[:, None] < lengths)[:, :, None]
    rev = reversal_index(T, lengths)
    tapes, masks = [], []
    final = tuple(np.empty_like(s) for s in state0)          # (num_layers·D, B, n) each
    layer_in = x
    for k, layer in enumerate(weights):
        xs = [reverse_time(layer_in, rev) if d == 1 else layer_in for d in range(D)]
        states = [tuple(s[k * D + d] for s in state0) for d in range(D)]
        if step:                                # a sequence of one step reads the same both ways
            news = [stepper(stepper.weights(w), np.ascontiguousarray(x_d[0]), s)
                    for w, x_d, s in zip(layer, xs, states)]
            outs, layer_tapes = [new[0][None] for new in news], None
        else:
            inner = None if draw_masks is None else [draw_masks() for _ in range(D)]
            layer_tapes = backend.layer_forward(kernel, layer, xs, states, mask, keep_tape, inner)
            outs = [reverse_time(scan_output(t), rev) if d == 1 else scan_output(t) for d, t in enumerate(layer_tapes)]
            news = [tuple(s[-1] for s in t.states) for t in layer_tapes]
        for d, new in enumerate(news):
            for f, s in zip(final, new):
                f[k * D + d] = s
        layer_out = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
        keep = None
        if dropout > 0 and rng is not None and k < len(weights) - 1:
            keep = (rng.random(layer_out.shape) >= dropout).astype(x.dtype) / x.dtype.type(1 - dropout)
            layer_out = layer_out * keep
        tapes.append(layer_tapes)
        masks.append(keep)
        layer_in = layer_out
    return layer_in, final, None if step else StackCache(weights, tapes, backend, masks, rev)


def stack_backward(kernel: Kernel, grads: list[list[Weights]], cache: StackCache, dout, dfinal: tuple):
    """Back through the stack; parameter gradients are added into ``grads``.

    Returns (dx (T, B, I), gradients reaching the initial states, shaped like them).
    """
    D = len(cache.weights[0])
    dstate0 = tuple(np.empty_like(d) for d in dfinal)
    dlayer = dout
    for k in range(len(cache.weights) - 1, -1, -1):
        if cache.dropout_masks[k] is not None:
            dlayer = dlayer * cache.dropout_masks[k]
        parts = [dlayer] if D == 1 else np.split(dlayer, D, axis=-1)        # np.split: ~4 µs
        douts = [reverse_time(parts[d], cache.reverse_index) if d == 1 else parts[d] for d in range(D)]
        dfins = [tuple(df[k * D + d] for df in dfinal) for d in range(D)]
        results = cache.backend.layer_backward(kernel, cache.weights[k], grads[k], cache.tapes[k], douts, dfins)
        dx = None
        for d, (dxs, ds0) in enumerate(results):
            dxs = reverse_time(dxs, cache.reverse_index) if d == 1 else dxs
            dx = dxs if dx is None else dx + dxs
            for out, s in zip(dstate0, ds0):
                out[k * D + d] = s
        dlayer = dx
    return dlayer, dstate0
