"""rnnkit: recurrent neural networks in NumPy with hand-derived backpropagation through time."""

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.grad_mode import is_grad_enabled, no_grad
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.module import Module, Parameter

__version__ = "0.1.0"

__all__ = [
    "GRU", "GRUCell", "LSTM", "LSTMCell", "Module", "Parameter", "RNN", "RNNCell",
    "is_grad_enabled", "no_grad",
]
