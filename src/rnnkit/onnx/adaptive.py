"""The adaptive softmax (:mod:`rnnkit.adaptive`) as ONNX: every class's log-probability, for
sampling from the exported language model one step at a time.

    lp_h = LogSoftmax(x W_hᵀ [+ b_h])                                  (…, c_0 + K)
    out  = Concat(lp_h[…, :c_0],  LogSoftmax((x P_kᵀ) O_kᵀ) + lp_h[…, c_0 + k − 1]  for k = 1..K)

A softmax of ``out`` is the distribution itself, so a runtime samples from it as from logits.
"""

from __future__ import annotations

from rnnkit.adaptive import AdaptiveLogSoftmaxWithLoss
from rnnkit.onnx.graph import Graph, linear, matmul_t


def adaptive_log_prob(g: Graph, x: str, asm: AdaptiveLogSoftmaxWithLoss, hint: str = "head") -> str:
    """log p(y | x) for every class y over the last axis of ``x`` (any rank)."""
    bias = asm.head.bias.data if asm.head.bias is not None else None
    lp_h = g.op("LogSoftmax", linear(g, x, asm.head.weight.data, bias, hint), axis=-1, hint=f"{hint}_logp")
    c0 = asm.shortlist_size
    last = g.ints([-1])

    def columns(lo: int, hi: int) -> str:
        return g.op("Slice", lp_h, g.ints([lo]), g.ints([hi]), last, hint=f"{hint}_cols")

    parts = [columns(0, c0)]
    for k, pair in enumerate(asm.tail._modules.values()):
        u = matmul_t(g, x, pair._modules["0"].weight.data, f"{hint}_tail{k}_proj")
        z = matmul_t(g, u, pair._modules["1"].weight.data, f"{hint}_tail{k}_out")
        lp = g.op("LogSoftmax", z, axis=-1, hint=f"{hint}_tail{k}_logp")
        parts.append(g.op("Add", lp, columns(c0 + k, c0 + k + 1), hint=f"{hint}_tail{k}"))
    return g.op("Concat", *parts, axis=-1, hint=f"{hint}_log_prob")
