"""What the engine's layer-normalised cells share (:mod:`.ln_lstm`, :mod:`.ln_gru`, :mod:`.ln_rnn`).

The equations are :mod:`rnnkit.kernels.layer_norm`'s: v̂ = (v − μ) r, r = 1/√(var + ε) over all of
a row's values, and LN⁻(dv̂; v̂, r) = r (dv̂ − mean dv̂ − v̂ mean(dv̂ v̂)) back.

*Inside a step* the row a panel computes is only part of the row the statistics are over (the
G·H pre-activations of the recurrent product, the H units of the LSTM's cell state). Each panel
adds up its own part, ``(Σ v, Σ v²)`` — or, backward, ``(Σ dv̂, Σ dv̂ ⊙ v̂)`` — into its own slot of
a (panels, B, 2) float64 array, and whoever needs μ and r adds the slots in panel order
(:func:`row_moments`): the same sums whatever the threads, no atomics, and a panel's work is all
it has to wait for. float64 sums of the partial sums keep var = E[v²] − μ² accurate for float32
values; float64 values of a recurrent product have |μ| of the order of σ, so it is there too.

*Over all steps at once*: the input product's normalisation before the recurrence
(:func:`normalise_rows`), and after it, in one pass that reads DA once, its gradient with the
column sums that give both products' gains' and biases' gradients (:func:`products_backward`);
each parallel over rows, in blocks whose sums are added in a fixed order (the same result on any
number of threads).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from rnnkit.engine.jit import jit
from rnnkit.engine.layer import Jobs
from rnnkit.engine.schedule import region_threads
from rnnkit.engine.vector import lanes_of, vload, vstore, vsum
from rnnkit.kernels.base import flat

EPS = 1e-5                       # as rnnkit.kernels.layer_norm (PyTorch's LayerNorm)
SUM_BLOCKS = 16                  # the row blocks of column_sums: fixed, so the sums are too


@jit(inline=True)
def row_moments(part, b, count):
    """μ and r = 1/√(var + ε) of row b from the panels' slots part[p, b] = (Σ v, Σ v²)."""
    s, q = 0.0, 0.0
    for p in range(part.shape[0]):
        s += part[p, b, 0]
        q += part[p, b, 1]
    mu = s / count
    var = max(q / count - mu * mu, 0.0)
    return mu, 1.0 / math.sqrt(var + EPS)


@jit(inline=True)
def row_means(part, b, count):
    """mean dv̂ and mean(dv̂ ⊙ v̂) of row b from the panels' slots part[p, b] = (Σ dv̂, Σ dv̂ ⊙ v̂)."""
    s, q = 0.0, 0.0
    for p in range(part.shape[0]):
        s += part[p, b, 0]
        q += part[p, b, 1]
    return s / count, q / count


@jit(inline=True)
def _normalise_row(v, gain, bias, v_hat, rstd, i):
    n = v.shape[1]
    mu = 0.0
    for j in range(n):
        mu += v[i, j]
    mu /= n
    var = 0.0
    for j in range(n):
        d = v[i, j] - mu
        var += d * d
    r = 1.0 / math.sqrt(var / n + EPS)
    rstd[i, 0] = r
    for j in range(n):
        x = (v[i, j] - mu) * r
        v_hat[i, j] = x
        v[i, j] = gain[j] * x + bias[j]


@jit
def _normalise_rows(v, gain, bias, v_hat, rstd):
    for i in range(v.shape[0]):
        _normalise_row(v, gain, bias, v_hat, rstd, i)


@numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _normalise_rows_parallel(v, gain, bias, v_hat, rstd, workers):
    rows = v.shape[0]
    for w in numba.prange(workers):
        for i in range(w * rows // workers, (w + 1) * rows // workers):
            _normalise_row(v, gain, bias, v_hat, rstd, i)


def normalise_rows(v: np.ndarray, gain: np.ndarray, bias: np.ndarray, v_hat: np.ndarray, rstd: np.ndarray) -> None:
    """In place over rows of v (N, n): v̂, r of each row into ``v_hat``, ``rstd`` (N, 1); v ← γ v̂ + bias."""
    workers = _workers(v.size)
    if workers > 1:
        _normalise_rows_parallel(v, gain, bias, v_hat, rstd, workers)
    else:
        _normalise_rows(v, gain, bias, v_hat, rstd)


@jit(inline=True)
def _backward_row(d, gain, v_hat, rstd, out, i):
    n = d.shape[1]
    m1, m2 = 0.0, 0.0
    for j in range(n):
        g = d[i, j] * gain[j]
        m1 += g
        m2 += g * v_hat[i, j]
    m1 /= n
    m2 /= n
    r = rstd[i, 0]
    for j in range(n):
        out[i, j] = r * (d[i, j] * gain[j] - m1 - v_hat[i, j] * m2)


@jit(inline=True)
def _column_block(a, v, blocks, k):
    rows, n = a.shape
    nb = blocks.shape[0]
    for i in range(k * rows // nb, (k + 1) * rows // nb):
        for j in range(n):
            blocks[k, 0, j] += a[i, j] * v[i, j]
            blocks[k, 1, j] += a[i, j]


@jit
def _column_sums(a, v, blocks):
    for k in range(blocks.shape[0]):
        _column_block(a, v, blocks, k)


@numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _column_sums_parallel(a, v, blocks):
    for k in numba.prange(blocks.shape[0]):
        _column_block(a, v, blocks, k)


def column_sums(a: np.ndarray, v: np.ndarray, av_grad: np.ndarray, *a_grads: np.ndarray | None) -> None:
    """av_grad += Σ_rows a ⊙ v and each of a_grads += Σ_rows a (a, v (N, n)): a gain's gradient
    and its bias's."""
    blocks = np.zeros((SUM_BLOCKS, 2, a.shape[1]), a.dtype)
    (_column_sums_parallel if _workers(a.size) > 1 else _column_sums)(a, v, blocks)
    sums = blocks[0].copy()
    for k in range(1, SUM_BLOCKS):                  # in block order, whatever ran them
        sums += blocks[k]
    av_grad += sums[0]
    for g in a_grads:
        if g is not None:
            g += sums[1]


def _workers(size: int) -> int:
    return region_threads(size, 1 << 16)


# -- inside a step -------------------------------------------------------------------------------

@jit(inline=True)
def keep_product(z, part, b, p, gates, units, u0, n, acc):
    """Row b of a gate panel's tile (``gates`` blocks of ``units`` columns: the panel's n units
    from u0 of each gate) into the raw product z (B, G·H), and its (Σ z, Σ z²) into part[p, b]."""
    G = z.shape[1]
    H = G // gates
    L = lanes_of(z)
    s, q = 0.0, 0.0
    for g in range(gates):
        for u in range(0, n, L):
            k = min(L, n - u)
            v = vload(acc, b * acc.shape[1] + g * units + u, k)
            vstore(z, b * G + g * H + u0 + u, v, k)
            s += vsum(v)
            q += vsum(v * v)
    part[p, b, 0] = s
    part[p, b, 1] = q


@jit(inline=True)
def product_grad_row(dah, gain, z_hat, z_rstd, part, t, b, out):
    """out[b] = dz_t = LN⁻(dah_t ⊙ γ_hh; ẑ_t, r) for row b, all G·H values; ``dah`` (T, B, G·H) is
    the gradient reaching γ_hh ⊙ ẑ + b_hh, part[·, b] its panels' (Σ dẑ, Σ dẑ ⊙ ẑ)."""
    T, B, G = dah.shape
    L = lanes_of(dah)
    m1, m2 = row_means(part, b, G)
    r = z_rstd[t, b, 0]
    row = (t * B + b) * G
    for j in range(0, G, L):
        n = min(L, G - j)
        dzh = vload(dah, row + j, n) * vload(gain, j, n)
        vstore(out, b * G + j, (dzh - m1 - vload(z_hat, row + j, n) * m2) * r, n)


@jit(inline=True)
def tape_product_grad(dz, own, t, b, gates, u0, n):
    """The panel's units (n from u0, in each of the ``gates`` blocks) of row b of dz_t, from a
    worker's copy of the row, into the tape dz (T, B, G·H) that dW_hh is a product of."""
    T, B, G = dz.shape
    H = G // gates
    L = lanes_of(dz)
    for k in range(gates):
        for u in range(0, n, L):
            m = min(L, n - u)
            vstore(dz, (t * B + b) * G + k * H + u0 + u, vload(own, b * G + k * H + u0 + u, m), m)


# -- after the recurrence: the input side's gradient and the column sums, in one pass ----------------

@jit(inline=True)
def _input_block(da, gain, x_hat, rstd, out, dah, z_hat, blocks, k):
    rows = da.shape[0]
    nb = blocks.shape[0]
    for i in range(k * rows // nb, (k + 1) * rows // nb):
        _backward_row(da, gain, x_hat, rstd, out, i)
        for j in range(da.shape[1]):
            blocks[k, 0, j] += da[i, j]
            blocks[k, 1, j] += da[i, j] * x_hat[i, j]
            blocks[k, 2, j] += dah[i, j]
            blocks[k, 3, j] += dah[i, j] * z_hat[i, j]


@jit
def _input_backward(da, gain, x_hat, rstd, out, dah, z_hat, blocks):
    for k in range(blocks.shape[0]):
        _input_block(da, gain, x_hat, rstd, out, dah, z_hat, blocks, k)


@numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _input_backward_parallel(da, gain, x_hat, rstd, out, dah, z_hat, blocks):
    for k in numba.prange(blocks.shape[0]):
        _input_block(da, gain, x_hat, rstd, out, dah, z_hat, blocks, k)


def products_backward(gain_ih: np.ndarray, dw, aux, da: np.ndarray, dah: np.ndarray, out: np.ndarray) -> None:
    """Over all T·B rows at once, reading DA once: ``out`` = LN⁻(DA ⊙ γ_ih; X̂, r_x), the gradient
    reaching x_t W_ihᵀ; dγ_ih += Σ DA ⊙ X̂, db_ih += Σ DA; dγ_hh += Σ DAH ⊙ Ẑ, db_hh += Σ DAH, where
    DAH (``dah``) is the gradient reaching γ_hh ⊙ ẑ + b_hh (DA itself but for the GRU)."""
    a, ah = flat(da), flat(dah)
    blocks = np.zeros((SUM_BLOCKS, 4, a.shape[1]), a.dtype)
    run = _input_backward_parallel if _workers(a.size) > 1 else _input_backward
    run(a, gain_ih, flat(aux.input.x_hat), flat(aux.input.rstd), flat(out), ah, flat(aux.z_hat), blocks)
    sums = blocks[0].copy()
    for k in range(1, SUM_BLOCKS):                  # in block order, whatever ran them
        sums += blocks[k]
    for g, s in ((dw.bias_ih, sums[0]), (dw.ln_weight_ih, sums[1]), (dw.bias_hh, sums[2]),
                 (dw.ln_weight_hh, sums[3])):
        if g is not None:
            g += s


# -- the layer's side ------------------------------------------------------------------------------

def partial_sums(*slots: int) -> np.ndarray:
    """(*slots, 2) float64 zeros: a pair of partial sums per panel and row (and alternating tick)."""
    return np.zeros((*slots, 2), np.float64)


def own_rows(workers: int, batch: int, width: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Each worker's copy of a whole (B, width) row set, and (workers,) int64 the step it holds (−1: none)."""
    return np.zeros((workers, batch, width), dtype), np.full(workers, -1, np.int64)


class LayerNormJobs(Jobs):
    """What the layer-normalised cells' job builders share: the input side normalised for all steps
    before the recurrence (:func:`normalise_rows`), and after it the products and sums that read DA
    once (:func:`products_backward`). Their backward records carry ``gain_ih``, ``dx_rows`` and ``dz``."""

    product_gates = None        # the normalised recurrences stay in the layer's precision

    def step_kind(self) -> None:
        """No compiled streaming step: a step is a sequence of one (:class:`rnnkit.backend.SequenceStepper`)."""
        return None

    def normalise_input(self, w, gates: np.ndarray, aux) -> None:
        """gates (T, B, G·H) ← γ_ih ⊙ x̂ + the input side's biases in place; x̂, r_x into aux.input."""
        normalise_rows(flat(gates), w.ln_weight_ih, self.input_side_bias(w, gates.dtype, gates.shape[2]),
                       flat(aux.input.x_hat), flat(aux.input.rstd))

    def recurrent_da(self, da: np.ndarray, job) -> np.ndarray:
        """DAH: the gradient reaching γ_hh ⊙ ẑ + b_hh (DA itself but for the GRU)."""
        return da

    def weight_products(self, dw, tape, da, job) -> list:
        """dW_ih += DXᵀ X with DX = LN⁻(DA ⊙ γ_ih; X̂, r_x);  dW_hh += DZᵀ H_prev; and, in the same
        pass over DA that forms DX, dγ_ih, db_ih, dγ_hh, db_hh (:func:`products_backward`)."""
        products_backward(job.gain_ih, dw, tape.aux, da, self.recurrent_da(da, job), job.dx_rows)
        return [(flat(job.dx_rows), [flat(tape.x)], [dw.weight_ih], []),
                (flat(job.dz), [flat(tape.states[0][:-1])], [dw.weight_hh], [])]

    def input_side_da(self, da, job) -> np.ndarray:
        """The gradient reaching x_t W_ihᵀ (dx = it · W_ih): DA back through LN."""
        return job.dx_rows
