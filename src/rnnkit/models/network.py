"""The network behind every estimator: recurrent stack → pooling → dropout → linear head.

    h, _ = RNN(x, lengths)            (T, B, D·H)   LSTM / GRU / RNN, D = 2 if bidirectional
    p    = pool(h, lengths)           (B, D·H)      last | mean | max | attention
    z    = dropout(p) W_outᵀ + b      (B, K)        class logits, regression outputs, forecasts

Parameter names follow the attributes (``rnn.weight_ih_l0``, ``pool.W``, ``head.weight``, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rnnkit import init
from rnnkit.dropout import Dropout
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.linear import Linear
from rnnkit.checks import make_rng
from rnnkit.module import Module
from rnnkit.pooling import make_pool
from rnnkit.models.errors import check_choice

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@dataclass(frozen=True)
class NetConfig:
    input_size: int
    output_size: int
    cell: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    pooling: str
    dropout: float

    def to_json(self) -> dict:
        return asdict(self)


class SequenceNet(Module):
    def __init__(self, cfg: NetConfig, *, dtype=np.float64, rng=None) -> None:
        super().__init__(dtype=dtype)
        check_choice("cell", cfg.cell, sorted(CELLS))     # the pooling name: make_pool checks it
        self.cfg = cfg
        rng = make_rng(rng)                          # one generator: initialisation, then dropout
        D = 2 if cfg.bidirectional else 1
        self.rnn = CELLS[cfg.cell](cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers,
                                   dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
                                   bidirectional=cfg.bidirectional, dtype=dtype, rng=rng)
        if cfg.cell == "lstm":
            init.forget_bias_(self.rnn, 1.0)         # remember by default (Jozefowicz et al. 2015)
        self.pool = make_pool(cfg.pooling, D * cfg.hidden_size, bidirectional=cfg.bidirectional,
                              dtype=dtype, rng=rng)
        self.drop = Dropout(cfg.dropout, dtype=dtype, rng=rng)
        self.head = Linear(D * cfg.hidden_size, cfg.output_size, dtype=dtype, rng=rng)
        for name in ("rnn", "pool", "drop", "head"):
            self.register_module(name, getattr(self, name))

    def __call__(self, x, lengths=None) -> np.ndarray:
        return self.forward(x, lengths)

    def forward(self, x, lengths=None) -> np.ndarray:
        """x (T, B, input_size), lengths (B,) or None → (B, output_size)."""
        h, _ = self.rnn(x, lengths=lengths)
        return self.head(self.drop(self.pool(h, lengths)))

    def backward(self, dz: np.ndarray) -> None:
        """Parameter gradients of the last forward call (added into each ``p.grad``)."""
        dh = self.pool.backward(self.drop.backward(self.head.backward(dz)))
        self.rnn.backward(dh)


def with_dtype(net: SequenceNet, dtype) -> SequenceNet:
    """A copy of ``net`` computing in ``dtype``, in eval mode: the estimators train in float32
    (~35% faster per step than float64 here) and predict in float64, so a prediction does not
    depend on which other sequences share its batch."""
    twin = SequenceNet(net.cfg, dtype=dtype, rng=0)
    twin.load_state_dict(net.state_dict())
    return twin.eval()
