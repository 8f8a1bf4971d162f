"""Dropout inside the recurrence: variational recurrent dropout and zoneout, as masks.

Both are options of every cell kind (``recurrent_dropout=p``, ``zoneout=p``: the spec's section
"Dropout inside the recurrence"); neither needs kernels of its own. For one direction of one layer
over one sequence, in training mode:

- recurrent dropout (Gal & Ghahramani 2016): one mask per sequence, drawn once,
  ``m_h ~ Bernoulli(1 − p) / (1 − p)`` of shape (B, H_out), on the state that *enters* the
  recurrent products: ``h_{t-1} W_hhᵀ`` becomes ``h_in W_hhᵀ`` with ``h_in = m_h ⊙ h_{t-1}``; the
  carried state is not masked (the GRU's ``z ⊙ h_{t-1}`` reads h_{t-1} itself; Cho's GRU reads
  ``r ⊙ h_in`` in its product). The kernels take ``h_in`` (:class:`rnnkit.kernels.base.Entering`);
  backward, the gradient through the products reaches h_{t-1} times m_h, and ``dW_hh = DAᵀ H_in``.
- zoneout (Krueger et al. 2017): per step and unit a keep mask ``k_t ~ Bernoulli(p)``, one for h
  and (LSTM) one for c: ``s_t = k_t ⊙ s_{t-1} + (1 − k_t) ⊙ s̃_t`` for each part s of the state,
  s̃_t the cell's ordinary update. The same rule on any state, applied after the cell's step, so
  backward splits the gradient reaching s_t: ``(1 − k_t) ⊙ ds_t`` enters the cell's step and
  ``k_t ⊙ ds_t`` goes straight to s_{t-1}.

In eval mode recurrent dropout is the identity and zoneout its expectation, ``k_t = p``
everywhere: ``s_t = p·s_{t-1} + (1 − p)·s̃_t``. Padded steps (``lengths``) carry the state
unchanged, as always.

The masks are drawn from the layer's ``rng`` (or the call's), per layer and direction in the
stack's order, each direction's in a fixed order: m_h (B, H_out), then the keep masks of h and c,
(T, B, n) each. The same generator state gives the same masks, so a forward-backward pair can be
checked by finite differences and a cell stepped through a sequence can be given the layer's
masks (:meth:`Masks.at`). Each mask is :func:`bernoulli`'s: 32 random bits per entry, taken from
the generator's raw 64-bit words (two entries a word), compared with ⌊p·2³²⌋ — about twice as
fast as ``rng.random(shape) < p`` (a zoneout mask of (50, 32, 256): 0.7 ms of CPU time against
1.2 ms, on the loaded test machine), which would cost an Elman RNN's training step of that size
3% more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def random_bits(rng, shape: tuple[int, ...], batch_axis: int) -> np.ndarray:
    """uint32 random bits of ``shape``: the halves of ``rng.bit_generator.random_raw`` words, in
    order, low half first on every CPU. A sharded generator (:class:`rnnkit.distributed.ShardedRandom`,
    one MPI rank's streams of a batch along ``batch_axis``) gives its share of the whole batch's
    draw, so the ranks' masks are the single process's."""
    shard = getattr(rng, "random_bits", None)
    if shard is not None:
        return shard(shape, batch_axis)
    n = int(np.prod(shape))
    words = rng.bit_generator.random_raw((n + 1) // 2)                  # uint64, two entries each
    return words.astype("<u8", copy=False).view("<u4")[:n].reshape(shape)


def bernoulli(rng, shape: tuple[int, ...], p: float, batch_axis: int) -> np.ndarray:
    """A bool array of ``shape``, each entry True with probability p (to 2⁻³²): each entry's 32
    :func:`random_bits` compared with ⌊p·2³²⌋."""
    return random_bits(rng, shape, batch_axis) < np.uint32(min(int(p * 2 ** 32), 2 ** 32 - 1))


@dataclass(frozen=True)
class Masks:
    """The masks of one direction of one layer over one sequence of T steps."""

    recurrent: np.ndarray | None              # (B, H_out) m_h ∈ {0, 1/(1 − p)}; None: no recurrent dropout
    keep: tuple[np.ndarray, ...] | None       # per state part (T, B, n): k_t ∈ {0, 1}, or p in eval; None: no zoneout

    def at(self, t: int) -> "Masks":
        """The masks of step t alone (a sequence of one step): m_h, and the keep masks' row t."""
        return Masks(self.recurrent, None if self.keep is None else tuple(k[t:t + 1] for k in self.keep))


@dataclass(frozen=True)
class InnerDropout:
    """The two probabilities of a layer or cell, and how they become masks."""

    recurrent_dropout: float = 0.0    # 0: the recurrent products read h_{t-1} itself
    zoneout: float = 0.0              # 0: every state is the cell's update

    def active(self, training: bool) -> bool:
        """Whether a call in this mode has masks (eval mode: only zoneout's expectation)."""
        return self.zoneout > 0 or (training and self.recurrent_dropout > 0)

    def draw(self, training: bool, rng: np.random.Generator, steps: int, batch: int, sizes: tuple[int, ...],
             dtype) -> Masks | None:
        """The masks of one direction over ``steps`` steps of ``batch`` sequences whose state parts
        have ``sizes`` (h first); None when this mode has none."""
        if not self.active(training):
            return None
        dtype = np.dtype(dtype)
        recurrent = None
        if training and self.recurrent_dropout > 0:
            p = self.recurrent_dropout
            recurrent = (~bernoulli(rng, (batch, sizes[0]), p, batch_axis=0)).astype(dtype) / dtype.type(1 - p)
        keep = None
        if self.zoneout > 0 and training:
            keep = tuple(bernoulli(rng, (steps, batch, n), self.zoneout, batch_axis=1).astype(dtype) for n in sizes)
        elif self.zoneout > 0:
            keep = tuple(np.full((steps, batch, n), self.zoneout, dtype) for n in sizes)
        return Masks(recurrent, keep)


def check_masks(masks, noise: InnerDropout, training: bool, batch: int, sizes: tuple[int, ...]) -> Masks:
    """``masks`` given to a cell's call: a :class:`Masks` of one step with the arrays that
    ``noise.draw(training, rng, 1, batch, sizes, dtype)`` would give, of the same shapes."""
    if not isinstance(masks, Masks):
        raise TypeError(f"masks must be a rnnkit.inner_dropout.Masks (draw_masks(...).at(t)), "
                        f"got {type(masks).__name__}")
    recurrent = (batch, sizes[0]) if training and noise.recurrent_dropout > 0 else None
    keep = [(1, batch, n) for n in sizes] if noise.zoneout > 0 else []
    parts = [("masks.recurrent", masks.recurrent, recurrent)]
    parts += [(f"masks.keep[{k}]", None if masks.keep is None or k >= len(masks.keep) else masks.keep[k], shape)
              for k, shape in enumerate(keep)]
    if masks.keep is not None and not keep:
        parts.append(("masks.keep", masks.keep, None))
    for name, given, shape in parts:
        if (given is None) != (shape is None) or (shape is not None and np.shape(given) != shape):
            raise ValueError(f"{name} must be {'None' if shape is None else f'of shape {shape}'} for this "
                             f"cell in {'training' if training else 'eval'} mode (recurrent_dropout="
                             f"{noise.recurrent_dropout}, zoneout={noise.zoneout}, batch {batch}), got "
                             f"{'None' if given is None else f'shape {np.shape(given)}'}")
    return masks
