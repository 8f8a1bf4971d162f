"""One step of a cell for a few sequences — streaming inference — compiled, weights as they lie.

A layer call packs its recurrent weights once and spreads that over T steps (:mod:`.layer`); a single
step cannot, so here the weights are read where they are: the pre-activation of gate g of unit u
is row g·H + u of W_ih times x plus row g·H + u of W_hh times h, a dot product over contiguous
memory; then the cell's element-wise step, the very functions the whole-sequence engine uses
(``cell_forward`` and friends), on a vector of units. For a batch of one this reads every weight
once, which is all a step can do; large cells split their units between threads.

The equations are those of :mod:`rnnkit.kernels` (see the cells' docstrings).
"""

from __future__ import annotations

import numpy as np

from rnnkit.engine.activations import sigmoid, tanh
from rnnkit.engine.jit import jit
from rnnkit.engine.lstm import cell_forward
from rnnkit.engine.schedule import job_record, plan, register_tasks
from rnnkit.engine.vector import fixed_lanes_of, fixed_load, fixed_zero, fma, lanes_of, vload, vstore, vsum

LSTM, GRU, GRU_CHO, RNN_TANH, RNN_RELU = 0, 1, 2, 3, 4          # which cell a StepJob steps
# Below this many weights (W_ih and W_hh together) a step stays on one thread: reading them takes
# a few microseconds, about what waking a second thread costs.
MIN_SHARED_WEIGHTS = 1 << 18


@jit(inline=True)
def dot8(w, r, last, v, vo, a):
    """Adds W[r + m] · v[vo:] into a[m] for the 8 consecutive rows r … r + 7 (rows past ``last``
    repeat it): eight chains of multiply-adds in flight, so that the loads of the weights, which
    a single step can read only once, keep the memory system busy. Lane l of a[m] sums the products
    k ≡ l (mod W) in order and ``matvec`` adds the lanes in a fixed order (``vsum``): W is the same
    on every CPU (``fixed_load``), so the dot products are too."""
    K, W = w.shape[1], fixed_lanes_of(w)
    o0, o1, o2, o3 = r * K, min(r + 1, last) * K, min(r + 2, last) * K, min(r + 3, last) * K
    o4, o5, o6, o7 = min(r + 4, last) * K, min(r + 5, last) * K, min(r + 6, last) * K, min(r + 7, last) * K
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    for k in range(0, K - K % W, W):              # whole vectors: loads with every lane set
        x = fixed_load(v, vo + k, W)
        a0 = fma(fixed_load(w, o0 + k, W), x, a0)
        a1 = fma(fixed_load(w, o1 + k, W), x, a1)
        a2 = fma(fixed_load(w, o2 + k, W), x, a2)
        a3 = fma(fixed_load(w, o3 + k, W), x, a3)
        a4 = fma(fixed_load(w, o4 + k, W), x, a4)
        a5 = fma(fixed_load(w, o5 + k, W), x, a5)
        a6 = fma(fixed_load(w, o6 + k, W), x, a6)
        a7 = fma(fixed_load(w, o7 + k, W), x, a7)
    k = K - K % W
    if k < K:
        n = K - k
        x = fixed_load(v, vo + k, n)
        a0 = fma(fixed_load(w, o0 + k, n), x, a0)
        a1 = fma(fixed_load(w, o1 + k, n), x, a1)
        a2 = fma(fixed_load(w, o2 + k, n), x, a2)
        a3 = fma(fixed_load(w, o3 + k, n), x, a3)
        a4 = fma(fixed_load(w, o4 + k, n), x, a4)
        a5 = fma(fixed_load(w, o5 + k, n), x, a5)
        a6 = fma(fixed_load(w, o6 + k, n), x, a6)
        a7 = fma(fixed_load(w, o7 + k, n), x, a7)
    return a0, a1, a2, a3, a4, a5, a6, a7


