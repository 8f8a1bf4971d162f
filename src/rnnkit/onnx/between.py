"""A recurrent stack with norms between its layers (:class:`rnnkit.norm.between.NormedStack`) as
ONNX: each layer the plain stack's graph (:func:`rnnkit.onnx.recurrent.stack`) on its slice of the
stacked states, then the norm in eval mode — BatchNormalization with the running statistics on
(B, F, T), or LayerNormalization over F (opset >= 17) — and zeros at padded steps.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rnnkit.norm.between import NormedStack, SequenceBatchNorm
from rnnkit.onnx.conv_norm import batch_norm, layer_norm
from rnnkit.onnx.graph import Graph, dim, step_mask
from rnnkit.onnx.recurrent import stack
from rnnkit.onnx.spec import StackSpec, stack_spec


def normed_stack_spec(normed: NormedStack) -> StackSpec:
    """The spec of the whole stack's states (L·D, B, n): layer 0's, with L layers."""
    return replace(stack_spec(normed.layers[0]), num_layers=normed.num_layers)


def normed_stack(g: Graph, normed: NormedStack, x: str, states: tuple[str, ...], lengths: str | None):
    """(output (T, B, F), final states (L·D, B, n) each) of the stack on x (T, B, I)."""
    D, finals = normed.num_directions, []
    for k, (layer, norm) in enumerate(zip(normed.layers, normed.norms)):
        own = tuple(g.op("Slice", s, g.ints([k * D]), g.ints([(k + 1) * D]), g.ints([0]), hint=f"state_l{k}")
                    for s in states)
        x, final = stack(g, stack_spec(layer), x, own, lengths)                       # (T, B, F)
        if isinstance(norm, SequenceBatchNorm):
            bmt = g.op("Transpose", x, perm=[1, 2, 0], hint=f"bn_in_l{k}")              # (B, F, T)
            x = g.op("Transpose", batch_norm(g, norm, bmt, lengths), perm=[2, 0, 1], hint=f"bn_out_l{k}")
        else:
            x = layer_norm(g, norm, x)
            if lengths is not None:
                valid = g.op("Unsqueeze", step_mask(g, dim(g, x, 0, "steps"), lengths), g.ints([2]), hint="ln_valid")
                x = g.op("Where", valid, x, g.const(np.array(0.0), "zero"), hint=f"ln_masked_l{k}")
        finals.append(final)
    joined = tuple(g.op("Concat", *parts, axis=0, hint="state_n") for parts in zip(*finals))
    return x, joined
