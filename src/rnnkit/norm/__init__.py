"""Normalisation layers with PyTorch's names and semantics: ``BatchNorm1d`` (with optional lengths
for padded batches) and ``LayerNorm``; both standardise through :mod:`rnnkit.norm.moments`.
The derivations are in docs/conv_norm.md."""

from rnnkit.norm.batch import BatchNorm1d
from rnnkit.norm.layer import LayerNorm

__all__ = ["BatchNorm1d", "LayerNorm"]
