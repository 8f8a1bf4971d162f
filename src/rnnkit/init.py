"""Initialisers, applied in place to arrays (``p.data``) or to a recurrent layer's parameters.

- ``xavier_uniform_`` / ``xavier_normal_`` (Glorot & Bengio 2010): variance 2 / (fan_in + fan_out).
- ``kaiming_uniform_`` / ``kaiming_normal_`` (He et al. 2015): std = gain / √fan, gain from
  ``calculate_gain`` (√2 for ReLU), fan the fan_in (keeps the forward variance) or the fan_out
  (the backward one); uniform on ±√3·std. torch.nn.init's signatures, values and errors.
- ``orthogonal_`` (Saxe et al. 2014): a (semi-)orthogonal matrix from the QR of a Gaussian one.
- ``orthogonal_recurrent_``: every gate block of every ``weight_hh`` made orthogonal, so that the
  recurrent map neither shrinks nor grows a vector at initialisation.
- ``init_recurrent_``: one of SCHEMES applied to every weight of a recurrent layer or cell.
- ``forget_bias_``: the LSTM forget gate's total bias (b_if + b_hf) set to a value, commonly 1
  (Gers et al. 2000; Jozefowicz et al. 2015), so the cell remembers by default.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from rnnkit.checks import check_choice, make_rng

# torch.nn.init.calculate_gain's names whose gain is 1: the linear maps and the sigmoid.
LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
NONLINEARITIES = (*LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")
FAN_MODES = ("fan_in", "fan_out")


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel): in·k and out·k, k = the kernel's size."""
    if len(shape) < 2:
        raise ValueError(f"Fan in and fan out can not be computed for an array with fewer than 2 dimensions, "
                         f"got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain that keeps the variance of activations through ``nonlinearity`` (torch's values):

        linear, conv*, sigmoid: 1      tanh: 5/3      relu: √2      selu: 3/4
        leaky_relu: √(2 / (1 + s²)), s = param (the negative slope; 0.01 when None)
    """
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, (bool, np.bool_)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4            # found empirically (pytorch PR 50664), as torch has it
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}; one of {', '.join(NONLINEARITIES)}")


def kaiming_std(shape: tuple[int, ...], a: float = 0, mode: str = "fan_in",
                nonlinearity: str = "leaky_relu") -> float:
    """std = gain / √fan of He's initialisation for a weight of this shape."""
    if mode not in FAN_MODES:                    # torch lower-cases the mode first
        if not isinstance(mode, str) or mode.lower() not in FAN_MODES:
            raise ValueError(f"Mode {mode} not supported, please use one of {list(FAN_MODES)}")
        mode = mode.lower()
    fan_in, fan_out = _fans(shape)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def _empty(a: np.ndarray) -> bool:
    if 0 in a.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def kaiming_uniform_(tensor: np.ndarray, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     *, rng=None) -> np.ndarray:
    """tensor ~ U(−b, b), b = √3 · gain / √fan (He et al. 2015), in place; ``a`` is the negative
    slope of the leaky ReLU that follows (used by ``nonlinearity="leaky_relu"`` only)."""
    if _empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * kaiming_std(tensor.shape, a, mode, nonlinearity)
    tensor[...] = make_rng(rng).uniform(-bound, bound, tensor.shape)
    return tensor


def kaiming_normal_(tensor: np.ndarray, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    *, rng=None) -> np.ndarray:
    """tensor ~ N(0, std²), std = gain / √fan (He et al. 2015), in place; arguments as
    :func:`kaiming_uniform_`."""
    if _empty(tensor):
        return tensor
    tensor[...] = make_rng(rng).standard_normal(tensor.shape) * kaiming_std(tensor.shape, a, mode, nonlinearity)
    return tensor


def xavier_uniform_(a: np.ndarray, gain: float = 1.0, *, rng=None) -> np.ndarray:
    fan_in, fan_out = _fans(a.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    a[...] = make_rng(rng).uniform(-bound, bound, a.shape)
    return a


def xavier_normal_(a: np.ndarray, gain: float = 1.0, *, rng=None) -> np.ndarray:
    fan_in, fan_out = _fans(a.shape)
    a[...] = make_rng(rng).standard_normal(a.shape) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return a


def orthogonal_(a: np.ndarray, gain: float = 1.0, *, rng=None) -> np.ndarray:
    rows, cols = a.shape
    g = make_rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))                 # make the distribution uniform (Haar), as torch does
    a[...] = gain * (q if rows >= cols else q.T)
    return a


def orthogonal_recurrent_(layer, gain: float = 1.0, *, rng=None) -> None:
    """Each (H, H_out) gate block of each ``weight_hh*`` of a layer or cell made orthogonal."""
    rng = make_rng(rng)
    H = layer.hidden_size
    for name, p in layer.named_parameters():
        if name.startswith("weight_hh"):
            for block in range(p.data.shape[0] // H):
                orthogonal_(p.data[block * H:(block + 1) * H], gain, rng=rng)


def forget_bias_(lstm, value: float = 1.0) -> None:
    """Set b_if = value and b_hf = 0 in every LSTM bias, so the forget gate starts at σ(value)."""
    rows = lstm.kind.gate("f", lstm.hidden_size)
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            p.data[rows] = value
        elif name.startswith("bias_hh"):
            p.data[rows] = 0.0


SCHEMES = ("default", "xavier", "orthogonal", "kaiming")


def init_recurrent_(layer, scheme: str, *, rng=None) -> None:
    """Re-initialise the weights of a recurrent layer or cell (biases keep theirs) by ``scheme``:

    - ``default``: nothing (PyTorch's U(−1/√H, 1/√H), drawn at construction);
    - ``xavier``: each (H, in) gate block of each ``weight_ih`` / ``weight_hh`` Glorot-uniform;
    - ``orthogonal``: each gate block of each ``weight_hh`` orthogonal (the input weights keep theirs);
    - ``kaiming``: every weight (``weight_ih``, ``weight_hh``, ``weight_hr``) He-uniform with
      fan_in and the gain of the layer's own nonlinearity (√2 for an RNN with ReLU, 5/3 for tanh).
    """
    check_choice("init scheme", scheme, SCHEMES)
    rng = make_rng(rng)
    if scheme == "orthogonal":
        orthogonal_recurrent_(layer, rng=rng)
        return
    H = layer.hidden_size
    nonlinearity = getattr(layer, "nonlinearity", "tanh")
    for name, p in layer.named_parameters():
        if not name.startswith("weight_") or p.data.ndim != 2:
            continue                                   # biases; the LSTM's peephole vectors
        if scheme == "kaiming":
            kaiming_uniform_(p.data, mode="fan_in", nonlinearity=nonlinearity, rng=rng)
        elif scheme == "xavier" and not name.startswith("weight_hr"):
            for block in range(p.data.shape[0] // H):
                xavier_uniform_(p.data[block * H:(block + 1) * H], rng=rng)
        elif scheme == "xavier":
            xavier_uniform_(p.data, rng=rng)
