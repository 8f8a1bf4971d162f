"""Bad input raises ValueError or TypeError naming the argument, the expected and the actual value."""

from __future__ import annotations

import re

import numpy as np
import pytest

import rnnkit


def raises(exc, *fragments):
    """pytest.raises that requires every fragment (literally) in the message."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


@pytest.fixture
def lstm():
    return rnnkit.LSTM(3, 4, num_layers=2)


def test_wrong_number_of_dimensions(lstm):
    with raises(ValueError, "x must have 3 dimensions", "(T, B, I)", "got shape (5,)"):
        lstm(np.zeros(5))
    with raises(ValueError, "(B, T, I)", "got shape (1, 2, 3, 3)"):
        rnnkit.GRU(3, 4, batch_first=True)(np.zeros((1, 2, 3, 3)))


def test_mismatched_feature_size(lstm):
    with raises(ValueError, "input_size=3", "got shape (5, 2, 7)"):
        lstm(np.zeros((5, 2, 7)))


def test_empty_sequence(lstm):
    with raises(ValueError, "at least one step", "(0, 2, 3)"):
        lstm(np.zeros((0, 2, 3)))


def test_batch_mismatch_between_x_and_state(lstm):
    h0, c0 = np.zeros((2, 3, 4)), np.zeros((2, 3, 4))
    with raises(ValueError, "state[0] must have shape (2, 2, 4)", "got (2, 3, 4)"):
        lstm(np.zeros((5, 2, 3)), (h0, c0))
    with raises(ValueError, "state must have shape (1, 2, 4)", "got (1, 3, 4)"):
        rnnkit.GRU(3, 4)(np.zeros((5, 2, 3)), np.zeros((1, 3, 4)))
    with raises(ValueError, "state must have shape (1, 4)", "unbatched", "got (1, 2, 4)"):
        rnnkit.RNN(3, 4)(np.zeros((5, 3)), np.zeros((1, 2, 4)))


def test_lstm_state_must_be_a_pair(lstm):
    with raises(TypeError, "pair (h, c)", "ndarray"):
        lstm(np.zeros((5, 2, 3)), np.zeros((2, 2, 4)))


def test_lengths_errors(lstm):
    x = np.zeros((5, 2, 3))
    with raises(ValueError, "lengths must have shape (2,)", "got (3,)"):
        lstm(x, lengths=[5, 4, 3])
    with raises(ValueError, "lengths must lie in [1, T=5]", "min 0"):
        lstm(x, lengths=[0, 5])
    with raises(ValueError, "lengths must lie in [1, T=5]", "max 6"):
        lstm(x, lengths=[6, 5])
    with raises(TypeError, "lengths must be an integer array", "float64"):
        lstm(x, lengths=[2.5, 5.0])


def test_dout_and_dstate_shapes(lstm):
    out, (h, c) = lstm(np.zeros((5, 2, 3)))
    with raises(ValueError, "dout must have shape (5, 2, 4)", "got (5, 2, 3)"):
        lstm.backward(np.zeros((5, 2, 3)))
    with raises(ValueError, "dstate[1] must have shape (2, 2, 4)", "got (2, 4)"):
        lstm.backward(np.zeros_like(out), (None, np.zeros((2, 4))))


def test_constructor_arguments():
    with raises(ValueError, "proj_size must be smaller than hidden_size=4", "got 4"):
        rnnkit.LSTM(3, 4, proj_size=4)
    with raises(ValueError, "proj_size must be an integer >= 0", "got -1"):
        rnnkit.LSTM(3, 4, proj_size=-1)
    for bad in (1.0, -0.1, 1.5):
        with raises(ValueError, "dropout must be a finite number in [0, 1)", f"got {bad}"):
            rnnkit.GRU(3, 4, dropout=bad)
    with raises(TypeError, "dropout must be a finite number in [0, 1)", "got str '0.5'"):
        rnnkit.GRU(3, 4, dropout="0.5")
    with raises(ValueError, "nonlinearity must be one of tanh, relu", "'sigmoid'"):
        rnnkit.RNN(3, 4, nonlinearity="sigmoid")
    with raises(ValueError, "nonlinearity", "'gelu'"):
        rnnkit.RNNCell(3, 4, nonlinearity="gelu")
    with raises(ValueError, "hidden_size must be an integer >= 1", "got 0"):
        rnnkit.LSTM(3, 0)
    with raises(TypeError, "input_size must be an integer >= 1", "got float 3.0"):
        rnnkit.GRU(3.0, 4)
    with raises(ValueError, "num_layers must be an integer >= 1", "got 0"):
        rnnkit.RNN(3, 4, num_layers=0)
    with raises(TypeError, "dtype must be float32 or float64", "float16"):
        rnnkit.LSTM(3, 4, dtype=np.float16)


def test_non_real_input_is_rejected(lstm):
    with raises(TypeError, "x must be a real", "complex128"):
        lstm(np.zeros((5, 2, 3), dtype=complex))
    with raises(TypeError, "x must be a real", "<U1"):
        lstm(np.full((5, 2, 3), "a"))


def test_cell_input_errors():
    cell = rnnkit.LSTMCell(3, 4)
    with raises(ValueError, "x must have shape (B, 3) or (3,)", "got (2, 5)"):
        cell(np.zeros((2, 5)))
    with raises(ValueError, "state[1] must have shape (2, 4)", "got (3, 4)"):
        cell(np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4))))
    with raises(ValueError, "state must have shape (4,)", "unbatched", "got (1, 4)"):
        rnnkit.GRUCell(3, 4)(np.zeros(3), np.zeros((1, 4)))
