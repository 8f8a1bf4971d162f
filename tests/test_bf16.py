"""The engine's bfloat16 products (rnnkit.engine.bf16) against references of their own definition.

- rounding: Intel's float32 → bfloat16 (to nearest, ties to even; denormals to ±0; NaN quiet),
  written here again on NumPy's integers and checked against PyTorch's on normal numbers;
- AVX512_BF16: vdpbf16ps adds, per pair, the odd product then the even one, each rounded to
  float32 (products of bfloat16 are exact): the emulation below must match bit for bit;
- AMX: Intel leaves the order to the hardware, so the float64 product of the rounded inputs is the
  reference, within a float32 sum's bound K·2⁻²⁴·Σ|a||b|.
"""

import numpy as np
import pytest

from rnnkit.engine import bf16, isa
from rnnkit.engine.gemm import SHAPE as GEMM_TILE
from rnnkit.engine.pack import units_per_panel

needs_bf16 = pytest.mark.skipif("avx512bf16" not in isa.bf16_units(),
                                reason="the CPU (or Numba's target) has no AVX512_BF16")
needs_amx = pytest.mark.skipif("amx" not in bf16.units(),
                               reason="no AMX here, or Linux did not grant its tile state")
SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 45), (50, 600, 70), (130, 1100, 33)]   # edges, K blocks


def rounded(x: np.ndarray) -> np.ndarray:
    """Intel's float32 → bfloat16, as float32 values."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    out = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    special = (u & 0x7F800000) == 0x7F800000
    out = np.where(special, (u >> 16) | np.where(u & 0x007FFFFF, np.uint64(0x40), np.uint64(0)), out)
    out = np.where((u & 0x7F800000) == 0, (u >> 16) & 0x8000, out)
    return (out.astype(np.uint32) << 16).view(np.float32)


def sequential_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """vdpbf16ps's result: per pair κ, acc += a[2κ+1]·b[2κ+1], then acc += a[2κ]·b[2κ], in float32."""
    a, b = rounded(a), rounded(b)
    if a.shape[1] % 2:
        a, b = np.pad(a, ((0, 0), (0, 1))), np.pad(b, ((0, 1), (0, 0)))
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for kappa in range(a.shape[1] // 2):
        for k in (2 * kappa + 1, 2 * kappa):
            acc = acc + a[:, k, None] * b[k]
    return acc


def bf16_bits(x: np.ndarray) -> np.ndarray:
    return (rounded(x).view(np.uint32) >> 16).astype(np.uint16)


def test_rounding_follows_intel():
    specials = np.array([0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan, 3.4e38, 1.0 + 2**-8,
                         1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20], np.float32)
    out = bf16.round_rows(specials[None])[0, :specials.size]
    assert out.tolist() == [0x0000, 0x8000, 0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F80,
                            0x3F80, 0x3F82, 0x3F81]          # ties to even, ±0, ∞, quiet NaN, overflow
    x = np.random.default_rng(0).standard_normal((7, 300)).astype(np.float32) * 1e3
    np.testing.assert_array_equal(bf16.round_rows(x)[:7, :300], bf16_bits(x))
    torch = pytest.importorskip("torch")
    theirs = torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bf16_bits(x), theirs)


