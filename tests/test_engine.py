"""The engine against the NumPy reference: every cell and option, one thread and several; its matrix
products against NumPy; its float32 gate functions against libm; how to turn it off."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
import rnnkit.backend
import rnnkit.engine
from rnnkit.engine import prepack, schedule
from rnnkit.engine.gemm import gemm

LAYERS = [
    (rnnkit.LSTM, {}), (rnnkit.LSTM, {"peephole": True}), (rnnkit.LSTM, {"proj_size": 3}),
    (rnnkit.LSTM, {"proj_size": 4, "peephole": True}), (rnnkit.GRU, {}), (rnnkit.GRU, {"reset_after": False}),
    (rnnkit.RNN, {}), (rnnkit.RNN, {"nonlinearity": "relu"}),
    (rnnkit.LSTM, {"layer_norm": True}), (rnnkit.GRU, {"layer_norm": True}), (rnnkit.RNN, {"layer_norm": True}),
    (rnnkit.RNN, {"layer_norm": True, "nonlinearity": "relu"}),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'plain'}" for c, kw in LAYERS]


def run(layer_cls, kw, backend, monkeypatch, dtype, hidden=37):
    """Forward + backward of a 2-layer bidirectional layer with lengths and initial states, on
    the backend named ``backend``."""
    with rnnkit.backend.use(backend):
        return _run(layer_cls, kw, dtype, hidden)


def _run(layer_cls, kw, dtype, hidden):
    rng = np.random.default_rng(5)
    layer = layer_cls(6, hidden, num_layers=2, bidirectional=True, dtype=dtype, rng=1, **kw)
    for name, p in layer.named_parameters():            # layer-norm gains and shifts away from 1 and 0
        if name.startswith("ln_"):
            p.data[...] += 0.5 * rng.standard_normal(p.data.shape)
    x = rng.standard_normal((9, 11, 6))
    state0 = tuple(rng.standard_normal(s) for s in layer.state_shapes(11))
    out, state = layer(x, state0 if len(state0) > 1 else state0[0], lengths=[9, 2, 7, 5, 1, 9, 8, 3, 4, 6, 9])
    dstate = tuple(rng.standard_normal(s.shape) for s in (state if isinstance(state, tuple) else (state,)))
    dx, dstate0 = layer.backward(rng.standard_normal(out.shape), dstate if len(dstate) > 1 else dstate[0])
    dstate0 = dstate0 if isinstance(dstate0, tuple) else (dstate0,)
    state = state if isinstance(state, tuple) else (state,)
    return [out, *state, dx, *dstate0] + [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=IDS)
def test_engine_equals_reference_float64(layer_cls, kw, monkeypatch, threads):
    fast = run(layer_cls, kw, "engine", monkeypatch, np.float64)
    reference = run(layer_cls, kw, "numpy", monkeypatch, np.float64)
    for a, b in zip(fast, reference):
        # Layer norm sums its statistics in another order (per panel) and its r = 1/√(var + ε)
        # scales every rounding error: absolute errors relative to the array's largest value.
        scale = max(1.0, float(np.abs(b).max())) if kw.get("layer_norm") else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * scale)


@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=IDS)
def test_engine_equals_reference_float32(layer_cls, kw, monkeypatch, threads):
    """float32: the fast gate functions (error ≤ 3.1e-7) against NumPy's, summed in another order."""
    fast = run(layer_cls, kw, "engine", monkeypatch, np.float32, hidden=70)
    reference = run(layer_cls, kw, "numpy", monkeypatch, np.float32, hidden=70)
    for a, b in zip(fast, reference):
        scale = max(1.0, float(np.abs(b).max()))
        assert np.abs(a - b).max() <= 2e-5 * scale


