"""rnnkit.quantize_dynamic: the layers' inference with int8 products (rnnkit.engine.quantized).

What is promised, and checked here:
- the arithmetic is the one stated: x_t quantised per row (rnnkit.engine.quantize.quantize_rows),
  h_{t-1} with the fixed step s_h = max(1, max|h_0|)/127 about the zero point 128, W_ih and W_hh per
  output column, exact integer sums dequantised in float32. The reference is that arithmetic in
  NumPy (quantize.product / dequantize), followed by the cell's equations in float64;
- the price of it: outputs within a few per cent of float32's largest value, and not equal to them;
- the same bits on one thread as on two; the layer is a copy (unless inplace), keeps its float32
  weights and state_dict, has no backward, and says so; cells without a bounded state quantise
  only their input projection.
"""

import numpy as np
import pytest

import rnnkit
from rnnkit.engine import int8, quantized
from rnnkit.engine.quantize import QuantizedRows, dequantize, product, quantize_weights, unpack
from tests.helpers import engine_threads

needs_vnni = pytest.mark.skipif(not int8.available(), reason="no VNNI on this CPU")
CELLS = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def recurrent_term(h: np.ndarray, w_hh: np.ndarray, s_h: np.float32) -> np.ndarray:
    """h W_hhᵀ as the step computes it: h on the fixed step, W_hh per column (of W_hhᵀ)."""
    qw = quantize_weights(w_hh, 32, trans=True)
    q = quantized.quantize_state(h, s_h)
    rows = QuantizedRows(q, np.full(len(q), quantized.ZERO, np.int32), np.full(len(q), s_h, np.float32))
    acc = (q.astype(np.int64) @ unpack(qw).astype(np.int64))
    return dequantize(acc, rows, qw).astype(np.float64)


def emulated(layer, cell: str, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """The outputs (T, B, H) of the int8 arithmetic, step by step (c_0 = 0 for the LSTM)."""
    p = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    w_ih, w_hh = layer.state_dict()["weight_ih_l0"], layer.state_dict()["weight_hh_l0"]
    T, B, _ = x.shape
    H = layer.hidden_size
    gx = product(x.reshape(T * B, -1), int8.quantize(w_ih, trans=True)).astype(np.float64).reshape(T, B, -1)
    s_h = quantized.step_of(h0)
    h, c, outs = h0.astype(np.float64), np.zeros((B, H)), []
    for t in range(T):
        rec = recurrent_term(h.astype(np.float32), w_hh, s_h)
        if cell == "gru":
            a = gx[t] + p["bias_ih_l0"]
            s = rec + p["bias_hh_l0"]
            r, z = sigmoid(a[:, :H] + s[:, :H]), sigmoid(a[:, H:2 * H] + s[:, H:2 * H])
            n = np.tanh(a[:, 2 * H:] + r * s[:, 2 * H:])
            h = n + z * (h - n)
        else:
            a = gx[t] + p["bias_ih_l0"] + p["bias_hh_l0"] + rec
            if cell == "rnn":
                h = np.tanh(a)
            else:
                i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs)


@needs_vnni
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("B, I, H", [(3, 5, 37), (19, 33, 70)])
def test_the_sequence_is_the_stated_arithmetic(cell, B, I, H):
    layer = CELLS[cell](I, H, rng=3)
    x = np.random.default_rng(1).standard_normal((6, B, I)).astype(np.float32)
    h0 = (1.5 * np.random.default_rng(2).standard_normal((1, B, H))).astype(np.float32)   # |h_0| > 1
    state = (h0, np.zeros_like(h0)) if cell == "lstm" else h0
    y, _ = rnnkit.quantize_dynamic(layer)(x, state)
    want = emulated(layer, cell, x, h0[0])
    # the first step's products are those of the reference exactly (float32's rounding of the
    # cell's step apart); later ones read an h_t whose last bits may put a unit one step over
    np.testing.assert_allclose(y[0], want[0], rtol=0, atol=2e-6)
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-3)
    assert np.mean(np.abs(y - want) < 1e-5) > 0.9


@needs_vnni
@pytest.mark.parametrize("cell, options", [("lstm", {}), ("gru", {}), ("rnn", {}), ("gru", {"reset_after": False}),
                                           ("rnn", {"nonlinearity": "relu"}), ("lstm", {"proj_size": 9}),
                                           ("lstm", {"num_layers": 2, "bidirectional": True})])
def test_outputs_stay_within_int8s_precision_of_float32(cell, options):
    layer = CELLS[cell](24, 48, rng=3, **options)
    x = np.random.default_rng(1).standard_normal((15, 8, 24)).astype(np.float32)
    with rnnkit.no_grad():
        want, _ = layer(x)
    got, _ = rnnkit.quantize_dynamic(layer)(x)
    error = np.abs(got - want).max() / np.abs(want).max()
    assert 1e-4 < error < 5e-2


@needs_vnni
def test_the_same_bits_on_one_and_two_threads():
    q = rnnkit.quantize_dynamic(rnnkit.LSTM(64, 128, rng=0))
    x = np.random.default_rng(1).standard_normal((20, 32, 64)).astype(np.float32)
    outputs = []
    for n in (1, 2):
        with engine_threads(n):
            outputs.append(q(x)[0])
    np.testing.assert_array_equal(*outputs)


def test_a_quantised_model_is_a_copy_with_the_same_weights_and_no_backward():
    lstm = rnnkit.LSTM(6, 10, rng=0)
    q = rnnkit.quantize_dynamic(lstm, {rnnkit.LSTM}, dtype="torch.qint8")
    assert q is not lstm and lstm.quantized is None and q.quantized == "int8"
    assert repr(q).endswith("dtype=float32, quantized=int8)")
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(q.state_dict()[k], v)
    x = np.ones((4, 2, 6), np.float32)
    q(x)                                        # inference whatever the grad mode
    with pytest.raises(RuntimeError, match=r"LSTM.backward: the layer is quantised \(int8, rnnkit.quantize_dynamic\) "
                                           r"for inference and has no backward"):
        q.backward(np.ones((4, 2, 10), np.float32))
    assert rnnkit.quantize_dynamic(lstm, {rnnkit.GRU}).quantized is None          # not asked for
    assert rnnkit.quantize_dynamic(rnnkit.GRU(3, 4, dtype=np.float64)).quantized is None
    same = rnnkit.quantize_dynamic(lstm, inplace=True)
    assert same is lstm and lstm.quantized == "int8"
    with pytest.raises(ValueError, match="dtype must be one of qint8, got 'float16'"):
        rnnkit.quantize_dynamic(lstm, dtype="float16")


@needs_vnni
def test_quantised_weights_follow_weights_changed_in_place():
    q = rnnkit.quantize_dynamic(rnnkit.GRU(16, 64, rng=0))
    x = np.random.default_rng(1).standard_normal((5, 4, 16)).astype(np.float32)
    before, _ = q(x)
    w = dict(q.named_parameters())["weight_hh_l0"].data
    w[7, 3] += 2.0
    changed, _ = q(x)
    w[7, 3] -= 2.0
    again, _ = q(x)
    assert not np.array_equal(before, changed)
    np.testing.assert_array_equal(before, again)
