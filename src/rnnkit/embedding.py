"""Embedding lookup: ``y = W[idx]``, backward ``dW[idx] += dy`` (rows of repeated ids add up)."""

from __future__ import annotations

import numpy as np

from rnnkit.checks import make_rng
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.module import Module
from rnnkit.ranges import COUNT


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; weight ~ N(0, 1) as PyTorch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.num_embeddings = COUNT.check("num_embeddings", num_embeddings)
        self.embedding_dim = COUNT.check("embedding_dim", embedding_dim)
        self.weight = self.register_parameter(
            "weight", make_rng(rng).standard_normal((num_embeddings, embedding_dim)))
        self._idx: np.ndarray | None = None

    def __call__(self, idx):
        return self.forward(idx)

    def forward(self, idx) -> np.ndarray:
        """idx: integer array of any shape; returns idx.shape + (embedding_dim,)."""
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: idx must be an integer array, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: idx must lie in [0, {self.num_embeddings}), "
                             f"got min {idx.min()} and max {idx.max()}")
        self._idx = idx if is_grad_enabled() else None
        return self.weight.data[idx]

    def backward(self, dout: np.ndarray) -> None:
        """Adds the gradient into ``weight.grad``; the integer input has no gradient."""
        if self._idx is None:
            raise RuntimeError("Embedding.backward: no forward call with gradients enabled")
        ids = self._idx.ravel()
        if ids.size == 0:
            return
        rows = dout.reshape(-1, self.embedding_dim)
        # Group the rows by id (a stable sort keeps their order) and sum each group in one pass;
        # several times faster than np.add.at's element-by-element scatter.
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        self.weight.grad[sorted_ids[starts]] += np.add.reduceat(rows[order], starts, axis=0)
