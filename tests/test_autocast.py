"""rnnkit.autocast: the layers' products in bfloat16 with float32 sums (rnnkit.engine.mixed).

What is promised, and checked here:
- the arithmetic is the one stated: products of bfloat16-rounded operands (x_t, h_{t-1} or
  m_h ⊙ h_{t-1}, the weights) summed in float32. The reference is the float64 NumPy reference
  layer fed those rounded operands: one step at a time, h rounded between steps, for the cells
  whose h_{t-1} enters the step only through the product (LSTM, RNN), and for one step for all;
- the price of it: outputs and gradients within a few 2⁻⁸ of float32's, and not equal to them;
- the same bits on one thread as on two; float64 layers, the layer-normalised and Cho's GRU
  recurrences untouched where stated; outside a bfloat16 CPU or on the NumPy backend, float32
  with a PrecisionWarning.
"""

import warnings

import numpy as np
import pytest

import rnnkit
from rnnkit.backend import use
from rnnkit.engine import bf16
from rnnkit.precision import PrecisionWarning, product_precision
from tests.helpers import engine_threads
from tests.test_bf16 import rounded

needs_bf16 = pytest.mark.skipif(not bf16.available(), reason="no bfloat16 unit on this CPU")
CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


def make(cell: str, I: int, H: int, dtype=np.float32, **options):
    return CELLS[cell](I, H, dtype=dtype, rng=3, **options)


