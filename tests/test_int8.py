"""The int8 product of dynamic quantisation (rnnkit.engine.int8): the VNNI tile's integer sums
exactly (against int64), the compiled product bit for bit against its NumPy twin (which is also
the fallback without VNNI), and the dequantised product within the per-entry error bound derived
in rnnkit.engine.quantize."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from rnnkit.engine import int8, quantize as Q
from rnnkit.engine.int8_tile import LANES

needs_vnni = pytest.mark.skipif(not int8.available(),
                                reason="the CPU (or NUMBA_CPU_FEATURES) has neither AVX512_VNNI nor AVX-VNNI")
MR, NR = int8.MR, int8.NR


@numba.njit
def _one_tile(aq, rows, panel, groups, zp, sa, colsum, sw, c, accumulate):
    int8.tile_dq(aq, 0, rows, panel, 0, groups, zp, sa, 0, colsum, sw, 0, c, 0, NR, accumulate)


def _tile(a_q, w_q, zp, rows, accumulate=False, c=None):
    """One tile through the kernel with unit scales: float32(Σ Aq·Wq − zp·colsum), laid out here
    independently of quantize.py's packing: A (MR, 4G) → (G, MR, 4), W (4G, NR) → (G, NR, 4)."""
    G = a_q.shape[1] // 4
    aq = np.ascontiguousarray(a_q.reshape(MR, G, 4).transpose(1, 0, 2))
    panel = np.ascontiguousarray(w_q.reshape(G, 4, NR).transpose(0, 2, 1))
    colsum = w_q.astype(np.int32).sum(axis=0).astype(np.int32)
    c = np.full((MR, NR), 3.0, np.float32) if c is None else c
    _one_tile(aq, rows, panel, G, np.asarray(zp, np.int32), np.ones(MR, np.float32), colsum,
              np.ones(NR, np.float32), c, accumulate)
    return c


@needs_vnni
@pytest.mark.parametrize("K, rows", [(4, MR), (64, MR), (128, 5), (512, 1)])
def test_tile_sums_exactly(K, rows):
    """Σ_k Aq·Wq − zp·colsum in int32 equals int64's, the extremes included: 255 · (−128) four
    times in a lane (−130,560), whose pair sums −65,280 would saturate in int16 (vpmaddubsw)."""
    rng = np.random.default_rng(K)
    a_q = rng.integers(0, 256, (MR, K)).astype(np.uint8)
    w_q = rng.integers(-128, 128, (K, NR)).astype(np.int8)
    a_q[:, :4], w_q[:4, :] = 255, -128
    zp = rng.integers(0, 256, MR)
    exact = a_q.astype(np.int64) @ w_q.astype(np.int64) - zp[:, None] * w_q.astype(np.int64).sum(axis=0)
    assert np.abs(exact).max() < 2**24                    # so float32 holds every sum exactly
    c = _tile(a_q, w_q, zp, rows)
    np.testing.assert_array_equal(c[:rows].astype(np.int64), exact[:rows])
    np.testing.assert_array_equal(c[rows:], 3.0)          # rows past nrows untouched
    again = _tile(a_q, w_q, zp, rows, accumulate=True, c=c.copy())
    np.testing.assert_array_equal(again[:rows].astype(np.int64), 2 * exact[:rows])


@needs_vnni
def test_tile_does_not_saturate():
    """All products 255 · (−128) over K = 512: −16,711,680 in every lane (vpdpbusds, the
    saturating twin, would give the same here; int16 pair sums would not)."""
    K = 512
    c = _tile(np.full((MR, K), 255, np.uint8), np.full((K, NR), -128, np.int8), np.zeros(MR), MR)
    np.testing.assert_array_equal(c, np.float32(-255 * 128 * K))


def test_weights_per_output_column():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((37, 45)).astype(np.float32) * np.linspace(0.01, 3, 45, dtype=np.float32)
    w[:, 7] = 0                                           # a column of zeros: scale 0, weights 0
    qw = Q.quantize_weights(w, NR)
    wq = Q.unpack(qw)
    assert wq.dtype == np.int8 and np.abs(wq).max() == 127
    np.testing.assert_array_equal(np.abs(wq).max(axis=0)[np.arange(45) != 7], 127)
    np.testing.assert_allclose(qw.scale[:45], np.abs(w).max(axis=0) / 127, rtol=1e-7)
    assert qw.scale[7] == 0 and not qw.dequantized()[:, 7].any()
    step = qw.scale[:45] * (0.5 + Q.STEP_SLACK)
    assert (np.abs(qw.dequantized() - w) <= step).all()
    np.testing.assert_array_equal(qw.colsum[:45], wq.astype(np.int32).sum(axis=0))
    assert not qw.colsum[45:].any() and not qw.scale[45:].any()
    np.testing.assert_array_equal(Q.unpack(Q.quantize_weights(w.T, NR, trans=True)), wq)


def test_weights_longer_than_int32_holds():
    with pytest.raises(ValueError, match="exceeds"):
        Q.quantize_weights(np.ones((Q.MAX_K + 1, 1), np.float32), NR)


