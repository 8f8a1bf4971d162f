"""The module interface: parameters, gradients accumulation, modes, dtypes, initialisation."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from helpers import rel_err


def test_named_parameters_are_pytorch_ordered_with_grads():
    lstm = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True)
    names = [n for n, _ in lstm.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse"]
    assert len(names) == 16 and len(lstm.parameters()) == 16
    for _, p in lstm.named_parameters():
        assert p.grad.shape == p.data.shape and p.grad.dtype == np.float32


def test_gradients_accumulate_until_zero_grad():
    gru = rnnkit.GRU(3, 4, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out, _ = gru(x)
    gru.backward(np.ones_like(out))
    once = [p.grad.copy() for p in gru.parameters()]
    gru(x)
    gru.backward(np.ones_like(out))
    for a, p in zip(once, gru.parameters()):
        np.testing.assert_allclose(p.grad, 2 * a, rtol=1e-12)
    gru.zero_grad()
    assert all(not p.grad.any() for p in gru.parameters())


def test_backward_differentiates_most_recent_call():
    rnn = rnnkit.RNN(2, 3, dtype=np.float64, rng=0)
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((4, 1, 2)), rng.standard_normal((6, 1, 2))
    rnn(x1)
    out, _ = rnn(x2)
    dx, _ = rnn.backward(np.ones_like(out))
    assert dx.shape == x2.shape


def test_no_grad_keeps_nothing_and_backward_refuses():
    lstm = rnnkit.LSTM(3, 4, rng=0)
    x = np.ones((5, 2, 3), np.float32)
    out_grad, _ = lstm(x)
    with rnnkit.no_grad():
        assert not rnnkit.is_grad_enabled()
        out, _ = lstm(x)
    assert rnnkit.is_grad_enabled()
    np.testing.assert_array_equal(out, out_grad)
    assert lstm._cache is None
    with pytest.raises(RuntimeError, match="no_grad"):
        lstm.backward(out)


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="no forward call"):
        rnnkit.GRU(2, 3).backward(np.zeros((1, 1, 3)))
    with pytest.raises(RuntimeError, match="no forward call"):
        rnnkit.LSTMCell(2, 3).backward(np.zeros(3))
    cell = rnnkit.GRUCell(2, 3)
    with rnnkit.no_grad():
        cell(np.zeros(2))
    with pytest.raises(RuntimeError, match="no_grad"):
        cell.backward(np.zeros(3))


def test_dropout_only_in_training_mode():
    lstm = rnnkit.LSTM(3, 8, num_layers=2, dropout=0.5, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((6, 4, 3))
    a, _ = lstm(x)
    b, _ = lstm(x)
    assert rel_err(a, b) > 1e-3                            # fresh masks each call
    lstm.eval()
    c, _ = lstm(x)
    d, _ = lstm(x)
    np.testing.assert_array_equal(c, d)
    assert not lstm.training and lstm.train().training


def test_dropout_scales_kept_units():
    rnn = rnnkit.RNN(1, 1, num_layers=2, dropout=0.25, dtype=np.float64, rng=3)
    cache_masks = []
    for _ in range(50):
        rnn(np.ones((20, 10, 1)))
        cache_masks.append(rnn._cache.dropout_masks[0])
    m = np.concatenate([k.ravel() for k in cache_masks])
    assert set(np.unique(m)) == {0.0, 1 / 0.75}
    assert abs((m == 0).mean() - 0.25) < 0.03


def test_initialisation_is_uniform_in_plus_minus_one_over_sqrt_h():
    lstm = rnnkit.LSTM(10, 100, rng=0)
    for name, p in lstm.named_parameters():
        assert np.abs(p.data).max() <= 0.1, name
        assert np.abs(p.data).max() > 0.099, name
        assert abs(p.data.mean()) < 0.01, name
    same = rnnkit.LSTM(10, 100, rng=0)
    other = rnnkit.LSTM(10, 100, rng=1)
    np.testing.assert_array_equal(lstm.state_dict()["weight_hh_l0"], same.state_dict()["weight_hh_l0"])
    assert not np.array_equal(lstm.state_dict()["weight_hh_l0"], other.state_dict()["weight_hh_l0"])


def test_rng_accepts_generator_and_seed():
    g = np.random.default_rng(4)
    a = rnnkit.GRU(2, 3, rng=g)
    b = rnnkit.GRU(2, 3, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a.state_dict()["weight_ih_l0"], b.state_dict()["weight_ih_l0"])
    with pytest.raises(TypeError, match="rng"):
        rnnkit.GRU(2, 3, rng="seed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_and_gradients_keep_layer_dtype(dtype):
    lstm = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, peephole=True, dtype=dtype)
    x = np.ones((5, 2, 3), dtype=np.float64 if dtype == np.float32 else np.float32)   # converted
    out, (h, c) = lstm(x, lengths=[5, 3])
    dx, (dh, dc) = lstm.backward(np.ones(out.shape), (np.ones(h.shape), None))
    for a in (out, h, c, dx, dh, dc):
        assert a.dtype == dtype
    assert all(p.grad.dtype == dtype for p in lstm.parameters())


def test_integer_input_is_converted():
    rnn = rnnkit.RNN(2, 3, dtype=np.float64, rng=0)
    a, _ = rnn(np.ones((3, 2), dtype=np.int64))
    b, _ = rnn(np.ones((3, 2)))
    np.testing.assert_array_equal(a, b)


def test_unbatched_and_batch_first_shapes():
    lstm = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, batch_first=True)
    out, (h, c) = lstm(np.zeros((5, 7, 3)))                 # (B, T, I)
    assert out.shape == (5, 7, 4) and h.shape == (4, 5, 2) and c.shape == (4, 5, 4)
    out, (h, c) = lstm(np.zeros((7, 3)))                    # unbatched (T, I)
    assert out.shape == (7, 4) and h.shape == (4, 2) and c.shape == (4, 4)
    dx, (dh, dc) = lstm.backward(np.ones((7, 4)))
    assert dx.shape == (7, 3) and dh.shape == (4, 2) and dc.shape == (4, 4)


def test_lengths_leave_state_unchanged_and_output_zero():
    gru = rnnkit.GRU(2, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 2))
    out, h = gru(x, lengths=np.array([6, 2]))
    short, h_short = gru(x[:2, 1:2])
    np.testing.assert_allclose(h[0, 1], h_short[0, 0], rtol=1e-14)
    assert np.all(out[2:, 1] == 0)
    np.testing.assert_allclose(out[:2, 1], short[:, 0], rtol=1e-14)


def test_parameter_repr_and_layer_repr():
    lstm = rnnkit.LSTM(3, 4, num_layers=2)
    assert "LSTM(3, 4, num_layers=2" in repr(lstm)
    assert "shape=(16, 3)" in repr(lstm.parameters()[0])
