"""Recurrent weights packed into the panels the micro-kernel reads: once per call, and reused
from call to call while the weights stay the same (small layers, where packing costs as much as
the recurrence: :mod:`rnnkit.engine.prepack`).

Forward, the step's product h_{t-1} W_hhᵀ is cut by hidden units: panel p holds the columns of
*every gate* for units p·U … p·U + U − 1, side by side ([i | f | g | o] for the LSTM), so the tile
that computes it leaves all the pre-activations of those units in registers and the cell's
element-wise step can follow at once, while they are hot (as oneDNN's brgemm RNN does). Backward,
dh_{t-1} = da_t W_hh is cut by columns of W_hh, plain panels (:func:`rnnkit.engine.gemm.pack`).
"""

from __future__ import annotations

import numba
import numpy as np

from rnnkit.engine import workspace
from rnnkit.engine.prepack import PACKED, owned
from rnnkit.engine.isa import TileShape, tile_shape
from rnnkit.engine.jit import jit
from rnnkit.engine.schedule import region_threads

PARALLEL_PACK = 1 << 20          # weights from which packing is shared between the threads


def gate_tile(gates: int) -> TileShape:
    """The tile that computes ``gates`` gates of a panel of units: a vector of units per gate for
    three or four gates (GRU, LSTM); two vectors for one or two."""
    return tile_shape(max(2, gates))


def units_per_panel(gates: int, dtype) -> int:
    """U: the hidden units whose ``gates`` columns fill one panel of the tile's width."""
    return gate_tile(gates).width(dtype) // gates


@jit(inline=True)
def _pack_gate_panel(w_hh, gates, units, panels, p):
    """panels[p, k, g·U + u] = W_hh[g·H + p·U + u, k]; zero past H and past G·U columns."""
    n_panels, K, width = panels.shape
    H = w_hh.shape[0] // gates
    n = min(units, H - p * units)
    for k in range(K):                                # one panel, written row by row
        out = panels[p, k]
        out[:] = 0.0
        for g in range(gates):
            for u in range(n):
                out[g * units + u] = w_hh[g * H + p * units + u, k]


@jit
def _pack_gates(w_hh, gates, units, panels):
    for p in range(panels.shape[0]):
        _pack_gate_panel(w_hh, gates, units, panels, p)


@numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _pack_gates_parallel(w_hh, gates, units, panels, workers):
    """The same, panel p packed by thread p mod workers (a large layer's W_hh: 16 MiB at H=1024)."""
    for w in numba.prange(workers):
        for p in range(w, panels.shape[0], workers):
            _pack_gate_panel(w_hh, gates, units, panels, p)




def pack_gates(w_hh: np.ndarray, gates: int) -> np.ndarray:
    """W_hh (G·H, K) as (ceil(H / U), K, NR) panels: panel p, column g·U + u is W_hh[g·H + p·U + u].

    Small weights come from :data:`PACKED` when unchanged since their last packing: the panels are
    then shared between calls and are only read."""
    return PACKED.get(w_hh, ("gates", gates), lambda w: _pack(w, gates))


def _pack(w_hh: np.ndarray, gates: int) -> np.ndarray:
    units = units_per_panel(gates, w_hh.dtype)
    H = w_hh.shape[0] // gates
    shape = (-(-H // units), w_hh.shape[1], gate_tile(gates).width(w_hh.dtype))
    # kept panels are the cache's alone; the others come from the pool like every per-call array
    panels = (workspace.aligned_empty if owned(w_hh) else workspace.empty)(shape, w_hh.dtype)
    workers = region_threads(w_hh.size, PARALLEL_PACK)
    if workers > 1:
        _pack_gates_parallel(w_hh, gates, units, panels, workers)
    else:
        _pack_gates(w_hh, gates, units, panels)
    return panels
