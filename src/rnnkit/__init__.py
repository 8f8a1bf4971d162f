"""rnnkit: recurrent neural networks in NumPy with hand-derived backpropagation through time."""

from rnnkit import init  # noqa: F401  (rnnkit.init.kaiming_uniform_, ... as torch.nn.init)
from rnnkit.activation import ReLU
from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.conv import Conv1d
from rnnkit.grad_mode import is_grad_enabled, no_grad
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.module import Module, Parameter
from rnnkit.precision import autocast, quantize_dynamic
from rnnkit.norm import BatchNorm1d, LayerNorm

__version__ = "0.1.0"

__all__ = [
    "GRU", "GRUCell", "LSTM", "LSTMCell", "Module", "Parameter", "RNN", "RNNCell",
    "autocast", "is_grad_enabled", "no_grad", "quantize_dynamic",
    "BatchNorm1d", "Conv1d", "LayerNorm", "ReLU",       # the feed-forward layers of conv/norm blocks
]