def test_rounded_operands_are_padded_to_whole_tiles():
    a16 = bf16.round_rows(np.ones((33, 5), np.float32), trans=False)
    assert a16.shape == (64, 32) and not a16[33:].any() and not a16[:, 5:].any()
    panels = bf16.pack(np.ones((5, 40), np.float32))
    nr = GEMM_TILE.width(np.float32)                    # 32 columns a panel on AVX-512, 16 on AVX2
    last = 40 - (-(-40 // nr) - 1) * nr                 # the columns of the last panel
    assert panels.shape == (-(-40 // nr), 16, 2 * nr) and not panels[:, 3:].any()
    assert panels[-1, :2, :2 * last].all() and not panels[-1, :, 2 * last:].any()   # k = 5 pads pair 2


@needs_bf16
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_avx512bf16_product_is_the_sequential_sum(m, k, n, threads):
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    bf16.gemm(a, b, c, on="avx512bf16")
    np.testing.assert_array_equal(c, sequential_product(a, b))


def assert_within_sum_bound(c, a, b, c0=0.0):
    a, b = rounded(a).astype(np.float64), rounded(b).astype(np.float64)
    bound = a.shape[1] * 2.0**-24 * (np.abs(a) @ np.abs(b) + np.abs(c0)) + 1e-30
    assert np.all(np.abs(c - c0 - a @ b) <= bound)


@needs_amx
@pytest.mark.parametrize("m,k,n", SHAPES + [(40, 520, 600)])          # two groups of panels, K blocks
def test_amx_product_within_a_float32_sum(m, k, n, threads):
    rng = np.random.default_rng(m * k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    bf16.gemm(a, b, c, on="amx")
    assert_within_sum_bound(c, a, b)


@needs_bf16
@pytest.mark.parametrize("on", bf16.units() if bf16.available() else [])
@pytest.mark.parametrize("trans_a,trans_b", [(True, False), (False, True), (True, True)])
def test_transposes_and_accumulation(on, trans_a, trans_b):
    rng = np.random.default_rng(5)
    m, k, n = 70, 530, 90
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    bf16.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, accumulate=True, on=on)
    assert_within_sum_bound(c, a.T if trans_a else a, b.T if trans_b else b, c0)


@needs_bf16
@pytest.mark.parametrize("gates,rows", [(4, 6), (3, 9), (1, 1)])
def test_gate_panels_give_the_recurrent_product(gates, rows):
    """panel_product on bfloat16 gate panels: columns g·U + u of panel p are unit p·U + u of gate g."""
    rng = np.random.default_rng(gates)
    H, K = 40, 70
    w_hh = rng.standard_normal((gates * H, K)).astype(np.float32)
    h = rng.standard_normal((rows, K)).astype(np.float32)
    panels, h16 = bf16.pack_gates(w_hh, gates), bf16.round_rows(h)
    units = units_per_panel(gates, np.float32)
    for p in range(panels.shape[0]):
        acc = np.full((rows, panels.shape[2] // 2), np.nan, np.float32)
        bf16.panel_product(h16, 0, h16.shape[1], rows, panels, p, acc)
        for g in range(gates):
            cols = [g * H + p * units + u for u in range(units) if p * units + u < H]
            np.testing.assert_array_equal(acc[:, g * units:g * units + len(cols)],
                                          sequential_product(h, w_hh[cols].T))


def test_without_a_unit_the_error_says_so(monkeypatch):
    monkeypatch.setattr(bf16, "units", lambda: ())
    assert not bf16.available()
    with pytest.raises(bf16.Unavailable, match="AVX512_BF16"):
        bf16.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.empty((2, 2), np.float32))
    monkeypatch.setattr(bf16, "units", lambda: ("avx512bf16",))
    with pytest.raises(bf16.Unavailable, match="'amx' is not usable here"):
        bf16.unit("amx")
    assert bf16.unit() == "avx512bf16"


@pytest.mark.parametrize("features,units", [({"avx512f", "avx512dq", "avx512bw", "avx512vl"}, set()),
                                            ({"avx2", "fma", "avx512bf16"}, set()),
                                            ({"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512bf16"},
                                             {"avx512bf16"}),
                                            ({"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512bf16",
                                              "amx-tile", "amx-bf16"}, {"avx512bf16", "amx"})])
def test_units_follow_the_cpu_features(monkeypatch, features, units):
    """AMD Zen 5: AVX512_BF16 without AMX; an AVX2 machine: neither (the unit's code is never compiled)."""
    monkeypatch.setattr(isa, "_features", lambda: features)
    monkeypatch.setattr(isa, "host_isa", isa.host_isa.__wrapped__)
    assert isa.bf16_units.__wrapped__() == units


def test_the_vector_rounding_is_the_scalar_one():
    """bf16.vstore_bf16 (the layers' rounding of h_t and da_t, in vector registers) against
    Intel's rule on specials, ties and random values, with partial vectors."""
    import numba

    from rnnkit.engine.vector import lanes_of, vload

    @numba.njit
    def round_all(x, out):
        L = lanes_of(x)
        for k in range(0, x.size, L):
            n = min(L, x.size - k)
            bf16.vstore_bf16(out, k, vload(x, k, n), n)

    specials = np.array([0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan, -np.nan, 3.4e38, -3.4e38,
                         1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, 2**-126, -(2**-126)], np.float32)
    x = np.concatenate([specials, np.random.default_rng(0).standard_normal(101).astype(np.float32) * 1e3])
    out = np.full(x.size + 5, 0xABCD, np.uint16)                 # past the last partial vector: untouched
    round_all(x, out)
    np.testing.assert_array_equal(out[:x.size], bf16_bits(x))
    assert (out[x.size:] == 0xABCD).all()
