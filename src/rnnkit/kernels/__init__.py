"""Cell kernels: the equations of one recurrent step, forward and backward, side by side."""

from rnnkit.kernels.base import Kernel, Tape, Weights
from rnnkit.kernels.gru import GRUKernel
from rnnkit.kernels.lstm import LSTMKernel
from rnnkit.kernels.rnn import RNNKernel

__all__ = ["GRUKernel", "Kernel", "LSTMKernel", "RNNKernel", "Tape", "Weights"]