@jit(inline=True)
def matvec(w, rows, v, vo, out, oo, u0, n, w2, v2, vo2, accumulate):
    """out[oo + u] (+)= W[rows + u] · v[vo:] (+ W2[rows + u] · v2[vo2:] when w2 has rows) for
    u0 ≤ u < u0 + n: a block of consecutive rows of one gate, eight at a time."""
    last = rows + u0 + n - 1
    z = fixed_zero(w)
    two = w2.shape[0] > 0
    for u in range(u0, u0 + n, 8):
        a = dot8(w, rows + u, last, v, vo, (z, z, z, z, z, z, z, z))
        if two:
            a = dot8(w2, rows + u, last, v2, vo2, a)
        for m in range(8):                            # unrolled: a's vectors stay in registers
            if u + m < u0 + n:
                out[oo + u + m] = vsum(a[m]) + (out[oo + u + m] if accumulate else 0.0)


@job_record
class StepJob:
    """One step of ``step_kind`` for rows x (B, I), states h (B, H) [, c], into h_new [, c_new]."""

    step_kind: int
    w_ih: np.ndarray            # (G·H, I)
    w_hh: np.ndarray            # (G·H, H)
    b_ih: np.ndarray            # (G·H,) zeros without bias
    b_hh: np.ndarray
    w_ci: np.ndarray            # (H,) LSTM peepholes, or (0,)
    w_cf: np.ndarray
    w_co: np.ndarray
    x: np.ndarray               # (B, I)
    h: np.ndarray               # (B, H)
    c: np.ndarray               # (B, H) the LSTM's cell state, else (0, 0)
    h_new: np.ndarray
    c_new: np.ndarray
    pre: np.ndarray             # (B, 4, H) pre-activations (the GRU's n parts, the Cho GRU's r ⊙ h)
    units: int                  # units per chunk
    # the plan: 1 step; chunks per phase (the Cho GRU needs r of every unit before n); no scratch


@jit(inline=True)
def lstm_units(job, b, u0, n):
    """The LSTM step of row b for units u0 … u0 + n − 1: the gates' rows, then the cell."""
    H, I = job.c.shape[1], job.x.shape[1]
    pre = job.pre.reshape(-1)
    row = b * 4 * H
    for g in range(4):                                # pre[b, g, u] = W_ih[gH+u]·x + W_hh[gH+u]·h
        matvec(job.w_ih, g * H, job.x, b * I, pre, row + g * H, u0, n, job.w_hh, job.h, b * H, False)
    L = lanes_of(job.c)
    peephole = job.w_ci.shape[0] > 0
    for j in range(u0, u0 + n, L):
        k = min(L, u0 + n - j)
        a_i = vload(pre, row + j, k) + vload(job.b_ih, j, k) + vload(job.b_hh, j, k)
        a_f = vload(pre, row + H + j, k) + vload(job.b_ih, H + j, k) + vload(job.b_hh, H + j, k)
        a_g = vload(pre, row + 2 * H + j, k) + vload(job.b_ih, 2 * H + j, k) + vload(job.b_hh, 2 * H + j, k)
        a_o = vload(pre, row + 3 * H + j, k) + vload(job.b_ih, 3 * H + j, k) + vload(job.b_hh, 3 * H + j, k)
        c_prev = vload(job.c, b * H + j, k)
        w_ci = vload(job.w_ci, j, k) if peephole else c_prev
        w_cf = vload(job.w_cf, j, k) if peephole else c_prev
        w_co = vload(job.w_co, j, k) if peephole else c_prev
        i, f, g, o, c, tc = cell_forward(a_i, a_f, a_g, a_o, c_prev, w_ci, w_cf, w_co, peephole)
        vstore(job.c_new, b * H + j, c, k)
        vstore(job.h_new, b * H + j, o * tc, k)


