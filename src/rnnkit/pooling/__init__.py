"""Sequence pooling: a recurrent layer's outputs (T, B, F) to one vector per sequence (B, F).

``LastStep``, ``MaxPool``, ``MeanPool`` and ``AttentionPool`` each take optional ``lengths``
(padded steps never reach the output) and have a hand-written ``backward(dout)``. The equations
are in each module's docstring and derived in docs/pooling.md.
"""

from rnnkit.checks import check_choice
from rnnkit.pooling.attention import AttentionPool
from rnnkit.pooling.base import SequencePool
from rnnkit.pooling.reduce import LastStep, MaxPool, MeanPool

POOLINGS = ("last", "mean", "max", "attention")


def make_pool(name: str, features: int, *, bidirectional: bool = False, dtype=None, rng=None) -> SequencePool:
    """The pooling module called ``name`` (one of POOLINGS) for ``features``-wide time-major input."""
    check_choice("pooling", name, POOLINGS)
    kw = {} if dtype is None else {"dtype": dtype}
    if name == "last":
        return LastStep(bidirectional, **kw)
    if name == "mean":
        return MeanPool(**kw)
    if name == "max":
        return MaxPool(**kw)
    return AttentionPool(features, rng=rng, **kw)


__all__ = ["POOLINGS", "AttentionPool", "LastStep", "MaxPool", "MeanPool", "SequencePool", "make_pool"]
