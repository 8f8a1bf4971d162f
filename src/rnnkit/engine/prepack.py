"""Packed weights kept from call to call while the weights stay the same, as onnxruntime
pre-packs its initializers.

An inference call of a small layer (T = 100, B = 1, H = 32) spends about as long packing W_ih and
W_hh into the micro-kernel's panels (:mod:`rnnkit.engine.pack`, :func:`rnnkit.engine.gemm.pack`)
as in its recurrence. :data:`PACKED` keys an entry by where the weights live (address, shape,
strides, dtype, layout) and keeps a copy of them beside their panels; an entry serves a call only
if the weights still hold the copy's bits, so weights changed in place (an optimizer step,
``load_state_dict``, ``p.data[...] = ...``) or a new array at a freed address are packed anew and
a result never depends on what was kept. The comparison stops at the first difference: a training
step, whose weights always changed, pays a read of a few values and the copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from rnnkit.engine.jit import jit

REUSE_BYTES = 1 << 17            # weights up to this size keep their panels from call to call: a
                                 # layer of 64 units (128 KiB at float64), whose packing costs about
                                 # what its recurrence does over 100 steps at B = 1; beyond, the
                                 # comparison and the copy would cost what packing does
REUSE_ENTRIES = 64               # packed weights kept at most (the least recently used go first)
# bfloat16 panels of an inference call (under autocast and no_grad) are kept for weights up to
# 64 MiB (an LSTM of 2048 units' W_hh): packing and pairing cost ~2.5 ns per weight (11 ms for the
# 4M weights of H = 1024, a quarter of the call) against ~0.5 ns for the comparison, and an
# inference model's weights stay as they are. A training call's weights change every step, so it
# keeps only small ones (PACKED): keeping a large copy then costs its first-touch page faults too.
INFERENCE_BYTES, INFERENCE_ENTRIES = 1 << 26, 8


@jit
def _same_bits(a, b):
    """True when the two arrays of one shape hold the same bit patterns (NaN and −0 included):
    a packed copy of ``b`` is then a packed copy of ``a``."""
    a, b = a.ravel(), b.ravel()
    for k in range(a.size):
        if a[k] != b[k]:
            return False
    return True


def _bits(a: np.ndarray) -> np.ndarray:
    """An array's bit patterns as unsigned integers of its width (compared exactly, NaN included)."""
    return a.view(np.uint32 if a.itemsize == 4 else np.uint64)


class PackedCache:
    """Panels of small weights, each beside a copy of the weights it was packed from. Panels
    handed out are shared between calls: the engine only reads them."""

    def __init__(self, max_bytes: int = REUSE_BYTES, entries: int = REUSE_ENTRIES) -> None:
        self.max_bytes, self.entries = max_bytes, entries
        self._kept: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def keeps(self, w: np.ndarray) -> bool:
        """Whether the panels of ``w`` are kept between calls: the size rule, said once."""
        return w.nbytes <= self.max_bytes

    def get(self, w: np.ndarray, layout, pack: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The panels of ``w`` in ``layout`` (a hashable name of how ``pack(w)`` lays it out): kept
        ones if its bits are unchanged since, else ``pack(w)``'s, kept when ``w`` is small."""
        if not self.keeps(w):
            return pack(w)
        key = (w.__array_interface__["data"][0], w.shape, w.strides, w.dtype.str, layout)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and _same_bits(_bits(kept[0]), _bits(w)):
                self._kept.move_to_end(key)
                return kept[1]
        panels = pack(w)
        with self._lock:
            self._kept[key] = (w.copy(), panels)
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)
        return panels

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


PACKED = PackedCache()
INFERENCE_PACKED = PackedCache(INFERENCE_BYTES, INFERENCE_ENTRIES)


def kept(w: np.ndarray, layout, pack: Callable[[np.ndarray, bool], np.ndarray], *, inference: bool = False):
    """The panels ``pack(w, own)`` of ``w`` from the cache that keeps them: :data:`INFERENCE_PACKED`
    for ``inference`` calls, else :data:`PACKED` (``own``: whether the panels will be kept, so
    must be new arrays rather than the per-call pool's)."""
    cache = INFERENCE_PACKED if inference else PACKED
    return cache.get(w, layout, lambda w: pack(w, cache.keeps(w)))


def owned(w: np.ndarray) -> bool:
    """Whether panels of ``w`` are kept (so must be a new array, not one of the per-call pool's)."""
    return PACKED.keeps(w)
