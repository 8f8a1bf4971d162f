"""Which output layer a run gets — the full softmax or the adaptive one (:mod:`rnnkit.adaptive`)
— and, for the adaptive softmax, where its clusters are cut.

``--softmax auto`` (the default) takes the adaptive softmax from :data:`AUTO_ADAPTIVE` ids on:
below that the output layer costs little beside the recurrent stack and the full softmax is about
as fast; above it the full softmax's (H × V) product dominates the step (docs/language_model.md).

Cutoffs come from the training text's token counts (ids ordered by decreasing frequency): the
head holds the most frequent tokens making up :data:`COVERAGE` [0] of the training tokens, the
first tail cluster those up to [1], the second the rest.
"""

from __future__ import annotations

import numpy as np

SOFTMAX_CHOICES = ("auto", "full", "adaptive")
AUTO_ADAPTIVE = 1000     # ids (tokens + unknown) from which auto means adaptive: a step of the
                         # default model 1.21x faster there (BPE of the default corpus; 1.10x at
                         # 500 ids, 1.42x at 2,000, 2.87x at 8,000), as good or better in bits/char
                         # on every corpus measured (docs/language_model.md)
COVERAGE = (0.80, 0.97)  # shares of the training tokens the head, and head + first cluster, hold:
                         # on the Chinese dictionary (6,016 ids) a head of 567 ids against 1,060
                         # for (0.90, 0.99), 10% faster a step at no loss in 60 s (docs/language_model.md)


def resolve(choice: str, vocab_size: int) -> str:
    """"full" or "adaptive" for ``--softmax choice`` and ``vocab_size`` ids."""
    if choice == "auto":
        return "adaptive" if vocab_size >= AUTO_ADAPTIVE else "full"
    if choice == "adaptive" and vocab_size < 3:
        raise ValueError(f"--softmax adaptive needs at least 3 ids (a head and a cluster), got {vocab_size}")
    return choice


def choose_cutoffs(counts: np.ndarray, hidden: int, div_value: float = 4.0,
                   coverage: tuple[float, ...] = COVERAGE) -> tuple[int, ...]:
    """Cutoffs c_0 < c_1 < … (each in [1, V − 1]) for ids counted ``counts`` (V,), ids in order of
    decreasing frequency (id 0, the unknown token, may be anything): c_i is the fewest leading ids
    that make up ``coverage[i]`` of the tokens — as many as leave each cluster a projection of
    width ⌊hidden / div_value^k⌋ >= 1."""
    counts = np.asarray(counts, np.float64)
    V = len(counts)
    cum = np.cumsum(counts) / max(counts.sum(), 1.0)
    cuts = sorted({min(max(int(np.searchsorted(cum, c - 1e-12)) + 1, 1), V - 1) for c in coverage})
    clusters = max(1, sum(1 for k in range(1, len(cuts) + 1) if hidden // div_value ** k >= 1))
    return tuple(cuts[:clusters])
