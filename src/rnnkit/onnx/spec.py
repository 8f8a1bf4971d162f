"""What an exporter needs to know of a recurrent layer or cell, read through the public API.

A cell is a one-layer, one-direction stack whose parameters lack the ``_l0`` suffix; reading both
into one record lets a single piece of graph code export layers, cells and every model built on
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.cells import CellBase, GRUCell, LSTMCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.recurrent import RecurrentBase

KINDS = {RNN: "rnn", LSTM: "lstm", GRU: "gru", RNNCell: "rnn", LSTMCell: "lstm", GRUCell: "gru"}


@dataclass(frozen=True)
class StackSpec:
    kind: str                       # "rnn" | "lstm" | "gru"
    input_size: int
    hidden_size: int
    num_layers: int
    num_directions: int
    proj_size: int                  # 0: none
    bias: bool
    peephole: bool
    reset_after: bool               # GRU: PyTorch's form (True) or Cho's (False)
    nonlinearity: str               # RNN: "tanh" | "relu"
    params: dict                    # PyTorch names with _l{k}[_reverse] -> array

    @property
    def h_out(self) -> int:
        return self.proj_size or self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        """Sizes of the state parts: (h,) or, for the LSTM, (h, c); c has H even when projecting."""
        return (self.h_out, self.hidden_size) if self.kind == "lstm" else (self.hidden_size,)

    def cell_params(self, layer: int, direction: int) -> dict[str, np.ndarray]:
        """The parameters of one layer and direction, by field (``weight_ih``, ``weight_ci``, ...)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return {name[: -len(suffix)]: a for name, a in self.params.items() if name.endswith(suffix)}


def _kind(module) -> str:
    for cls in type(module).__mro__:
        if cls in KINDS:
            return KINDS[cls]
    raise TypeError(f"not a recurrent layer or cell: {type(module).__name__}")


def stack_spec(module) -> StackSpec:
    """The StackSpec of an rnnkit RNN/LSTM/GRU layer or RNNCell/LSTMCell/GRUCell."""
    kind = _kind(module)
    common = dict(kind=kind, input_size=module.input_size, hidden_size=module.hidden_size, bias=module.bias,
                  peephole=bool(getattr(module, "peephole", False)),
                  reset_after=bool(getattr(module, "reset_after", True)),
                  nonlinearity=getattr(module, "nonlinearity", "tanh"))
    if isinstance(module, RecurrentBase):
        return StackSpec(num_layers=module.num_layers, num_directions=module.num_directions,
                         proj_size=module.proj_size, params=dict(module.state_dict()), **common)
    assert isinstance(module, CellBase)
    params = {name + "_l0": a for name, a in module.state_dict().items()}
    return StackSpec(num_layers=1, num_directions=1, proj_size=0, params=params, **common)
