"""The pooling layers of :mod:`rnnkit.pooling` as ONNX: (T, B, F) time-major → (B, F).

With ``lengths`` (B,) the padded steps t ≥ L_b never reach the output, as in rnnkit:

    LastStep       y_b = h[L_b − 1, b]   (a bidirectional layer's reverse half: h[0, b])   GatherElements
    MaxPool        y_b = max over valid t, padding set to −∞ first                        Where, ReduceMax
    MeanPool       y_b = Σ_{t < L_b} h[t, b] / L_b                                        Where, ReduceSum
    AttentionPool  e_t = tanh(h_t Wᵀ + b) · v,  e_t = −∞ at padding,  α = softmax_t(e),
                   y = Σ_t α_t h_t  (α_t = exp(−∞) = 0 exactly at padded steps)           Softmax over time

Without lengths every step is valid and the masks are left out.
"""

from __future__ import annotations

import numpy as np

from rnnkit.onnx.graph import Graph, dim, linear, reduce, step_mask
from rnnkit.onnx.interface import lengths_input
from rnnkit.onnx.registry import register_exporter
from rnnkit.pooling import AttentionPool, LastStep, MaxPool, MeanPool, SequencePool


def pool(g: Graph, module: SequencePool, h: str, lengths: str | None) -> str:
    """The pooled value (B, F) of ``h`` (T, B, F) under ``module``; lengths (B,) int64 or None."""
    for cls, fn in POOLS.items():
        if isinstance(module, cls):
            return fn(g, module, h, lengths)
    raise TypeError(f"rnnkit.onnx: no ONNX form for the pooling layer {type(module).__name__}; "
                    f"supported: {', '.join(c.__name__ for c in POOLS)}")


def _mask(g: Graph, h: str, lengths: str) -> str:
    """(T, B, 1) bool: step t valid for sequence b."""
    return g.op("Unsqueeze", step_mask(g, dim(g, h, 0, "steps"), lengths), g.ints([2]), hint="pool_mask")


def _last(g: Graph, module: LastStep, h: str, lengths: str | None) -> str:
    if lengths is None:                                                   # every sequence ends at T − 1
        lengths = g.op("Expand", dim(g, h, 0, "steps"), g.op("Slice", g.op("Shape", h), g.ints([1]), g.ints([2])))
    F = g.op("Slice", g.op("Shape", h), g.ints([2]), g.ints([3]), hint="features")
    last = g.op("Sub", lengths, g.ints(1), hint="last_step")                                  # (B,)
    steps = g.op("Expand", g.op("Unsqueeze", last, g.ints([0, 2])),
                 g.op("Concat", g.ints([1]), g.op("Shape", lengths), F, axis=0), hint="steps")  # (1, B, F)
    if module.bidirectional:                                              # reverse half: step 0
        steps = g.op("Mul", steps, g.op("Cast", g.op("Less", g.op("Range", g.ints(0), g.op("Squeeze", F), g.ints(1)),
                                                        g.op("Div", g.op("Squeeze", F), g.ints(2))), to=7))
    y = g.op("GatherElements", h, steps, axis=0, hint="last")                                 # (1, B, F)
    return g.op("Squeeze", y, g.ints([0]), hint="pooled")


def _max(g: Graph, module: MaxPool, h: str, lengths: str | None) -> str:
    if lengths is not None:
        h = g.op("Where", _mask(g, h, lengths), h, g.const(np.array(-np.inf), "minus_inf"), hint="h_masked")
    return reduce(g, "ReduceMax", h, [0], hint="pooled")


def _mean(g: Graph, module: MeanPool, h: str, lengths: str | None) -> str:
    if lengths is None:
        return reduce(g, "ReduceMean", h, [0], hint="pooled")
    h = g.op("Where", _mask(g, h, lengths), h, g.const(np.array(0.0), "zero"), hint="h_masked")
    count = g.op("Cast", g.op("Unsqueeze", lengths, g.ints([1])), to=g.elem_type, hint="count")   # (B, 1)
    return g.op("Div", reduce(g, "ReduceSum", h, [0], hint="total"), count, hint="pooled")


def _attention(g: Graph, module: AttentionPool, h: str, lengths: str | None) -> str:
    u = g.op("Tanh", linear(g, h, module.W.data, module.b.data, "attn"), hint="attn_u")     # (T, B, A)
    e = g.op("MatMul", u, g.const(module.v.data[:, None], "attn_v"), hint="attn_e")         # (T, B, 1)
    if lengths is not None:
        e = g.op("Where", _mask(g, h, lengths), e, g.const(np.array(-np.inf), "minus_inf"), hint="attn_e_masked")
    alpha = g.op("Softmax", e, axis=0, hint="alpha")                                          # (T, B, 1)
    return reduce(g, "ReduceSum", g.op("Mul", alpha, h), [0], hint="pooled")


POOLS = {LastStep: _last, MaxPool: _max, MeanPool: _mean, AttentionPool: _attention}


@register_exporter(SequencePool)
def export_pool(g: Graph, module: SequencePool, lengths: bool) -> None:
    """A pooling layer alone: ``input`` (T, B, F) — (B, T, F) with batch_first —, ``lengths`` (B,)
    int64 with lengths=True → ``output`` (B, F)."""
    F = module.features if isinstance(module, AttentionPool) else "features"
    shape = ["batch", "time", F] if module.batch_first else ["time", "batch", F]
    x = g.add_input("input", g.elem_type, shape)
    if module.batch_first:
        x = g.op("Transpose", x, perm=[1, 0, 2], hint="input_time_major")
    g.add_output(pool(g, module, x, lengths_input(g) if lengths else None), "output", g.elem_type, ["batch", F])