@jit(inline=True)
def gru_units(job, b, u0, n, phase):
    """The GRU step of row b for units u0 … u0 + n − 1. reset_after: one phase. Cho: phase 0 forms
    r, z, x W_inᵀ and r ⊙ h_{t-1}; phase 1 adds (r ⊙ h_{t-1}) W_hnᵀ, forms n and h_t."""
    H, I = job.h.shape[1], job.x.shape[1]
    pre = job.pre.reshape(-1)
    row, L = b * 4 * H, lanes_of(job.h)
    none = job.w_hh[:0]
    cho = job.step_kind == GRU_CHO
    if phase == 0:
        for g in range(2):                                          # r, z: both matrices
            matvec(job.w_ih, g * H, job.x, b * I, pre, row + g * H, u0, n, job.w_hh, job.h, b * H, False)
        matvec(job.w_ih, 2 * H, job.x, b * I, pre, row + 2 * H, u0, n, none, job.h, 0, False)   # x W_inᵀ
        if not cho:
            matvec(job.w_hh, 2 * H, job.h, b * H, pre, row + 3 * H, u0, n, none, job.h, 0, False)  # h W_hnᵀ
        for j in range(u0, u0 + n, L):
            k = min(L, u0 + n - j)
            r = sigmoid(vload(pre, row + j, k) + vload(job.b_ih, j, k) + vload(job.b_hh, j, k))
            z = sigmoid(vload(pre, row + H + j, k) + vload(job.b_ih, H + j, k) + vload(job.b_hh, H + j, k))
            vstore(pre, row + j, r, k)
            vstore(pre, row + H + j, z, k)
            if cho:
                vstore(pre, row + 3 * H + j, r * vload(job.h, b * H + j, k), k)     # r ⊙ h_{t-1}
        if cho:
            return
    else:                                                           # Cho: a_n += (r ⊙ h_{t-1}) W_hnᵀ
        matvec(job.w_hh, 2 * H, pre, row + 3 * H, pre, row + 2 * H, u0, n, none, job.h, 0, True)
    for j in range(u0, u0 + n, L):
        k = min(L, u0 + n - j)
        r, z = vload(pre, row + j, k), vload(pre, row + H + j, k)
        a_n = vload(pre, row + 2 * H + j, k) + vload(job.b_ih, 2 * H + j, k)
        b_hn = vload(job.b_hh, 2 * H + j, k)
        g = tanh(a_n + b_hn) if cho else tanh(a_n + r * (vload(pre, row + 3 * H + j, k) + b_hn))
        h_prev = vload(job.h, b * H + j, k)
        vstore(job.h_new, b * H + j, g + z * (h_prev - g), k)


@jit(inline=True)
def rnn_units(job, b, u0, n):
    H, I = job.h.shape[1], job.x.shape[1]
    pre = job.pre.reshape(-1)
    row, L = b * 4 * H, lanes_of(job.h)
    matvec(job.w_ih, 0, job.x, b * I, pre, row, u0, n, job.w_hh, job.h, b * H, False)
    for j in range(u0, u0 + n, L):
        k = min(L, u0 + n - j)
        a = vload(pre, row + j, k) + vload(job.b_ih, j, k) + vload(job.b_hh, j, k)
        vstore(job.h_new, b * H + j, max(a, 0.0) if job.step_kind == RNN_RELU else tanh(a), k)


@jit(refcount=False)
def step_chunk(job, step, phase, chunk, worker):
    """Every row, units chunk·units … (chunk + 1)·units − 1, of one phase."""
    B, H = job.h.shape
    first = chunk * job.units
    n = min(H, first + job.units) - first
    for b in range(B):
        if job.step_kind == LSTM:
            lstm_units(job, b, first, n)
        elif job.step_kind == GRU or job.step_kind == GRU_CHO:
            gru_units(job, b, first, n, phase)
        else:
            rnn_units(job, b, first, n)


@jit
def step_here(step_kind, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co, x, h, c, h_new, c_new, pre):
    """The whole step on the calling thread (arrays as they are: no record to build in Python)."""
    phases = 2 if step_kind == GRU_CHO else 1
    job = StepJob(step_kind, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co, x, h, c, h_new, c_new, pre,
                  h.shape[1], 1, np.ones(phases, np.int64), np.zeros(0, np.int64), np.empty((1, 0, 0), x.dtype))
    for phase in range(phases):
        step_chunk(job, 0, phase, 0, 0)


register_tasks({StepJob: step_chunk})


def step_job(step_kind: int, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co, x, h, c, h_new, c_new,
             workers: int) -> StepJob:
    """The record of one step shared by ``workers`` threads, its units cut into 4 chunks per thread."""
    B, H = h.shape
    phases = 2 if step_kind == GRU_CHO else 1
    lanes = 64 // x.itemsize
    units = max(lanes, -(-H // (4 * workers * lanes)) * lanes)
    chunks = -(-H // units)
    return StepJob(step_kind, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co, x, h, c, h_new, c_new,
                   np.empty((B, 4, H), x.dtype), units,
                   *plan(1, [chunks] * phases, workers, np.empty((workers, 0, 0), x.dtype)))
