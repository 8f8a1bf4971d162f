"""The network behind the sequence estimators (:class:`rnnkit.models.network.SequenceNet`) as ONNX:

    h = stack(x, lengths)         (T, B, D·H)   zero initial states
    p = pool(h, lengths)          (B, D·H)
    z = p W_outᵀ + b              (B, K)        dropout is the identity at inference

The body (:func:`sequence_net`) is what the estimator exporters build on; the registered exporter
gives the network alone the interface ``input`` (T, B, I) (+ ``lengths``) → ``output`` (B, K).
"""

from __future__ import annotations

from rnnkit.models.network import SequenceNet
from rnnkit.onnx.graph import Graph, linear
from rnnkit.onnx.interface import batch_size, lengths_input, zero_states
from rnnkit.onnx.pooling import pool
from rnnkit.onnx.recurrent import stack
from rnnkit.onnx.registry import register_exporter
from rnnkit.onnx.spec import stack_spec


def sequence_net(g: Graph, net: SequenceNet, x: str, lengths: str | None) -> str:
    """Network outputs z (B, K) for x (T, B, I) time-major and lengths (B,) int64 or None."""
    spec = stack_spec(net.rnn)
    h, _ = stack(g, spec, x, zero_states(g, spec, batch_size(g, x, 1)), lengths)        # (T, B, D·H)
    p = pool(g, net.pool, h, lengths)                                                   # (B, D·H)
    bias = None if net.head.bias is None else net.head.bias.data
    return linear(g, p, net.head.weight.data, bias, "head")                             # (B, K)


@register_exporter(SequenceNet)
def export_sequence_net(g: Graph, net: SequenceNet, lengths: bool) -> None:
    x = g.add_input("input", g.elem_type, ["time", "batch", net.cfg.input_size])
    z = sequence_net(g, net, x, lengths_input(g) if lengths else None)
    g.add_output(z, "output", g.elem_type, ["batch", net.cfg.output_size])