# (37, 530, 300) and (3, 20, 257): enough panels that each block of A is copied into tiles first
@pytest.mark.parametrize("m,k,n", [(37, 19, 45), (1, 300, 70), (130, 700, 33), (8, 1, 1), (37, 530, 300), (3, 20, 257)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_equals_numpy(m, k, n, trans_a, trans_b):
    rng = np.random.default_rng(m * k + n)
    for dtype, tol in ((np.float64, 1e-13), (np.float32, 2e-6)):
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        ref = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
        scale = np.abs(ref).max()
        c = c0.copy()
        gemm(a, b, c, trans_a=trans_a, trans_b=trans_b)
        assert np.abs(c - ref).max() <= tol * scale * np.sqrt(k)
        c = c0.copy()
        gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, accumulate=True)
        assert np.abs(c - c0 - ref).max() <= tol * scale * np.sqrt(k)


def test_gemm_reads_rows_with_a_stride():
    """A view whose rows are longer than its width (a column block of a wider array)."""
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((50, 40))
    b = rng.standard_normal((50, 9))
    c = np.empty((24, 9))
    gemm(wide[:, 8:32], b, c, trans_a=True)
    np.testing.assert_allclose(c, wide[:, 8:32].T @ b, rtol=1e-12)
    many = rng.standard_normal((24, 300))                         # ≥ PACK_A_PANELS panels: A copied
    c = np.empty((50, 300))
    gemm(wide[:, 8:32], many, c)
    np.testing.assert_allclose(c, wide[:, 8:32] @ many, rtol=1e-12)


@pytest.mark.parametrize("trans_b", [False, True])
def test_packing_shared_between_threads_equals_packing_on_one(trans_b):
    """Large weights are packed by both threads (panel p by thread p mod 2): the same panels."""
    from rnnkit.engine import gemm as gemm_module, pack as pack_module
    rng = np.random.default_rng(5)
    b = rng.standard_normal((1030, 1021)).astype(np.float32)          # > PARALLEL_PACK, ragged N
    assert b.size >= pack_module.PARALLEL_PACK
    n = b.shape[0] if trans_b else b.shape[1]
    shape = (-(-n // 32), b.shape[0] if not trans_b else b.shape[1], 32)
    serial, shared = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    gemm_module.pack_panels(b, trans_b, serial)
    gemm_module._pack_panels_parallel(b, trans_b, shared, 2)
    np.testing.assert_array_equal(shared, serial)
    w_hh = rng.standard_normal((4 * 261, 1030)).astype(np.float32)
    units = pack_module.units_per_panel(4, w_hh.dtype)
    width = pack_module.gate_tile(4).width(w_hh.dtype)
    shape = (-(-261 // units), 1030, width)
    serial, shared = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    pack_module._pack_gates(w_hh, 4, units, serial)
    pack_module._pack_gates_parallel(w_hh, 4, units, shared, 2)
    np.testing.assert_array_equal(shared, serial)
    assert np.isfinite(serial).all()


def test_float32_gate_functions():
    import numba

    from rnnkit.engine.activations import sigmoid, tanh

    @numba.njit(error_model="numpy")
    def apply(x, t, s):
        for i in range(x.shape[0]):
            t[i], s[i] = tanh(x[i]), sigmoid(x[i])

    x = np.concatenate([np.linspace(-40, 40, 200001), [0.0, 1e-30, -1e-30, 7.97, -7.97]]).astype(np.float32)
    t, s = np.empty_like(x), np.empty_like(x)
    apply(x, t, s)
    exact = x.astype(np.float64)
    assert np.abs(t - np.tanh(exact)).max() <= 3.2e-7
    assert np.abs(s - 1 / (1 + np.exp(-exact))).max() <= 1.7e-7
    assert np.all(t[x == 0] == 0) and np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))


def test_workers_by_size(monkeypatch):
    monkeypatch.setattr(schedule, "num_threads", lambda: 2)
    assert rnnkit.engine.workers_for(100, 8, 256, 64, 1) == 1           # 2^17 per step: one thread
    assert rnnkit.engine.workers_for(50, 32, 1024, 256, 1) == 2         # 2^23 per step: shared
    assert rnnkit.engine.workers_for(50, 8, 256, 64, 2) == 2            # two directions: one each
    assert rnnkit.engine.workers_for(10, 1, 128, 32, 2) == 1            # too small to start a thread
    monkeypatch.setattr(schedule, "num_threads", lambda: 1)
    assert rnnkit.engine.workers_for(50, 32, 1024, 256, 2) == 1


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="count must be an integer >= 1 or None, got 0"):
        schedule.set_num_threads(0)
    with pytest.raises(TypeError, match="count must be an integer >= 1 or None, got float 2.0"):
        schedule.set_num_threads(2.0)
    with pytest.raises(ValueError, match="count must be an integer >= 1 or None, got -1"):
        rnnkit.backend.NUMPY.set_num_threads(-1)             # the reference checks it the same way


def test_rnnkit_engine_0_turns_it_off():
    code = ("import numpy as np, rnnkit, rnnkit.engine as e, rnnkit.backend as b\n"
            "m = rnnkit.GRU(3, 4, rng=0); y, _ = m(np.ones((5, 2, 3))); m.backward(np.ones_like(y))\n"
            "print(e.enabled(), b.current().name, float(y.sum()))")
    outs = {}
    for flag in ("0", "1"):
        env = dict(os.environ, RNNKIT_ENGINE=flag)
        outs[flag] = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()
    assert outs["0"][:2] == ["False", "numpy"] and outs["1"][:2] == ["True", "engine"]
    assert float(outs["0"][2]) == pytest.approx(float(outs["1"][2]), rel=1e-6)


CELLS = [
    (rnnkit.LSTMCell, {}), (rnnkit.LSTMCell, {"peephole": True}), (rnnkit.LSTMCell, {"bias": False}),
    (rnnkit.GRUCell, {}), (rnnkit.GRUCell, {"reset_after": False}), (rnnkit.RNNCell, {}),
    (rnnkit.RNNCell, {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize("cell_cls,kw", CELLS, ids=[f"{c.__name__}-{k}" for c, k in CELLS])
@pytest.mark.parametrize("hidden", [37, 600], ids=["small", "large-two-threads"])
def test_inference_step_equals_reference(cell_cls, kw, hidden, monkeypatch):
    """The compiled streaming step (no_grad) against the reference step, batched and not."""
    schedule.set_num_threads(2)
    try:
        rng = np.random.default_rng(7)
        cell = cell_cls(hidden // 2 + 1, hidden, dtype=np.float64, rng=2, **kw)
        for shape in ((3, cell.input_size), (cell.input_size,)):
            x = rng.standard_normal(shape)
            state = tuple(rng.standard_normal(shape[:-1] + (hidden,)) for _ in cell.kernel.state_sizes())
            state = state if len(state) > 1 else state[0]
            with rnnkit.no_grad():
                fast = cell(x, state)
            with rnnkit.backend.use("numpy"), rnnkit.no_grad():
                slow = cell(x, state)
            for a, b in zip(fast if isinstance(fast, tuple) else (fast,), slow if isinstance(slow, tuple) else (slow,)):
                assert a.shape == b.shape
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    finally:
        schedule.set_num_threads(None)


def test_inference_step_converts_what_it_is_given():
    """Lists, other dtypes and non-contiguous views take the careful path to the same result."""
    cell = rnnkit.LSTMCell(4, 6, rng=0)
    x = np.arange(12.0).reshape(3, 4) / 10
    h = np.linspace(-1, 1, 36).reshape(6, 6)[::2]               # rows 0, 2, 4: not contiguous
    with rnnkit.no_grad():
        ref = cell(x.astype(np.float32), (np.ascontiguousarray(h, np.float32), np.zeros((3, 6), np.float32)))
        got = cell(x.tolist(), (h, None))
    for a, b in zip(got, ref):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("layer_cls,kw", [c for c in LAYERS if "proj_size" not in c[1]],
                         ids=[i for (c, i) in zip(LAYERS, IDS) if "proj_size" not in c[1]])
def test_one_step_of_a_layer_equals_reference(layer_cls, kw, monkeypatch):
    """A sequence of one step without gradients (generation) takes the streaming step."""
    rng = np.random.default_rng(9)
    layer = layer_cls(5, 8, num_layers=2, bidirectional=True, dtype=np.float64, rng=3, **kw)
    x = rng.standard_normal((1, 4, 5))
    state0 = tuple(rng.standard_normal(s) for s in layer.state_shapes(4))
    state0 = state0 if len(state0) > 1 else state0[0]
    results = []
    for backend in ("engine", "numpy"):
        with rnnkit.backend.use(backend), rnnkit.no_grad():
            out, state = layer(x, state0)
        results.append([out, *(state if isinstance(state, tuple) else (state,))])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_layer_reads_a_strided_input():
    """x as a view with a stride inside its rows gives what its contiguous copy gives."""
    rng = np.random.default_rng(4)
    wide = rng.standard_normal((6, 3, 10))
    layer = rnnkit.GRU(5, 7, dtype=np.float64, rng=0)
    out_view, _ = layer(wide[..., ::2])
    out_copy, _ = layer(np.ascontiguousarray(wide[..., ::2]))
    np.testing.assert_array_equal(out_view, out_copy)


AVX2_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fsgsbase,+lzcnt,+mmx,+movbe,+pclmul,"
                 "+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,+xsaveopt")


def test_engine_on_a_cpu_without_avx512():
    """Compiled for Haswell (AVX2, 16 registers: other tiles, 8-lane vectors), the engine still
    equals the reference (a subprocess, so that Numba compiles for that target)."""
    code = """
import numpy as np, rnnkit, rnnkit.backend
from rnnkit.engine.isa import host_isa
rng = np.random.default_rng(0)
errors = []
for cls in (rnnkit.LSTM, rnnkit.GRU):
    layer = cls(5, 21, bidirectional=True, rng=1)
    x = rng.standard_normal((7, 3, 5)).astype(np.float32)
    runs = []
    for backend in ("engine", "numpy"):
        with rnnkit.backend.use(backend):
            layer.zero_grad()
            out, _ = layer(x, lengths=[7, 3, 5])
            dx, _ = layer.backward(np.ones_like(out))
        runs.append([out, dx] + [p.grad.copy() for p in layer.parameters()])
    errors.append(max(float(np.abs(a - b).max()) for a, b in zip(*runs)))
print(host_isa().name, max(errors))
"""
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=AVX2_FEATURES)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    isa, error = out.stdout.split()
    assert isa == "avx2" and float(error) < 1e-5


@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=IDS)
def test_inference_writes_no_tape_and_gives_the_same_output(layer_cls, kw, threads):
    """Under no_grad the engine skips what only backward reads; the outputs are the same."""
    rng = np.random.default_rng(8)
    layer = layer_cls(6, 37, num_layers=2, bidirectional=True, dtype=np.float64, rng=1, **kw)
    x = rng.standard_normal((9, 5, 6))
    lengths = [9, 2, 7, 5, 1]
    out, state = layer(x, lengths=lengths)
    with rnnkit.no_grad():
        out_ng, state_ng = layer(x, lengths=lengths)
    np.testing.assert_array_equal(out_ng, out)
    for a, b in zip(state_ng if isinstance(state_ng, tuple) else (state_ng,), state if isinstance(state, tuple) else (state,)):
        np.testing.assert_array_equal(a, b)


def _fresh_layer_output(layer_cls, kw, weights: dict, x):
    """The output of a new layer holding ``weights`` (nothing of it can have been kept)."""
    fresh = layer_cls(6, 37, dtype=np.float64, rng=3, **kw)
    fresh.load_state_dict(weights)
    prepack.PACKED.clear()
    with rnnkit.no_grad():
        return fresh(x)[0]


@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=IDS)
def test_kept_panels_follow_weights_changed_in_place(layer_cls, kw):
    """Small layers keep their packed weights between calls (rnnkit.engine.prepack); a change of
    any weight in place (an optimizer step, p.data[...] =, load_state_dict), even of one element
    to -0.0 or NaN, is seen by the next call, which equals a new layer's."""
    rng = np.random.default_rng(4)
    layer = layer_cls(6, 37, dtype=np.float64, rng=1, **kw)
    x = rng.standard_normal((9, 2, 6))
    with rnnkit.no_grad():
        first = layer(x)[0]
        np.testing.assert_array_equal(layer(x)[0], first)          # served from the kept panels
    for name in ("weight_hh_l0", "weight_ih_l0"):
        p = dict(layer.named_parameters())[name]
        for value in (0.25, -0.0, np.nan):
            p.data[-1, -1] = value                        # the last element: the comparison's end
            with rnnkit.no_grad():
                out = layer(x)[0]
            np.testing.assert_array_equal(out, _fresh_layer_output(layer_cls, kw, layer.state_dict(), x))
            p.data[-1, -1] = 0.5
    assert not np.array_equal(out, first)


def test_kept_panels_are_few_and_small():
    """Weights beyond REUSE_BYTES are packed per call; at most REUSE_ENTRIES are kept."""
    from rnnkit.engine import prepack
    cache = prepack.PackedCache(max_bytes=1024, entries=2)
    calls = []
    def pack(w):
        calls.append(w.shape)
        return w * 2
    small = [np.full((4, 4), float(k)) for k in range(3)]
    for w in small + small[1:]:
        cache.get(w, "test", pack)
    assert len(calls) == 3                                # the last two were served from the cache
    cache.get(small[0], "test", pack)                     # pushed out by the other two
    assert len(calls) == 4
    big = np.zeros((32, 32))                              # 8 KiB > 1 KiB: never kept
    cache.get(big, "test", pack), cache.get(big, "test", pack)
    assert len(calls) == 6
    np.testing.assert_array_equal(cache.get(small[2], "other layout", pack), small[2] * 2)
    assert len(calls) == 7


def test_workspace_arrays_are_aligned_and_reused_only_when_nobody_holds_them():
    """A large array of the pool starts on a 64-byte boundary; it is handed out again only once
    neither it nor any view of it is held (a view refers to the buffer under it, not to it)."""
    from rnnkit.engine import workspace
    shape = (300, 70)                                          # 84 kB: from the pool
    a = workspace.empty(shape, np.float32)
    assert a.__array_interface__["data"][0] % workspace.ALIGN == 0 and a.flags.c_contiguous
    address = a.__array_interface__["data"][0]
    view = a[5:, 3]
    del a
    b = workspace.empty(shape, np.float32)                     # the view still holds the first one
    assert b.__array_interface__["data"][0] != address
    del view, b
    c = workspace.empty(shape, np.float32)
    assert c.__array_interface__["data"][0] == address
    kept = workspace.aligned_empty((3, 5), np.float64)         # small, aligned all the same
    assert kept.__array_interface__["data"][0] % workspace.ALIGN == 0 and kept.shape == (3, 5)
    assert workspace.aligned_empty((0, 4), np.float32).shape == (0, 4)
