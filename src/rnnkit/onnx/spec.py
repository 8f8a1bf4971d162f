"""What an exporter needs to know of a recurrent layer or cell, read through the public API.

A cell is a one-layer, one-direction stack whose parameters lack the ``_l0`` suffix; reading both
into one record lets a single piece of graph code export layers, cells and every model built on
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.cells import CellBase
from rnnkit.kinds import CellKind
from rnnkit.recurrent import RecurrentBase


@dataclass(frozen=True)
class StackSpec:
    kind: CellKind
    options: dict                   # the kind's options (peephole, reset_after, nonlinearity, ...)
    input_size: int
    hidden_size: int
    num_layers: int
    num_directions: int
    bias: bool
    params: dict                    # PyTorch names with _l{k}[_reverse] -> array

    @property
    def h_out(self) -> int:
        return self.kind.output_size(self.hidden_size, self.options)

    @property
    def proj_size(self) -> int:
        return self.options.get("proj_size", 0)

    def state_sizes(self) -> tuple[int, ...]:
        """Sizes of the state parts: (h,) or, for the LSTM, (h, c); c has H even when projecting."""
        return self.kind.state_sizes(self.hidden_size, self.options)

    def cell_params(self, layer: int, direction: int) -> dict[str, np.ndarray]:
        """The parameters of one layer and direction, by field (``weight_ih``, ``weight_ci``, ...)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return {name[: -len(suffix)]: a for name, a in self.params.items() if name.endswith(suffix)}


def stack_spec(module) -> StackSpec:
    """The StackSpec of an rnnkit RNN/LSTM/GRU layer or RNNCell/LSTMCell/GRUCell."""
    if not isinstance(module, (RecurrentBase, CellBase)):
        raise TypeError(f"not a recurrent layer or cell: {type(module).__name__}")
    common = dict(kind=module.kind, options=dict(module.options), input_size=module.input_size,
                  hidden_size=module.hidden_size, bias=module.bias)
    if isinstance(module, RecurrentBase):
        return StackSpec(num_layers=module.num_layers, num_directions=module.num_directions,
                         params=dict(module.state_dict()), **common)
    params = {name + "_l0": a for name, a in module.state_dict().items()}
    return StackSpec(num_layers=1, num_directions=1, params=params, **common)