def test_rows_asymmetric_per_row():
    """Each row's range (widened to hold 0) in 255 steps; every value within half a step."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 50)).astype(np.float32) * np.array([[1], [10], [0.01], [1], [1], [1]], np.float32)
    a[3] = np.abs(a[3]) + 1                               # all positive: zp 0
    a[4] = -np.abs(a[4]) - 1                              # all negative: zp 255
    a[5] = 0                                              # zeros: exact
    rows = Q.quantize_rows(a)
    assert rows.zero[3] == 0 and rows.zero[4] == 255 and rows.q[3].max() == 255 and rows.q[4].min() == 0
    back = rows.scale[:, None] * (rows.q.astype(np.float32) - rows.zero[:, None])
    assert (np.abs(back - a) <= rows.scale[:, None] * (0.5 + Q.STEP_SLACK)).all()
    assert not back[5].any()


SHAPES = [(1, 4, 32), (5, 7, 40), (17, 130, 100), (33, 64, 2 * NR), (64, 256, 1024), (1600, 128, 1024)]


@needs_vnni
@pytest.mark.parametrize("M, K, N", SHAPES)
def test_product_matches_numpy_twin(M, K, N, threads):
    """The compiled product (quantiser, packing, tiles, edges, threads) gives the NumPy twin's bits."""
    rng = np.random.default_rng(M + K + N)
    a = rng.standard_normal((M, K)).astype(np.float32)
    qw = int8.quantize(rng.standard_normal((N, K)).astype(np.float32), trans=True)
    c = int8.matmul(a, qw)
    np.testing.assert_array_equal(c, Q.product(a, qw))
    base = rng.standard_normal((M, N)).astype(np.float32)
    np.testing.assert_array_equal(int8.matmul(a, qw, base.copy(), accumulate=True), base + c)


def test_product_checks_its_arrays():
    qw = int8.quantize(np.ones((8, 40), np.float32))
    with pytest.raises(ValueError, match="columns"):
        int8.matmul(np.ones((3, 9), np.float32), qw)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        int8.matmul(np.ones((3, 8), np.float32), qw, np.zeros((40, 3), np.float32).T)


def _activations(kind, rng, M, K):
    if kind == "normal":
        return rng.standard_normal((M, K)).astype(np.float32)
    if kind == "tanh":                                    # a hidden state: tanh-bounded
        return np.tanh(2 * rng.standard_normal((M, K))).astype(np.float32)
    return rng.uniform(0, 1, (M, K)).astype(np.float32) ** 4     # skewed, one-signed (gates, relu)


@needs_vnni
@pytest.mark.parametrize("kind", ["normal", "tanh", "skewed"])
@pytest.mark.parametrize("M, K, N", [(64, 256, 1024), (32, 1024, 512)])
def test_error_within_bound(kind, M, K, N):
    """|C − A·W| ≤ s_a/2·Σ|W_j| + s_w/2·Σ|A_i| + K·s_a·s_w/4 (+ float32 rounding) for every entry,
    and the error's root mean square over all entries is the model's (independent uniform
    roundings) within 10%: neither a bound met by accident nor a loose one."""
    rng = np.random.default_rng(K)
    a = _activations(kind, rng, M, K)
    w = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)     # Xavier-like weights
    qw = int8.quantize(w)
    c = int8.matmul(a, qw)
    exact = a.astype(np.float64) @ w.astype(np.float64)
    rows = Q.quantize_rows(a)
    assert (np.abs(c - exact) <= Q.error_bound(a, w, rows, qw)).all()
    rms, model = np.sqrt(np.mean((c - exact) ** 2)), np.sqrt(np.mean(Q.typical_error(a, w, rows, qw) ** 2))
    assert 0.9 < rms / model < 1.1


def test_fallback_gives_the_same_numbers(monkeypatch):
    """Without VNNI, matmul computes the quantised product in NumPy: the same bits."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((19, 70)).astype(np.float32)
    qw = int8.quantize(rng.standard_normal((70, 50)).astype(np.float32))
    compiled = int8.matmul(a, qw) if int8.available() else None
    monkeypatch.setattr(int8, "available", lambda: False)
    fallback = int8.matmul(a, qw)
    np.testing.assert_array_equal(fallback, Q.product(a, qw))
    if compiled is not None:
        np.testing.assert_array_equal(fallback, compiled)


def _host_features_without(*prefixes) -> str:
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features().flatten().split(",")
    return ",".join("-" + f[1:] if f.startswith("+") and f[1:].startswith(prefixes) else f for f in features)


CHILD = r"""
import numpy as np
from rnnkit.engine import int8, isa, quantize as Q
print(isa.host_isa().name, isa.dot_bits(), int8.NR)
rng = np.random.default_rng(1)
for M, K, N in [(5, 7, 40), (70, 256, 300)]:
    a = rng.standard_normal((M, K)).astype(np.float32)
    qw = int8.quantize(rng.standard_normal((K, N)).astype(np.float32))
    assert np.array_equal(int8.matmul(a, qw), Q.product(a, qw))
"""


@pytest.mark.parametrize("without, expect", [(("avx512", "amx", "evex512", "avx10"), "avx2 256 16"),
                                             (("avx512", "amx", "evex512", "avx10", "avxvnni"), "avx2 None 32")])
def test_other_cpus(without, expect, tmp_path):
    """Compiled for an AVX2 CPU with AVX-VNNI (Alder Lake, Zen 5 in 256 bits): the 256-bit kernel;
    for an AVX2 CPU without it: NumPy. Both give the same numbers (run where the host has the
    instructions, through NUMBA_CPU_FEATURES)."""
    import llvmlite.binding as llvm
    if "+avx2" not in llvm.get_host_cpu_features().flatten().split(","):
        pytest.skip("the host lacks AVX2")
    if expect.endswith("16") and "+avxvnni" not in llvm.get_host_cpu_features().flatten().split(","):
        pytest.skip("the host lacks AVX-VNNI")
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CPU_FEATURES=_host_features_without(*without),
               NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == expect.split()
