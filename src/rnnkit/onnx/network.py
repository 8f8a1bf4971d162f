"""The network behind the sequence estimators (:class:`rnnkit.models.network.SequenceNet`, and
the ensembles of them the estimators keep) as ONNX:

    p_r = pool(stack(x, lengths), lengths)          (B, D·H)   zero initial states
    a   = Transpose(x) (B, F, T);  a ← Relu(BN(Conv(a)))  per block, 0 at padded steps
    p_c = pool_mean(Transpose(a), lengths)          (B, Cₙ)
    z   = [p_r, p_c] W_outᵀ + b                     (B, K)     dropout is the identity at inference
    ensemble: z = (1/M) Σ_m z_m

The body (:func:`sequence_net`) is what the estimator exporters build on; the registered exporter
gives the network alone the interface ``input`` (T, B, I) (+ ``lengths``) → ``output`` (B, K).
"""

from __future__ import annotations

import numpy as np

from rnnkit.models.ensemble import NetEnsemble
from rnnkit.models.fcn import ConvBranch
from rnnkit.models.network import SequenceNet
from rnnkit.norm.between import NormedStack
from rnnkit.onnx.between import normed_stack, normed_stack_spec
from rnnkit.onnx.conv_norm import batch_norm, conv1d, relu
from rnnkit.onnx.graph import Graph, linear
from rnnkit.onnx.interface import batch_size, lengths_input, zero_states
from rnnkit.onnx.pooling import pool
from rnnkit.onnx.recurrent import stack
from rnnkit.onnx.registry import register_exporter
from rnnkit.onnx.spec import stack_spec


def sequence_net(g: Graph, net: SequenceNet | NetEnsemble, x: str, lengths: str | None) -> str:
    """Network outputs z (B, K) for x (T, B, I) time-major and lengths (B,) int64 or None."""
    if isinstance(net, NetEnsemble):
        zs = [_member(g, m, x, lengths) for m in net.members]
        if len(zs) == 1:
            return zs[0]
        return g.op("Div", g.op("Sum", *zs, hint="ensemble_sum"), g.const(np.array(float(len(zs))), "members"),
                    hint="ensemble")
    return _member(g, net, x, lengths)


def _member(g: Graph, net: SequenceNet, x: str, lengths: str | None) -> str:
    parts = []
    if net.cfg.recurrent:
        normed = isinstance(net.rnn, NormedStack)
        spec = normed_stack_spec(net.rnn) if normed else stack_spec(net.rnn)
        states = zero_states(g, spec, batch_size(g, x, 1))
        h, _ = normed_stack(g, net.rnn, x, states, lengths) if normed else stack(g, spec, x, states, lengths)  # (T, B, D·H)
        parts.append(pool(g, net.pool, h, lengths))                                     # (B, D·H)
    if net.cfg.conv_filters:
        parts.append(conv_branch(g, net.fcn, x, lengths))                               # (B, Cₙ)
    p = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1, hint="branches")
    bias = None if net.head.bias is None else net.head.bias.data
    return linear(g, p, net.head.weight.data, bias, "head")                             # (B, K)


def conv_branch(g: Graph, fcn: ConvBranch, x: str, lengths: str | None) -> str:
    """The convolutional branch: blocks on x (T, B, F) read channels first, then the mean over
    the valid steps (the padded ones are 0 after every block, as in rnnkit)."""
    a = g.op("Transpose", x, perm=[1, 2, 0], hint="fcn_input")                         # (B, F, T)
    for conv, bn, _ in fcn.blocks:
        a = relu(g, batch_norm(g, bn, conv1d(g, conv, a), lengths))                     # (B, Cₗ, T)
    return pool(g, fcn.pool, g.op("Transpose", a, perm=[2, 0, 1], hint="fcn_time_major"), lengths)


@register_exporter(SequenceNet)
def export_sequence_net(g: Graph, net: SequenceNet, lengths: bool) -> None:
    x = g.add_input("input", g.elem_type, ["time", "batch", net.cfg.input_size])
    z = sequence_net(g, net, x, lengths_input(g) if lengths else None)
    g.add_output(z, "output", g.elem_type, ["batch", net.cfg.output_size])