def inputs(T: int, B: int, I: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((T, B, I)).astype(np.float32)


def reference_of(layer, cell: str, **options):
    """The float64 NumPy reference layer with ``layer``'s product weights W_ih, W_hh rounded to
    bfloat16 (biases and peepholes are added, not multiplied in a product: kept as they are)."""
    ref = make(cell, layer.input_size, layer.hidden_size, np.float64, **options)
    ref.load_state_dict({k: (rounded(v) if k.startswith(("weight_ih", "weight_hh")) else v).astype(np.float64)
                         for k, v in layer.state_dict().items()})
    return ref


def emulated(ref, x: np.ndarray, state0: tuple) -> tuple:
    """The layer's bfloat16 arithmetic on the float64 reference: each step from rounded x_t and a
    rounded h_{t-1} (c_{t-1} as it is); returns outputs (T, B, H) and the last state."""
    h, rest = state0[0], state0[1:]
    outs = []
    with use("numpy"):
        for t in range(x.shape[0]):
            state = (rounded(h).astype(np.float64), *rest)
            y, new = ref(rounded(x[t:t + 1]).astype(np.float64), state if rest else state[0])
            new = new if isinstance(new, tuple) else (new,)
            h, rest = new[0], new[1:]
            outs.append(y[0])
    return np.stack(outs), (h, *rest)


@needs_bf16
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
@pytest.mark.parametrize("T, B, I, H", [(1, 3, 5, 37), (6, 3, 5, 37), (5, 40, 33, 70)])
def test_the_sequence_is_the_stated_arithmetic(cell, T, B, I, H):
    layer = make(cell, I, H)
    x = inputs(T, B, I)
    rng = np.random.default_rng(7)
    state0 = tuple(rng.standard_normal((1, B, H)).astype(np.float32) for _ in range(2 if cell == "lstm" else 1))
    with rnnkit.autocast():
        y, _ = layer(x, state0 if cell == "lstm" else state0[0])          # training's forward
        with rnnkit.no_grad():                  # inference (a sequence of one: the float32 step)
            y_infer, _ = layer(x, state0 if cell == "lstm" else state0[0]) if T > 1 else (y, None)
    want, _ = emulated(reference_of(layer, cell), x, tuple(s.astype(np.float64) for s in state0))
    # float32 sums of exact products: within K·2⁻²⁴ of the terms' sum; a few steps' worth of it
    np.testing.assert_allclose(y, want, rtol=0, atol=5e-5 if T > 1 else 2e-6)
    np.testing.assert_array_equal(y_infer, y)


@needs_bf16
@pytest.mark.parametrize("cell, options", [("gru", {}), ("lstm", {"peephole": True}),
                                           ("lstm", {"proj_size": 7})])
def test_one_step_is_the_stated_arithmetic(cell, options):
    """One step of every cell form: both products from rounded operands (the projection of an
    LSTM with proj_size is a float32 product, so it is compared at float32's precision)."""
    B, I, H = 33, 21, 40
    layer = make(cell, I, H, **options)
    x = inputs(1, B, I)
    with rnnkit.autocast():
        y, _ = layer(x)                         # with a tape: a sequence, not the streaming step
    ref = reference_of(layer, cell, **options)
    with use("numpy"):
        want, _ = ref(rounded(x).astype(np.float64))
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-6)


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@needs_bf16
@pytest.mark.parametrize("cell, options", [("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}),
                                           ("rnn", {}), ("lstm", {"proj_size": 9})])
def test_training_stays_within_bfloat16s_precision_of_float32(cell, options):
    """Outputs, dx and every parameter gradient move from float32's by about 2⁻⁸ (and do move)."""
    T, B, I, H = 12, 8, 24, 48
    layer = make(cell, I, H, **options)
    x = inputs(T, B, I)
    dy = np.random.default_rng(2).standard_normal(layer(x)[0].shape).astype(np.float32)

    def run():
        layer.zero_grad()
        y, _ = layer(x)
        dx, _ = layer.backward(dy)
        return [y, dx] + [p.grad.copy() for p in layer.parameters()]

    float32 = run()
    with rnnkit.autocast():
        mixed = run()
    for name, a, b in zip(["output", "dx"] + [n for n, _ in layer.named_parameters()], mixed, float32):
        assert 1e-5 < relative(a, b) < 3e-2, name


@needs_bf16
def test_the_same_bits_on_one_and_two_threads():
    layer = make("lstm", 64, 128)
    x = inputs(20, 32, 64)
    dy = np.ones((20, 32, 128), np.float32)
    results = []
    for n in (1, 2):
        with engine_threads(n), rnnkit.autocast():
            layer.zero_grad()
            y, _ = layer(x)
            layer.backward(dy)
            with rnnkit.no_grad():
                y_infer, _ = layer(x)
            results.append([y, y_infer] + [p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@needs_bf16
def test_inference_panels_follow_weights_changed_in_place():
    """Large weights keep their bfloat16 panels between inference calls: never stale ones."""
    layer = make("lstm", 32, 256)
    x = inputs(5, 4, 32)
    with rnnkit.no_grad(), rnnkit.autocast():
        before, _ = layer(x)
        dict(layer.named_parameters())["weight_hh_l0"].data[3, 5] += 1.0
        changed, _ = layer(x)
        dict(layer.named_parameters())["weight_hh_l0"].data[3, 5] -= 1.0
        again, _ = layer(x)
    assert not np.array_equal(before, changed)
    np.testing.assert_array_equal(before, again)


@needs_bf16
@pytest.mark.parametrize("cell, options", [("lstm", {"layer_norm": True}), ("gru", {"layer_norm": True})])
def test_float64_layers_and_what_stays_float32(cell, options):
    """float64 layers are untouched; a layer-normalised cell's recurrence stays float32 (its input
    projection is a bfloat16 product: the output moves, by bfloat16's precision)."""
    x = inputs(6, 3, 10)
    double = make(cell, 10, 20, np.float64)
    with rnnkit.no_grad():
        want64, _ = double(x.astype(np.float64))
        with rnnkit.autocast():
            got64, _ = double(x.astype(np.float64))
    np.testing.assert_array_equal(got64, want64)
    norm = make(cell, 10, 20, **options)
    with rnnkit.no_grad():
        want, _ = norm(x)
        with rnnkit.autocast():
            got, _ = norm(x)
    assert 1e-5 < relative(got, want) < 3e-2


def test_the_context_nests_and_can_be_disabled():
    assert product_precision() is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        with rnnkit.autocast() as outer:
            inner_expected = "bfloat16" if bf16.available() else None
            assert product_precision() == inner_expected
            with rnnkit.autocast(enabled=False):
                assert product_precision() is None
            assert product_precision() == inner_expected
    assert product_precision() is None and outer.dtype == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of bfloat16, got 'float16'"):
        rnnkit.autocast("float16")
    assert rnnkit.autocast("torch.bfloat16").dtype == "bfloat16"


def test_the_numpy_backend_runs_float32_and_says_so():
    layer = make("gru", 5, 9)
    x = inputs(4, 2, 5)
    with use("numpy"), rnnkit.no_grad():
        want, _ = layer(x)
        with pytest.warns(PrecisionWarning, match="NumPy reference backend is in use"):
            rnnkit.precision._WARNED.clear()
            with rnnkit.autocast():
                got, _ = layer(x)
    np.testing.assert_array_equal(got, want)


@needs_bf16
def test_backpropagation_is_the_stated_arithmetic():
    """The RNN's BPTT under autocast, emulated from the layer's own forward states: each tick's
    dh_{t-1} = bf16(da_t) bf16(W_hh), dx = bf16(DA) bf16(W_ih), dW = bf16(DA)ᵀ bf16([X | H_prev]),
    the element-wise step da_t = dh ⊙ (1 − h_t²) in float32, as the engine computes it."""
    T, B, I, H = 6, 8, 19, 40
    layer = make("rnn", I, H)
    x = inputs(T, B, I)
    dy = np.random.default_rng(5).standard_normal((T, B, H)).astype(np.float32)
    with rnnkit.autocast():
        layer.zero_grad()
        y, _ = layer(x)
        dx, dh0 = layer.backward(dy)
    grads = {n: p.grad for n, p in layer.named_parameters()}
    w = {k: rounded(v).astype(np.float64) for k, v in layer.state_dict().items() if k.startswith("weight")}
    h = np.concatenate([np.zeros((1, B, H), np.float32), y])
    carry = np.zeros((B, H), np.float32)
    das = np.zeros((T, B, H), np.float32)
    for t in range(T - 1, -1, -1):
        dh = carry + dy[t]
        das[t] = dh * (np.float32(1) - h[t + 1] * h[t + 1])
        carry = (rounded(das[t]) @ w["weight_hh_l0"]).astype(np.float32)
    da16 = rounded(das).astype(np.float64)
    scale = np.abs(dx).max()
    np.testing.assert_allclose(dh0[0], carry, rtol=0, atol=1e-4 * np.abs(carry).max())
    np.testing.assert_allclose(dx, da16 @ w["weight_ih_l0"], rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(grads["weight_ih_l0"], np.einsum("tbh,tbi->hi", da16, rounded(x)),
                               rtol=0, atol=1e-4 * np.abs(grads["weight_ih_l0"]).max())
    np.testing.assert_allclose(grads["weight_hh_l0"], np.einsum("tbh,tbk->hk", da16, rounded(h[:-1])),
                               rtol=0, atol=1e-4 * np.abs(grads["weight_hh_l0"]).max())
    np.testing.assert_allclose(grads["bias_ih_l0"], das.sum(axis=(0, 1)), rtol=1e-5, atol=1e-6)
