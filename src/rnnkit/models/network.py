"""The network behind every estimator: a recurrent branch and a convolutional branch, side by side.

    h, _ = RNN(x, lengths)              (T, B, D·H)   LSTM / GRU / RNN, D = 2 if bidirectional;
                                                      norm_between: a norm after each layer
                                                      (rnnkit.norm.between.NormedStack)
    p_r  = pool(h, lengths)             (B, D·H)      last | mean | max | attention
    p_c  = FCN(x, lengths)              (B, Cₙ)       conv blocks + average (rnnkit.models.fcn)
    p    = [p_r, p_c]                   (B, D·H + Cₙ) either branch may be absent
    z    = dropout(p) W_outᵀ + b        (B, K)        class logits, regression outputs, forecasts

With both branches this is Karim et al.'s LSTM-FCN / GRU-FCN (2018) on the input as it is (no
"dimension shuffle"); with ``hidden_size=0`` the fully convolutional network alone (Wang et al.
2017); with no ``conv_filters`` the recurrent network with pooling (seed 002's many-to-one model).
Parameter names follow the attributes (``rnn.weight_ih_l0``, ``pool.W``, ``fcn.conv0.weight``,
``fcn.bn0.running_mean``, ``head.weight``, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rnnkit import init
from rnnkit.checks import check_choice, make_rng
from rnnkit.dropout import Dropout
from rnnkit.errors import InputError
from rnnkit.kinds import KINDS, layer_class
from rnnkit.layer_flags import LAYER_FLAGS, set_flags
from rnnkit.linear import Linear
from rnnkit.models.fcn import ConvBranch
from rnnkit.module import Module
from rnnkit.norm.between import NormedStack
from rnnkit.pooling import make_pool

CELLS = tuple(sorted(KINDS))             # gru, lstm, rnn


@dataclass(frozen=True)
class NetConfig:
    input_size: int
    output_size: int
    cell: str
    hidden_size: int                    # 0: no recurrent branch
    num_layers: int
    bidirectional: bool
    pooling: str
    dropout: float
    conv_filters: tuple[int, ...] = ()  # channels of each conv block; (): no convolutional branch
    conv_kernels: tuple[int, ...] = ()  # their kernel sizes
    norm_between: str = "none"          # "batch" | "layer" after each recurrent layer; files before: none
    layer_norm: bool = False            # the recurrent layers' own options, passed only when set
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0

    def __post_init__(self) -> None:      # JSON gives lists; files written before the conv branch lack them
        object.__setattr__(self, "conv_filters", tuple(int(c) for c in self.conv_filters))
        object.__setattr__(self, "conv_kernels", tuple(int(k) for k in self.conv_kernels))

    @property
    def recurrent(self) -> bool:
        return self.hidden_size > 0

    def layer_options(self) -> dict:
        """The recurrent layers' options that this configuration sets (none at their defaults)."""
        return set_flags({f: getattr(self, f) for f in LAYER_FLAGS})

    def to_json(self) -> dict:
        return asdict(self)


class SequenceNet(Module):
    def __init__(self, cfg: NetConfig, *, dtype=np.float64, rng=None) -> None:
        super().__init__(dtype=dtype)
        check_choice("cell", cfg.cell, list(CELLS), InputError)     # the pooling name: make_pool checks it
        if not cfg.recurrent and not cfg.conv_filters:
            raise ValueError("SequenceNet: no branch (hidden_size is 0 and conv_filters is empty)")
        self.cfg = cfg
        rng = make_rng(rng)                          # one generator: initialisation, then dropout
        width = 0
        if cfg.recurrent:
            D = 2 if cfg.bidirectional else 1
            between = cfg.dropout if cfg.num_layers > 1 else 0.0
            if cfg.norm_between == "none":
                self.rnn = layer_class(cfg.cell)(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers,
                                                 dropout=between, bidirectional=cfg.bidirectional, dtype=dtype,
                                                 rng=rng, **cfg.layer_options())
            else:
                self.rnn = NormedStack(cfg.cell, cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.norm_between,
                                       between, cfg.bidirectional, cfg.layer_options(), dtype=dtype, rng=rng)
            if "f" in KINDS[cfg.cell].gates:         # the LSTM remembers by default (Jozefowicz et al. 2015)
                init.forget_bias_(self.rnn, 1.0)
            self.pool = make_pool(cfg.pooling, D * cfg.hidden_size, bidirectional=cfg.bidirectional,
                                  dtype=dtype, rng=rng)
            self.register_module("rnn", self.rnn)
            self.register_module("pool", self.pool)
            width += D * cfg.hidden_size
        if cfg.conv_filters:
            self.fcn = self.register_module(
                "fcn", ConvBranch(cfg.input_size, cfg.conv_filters, cfg.conv_kernels, dtype=dtype, rng=rng))
            width += self.fcn.out_features
        self.split = width - (self.fcn.out_features if cfg.conv_filters else 0)   # p_r | p_c
        self.drop = self.register_module("drop", Dropout(cfg.dropout, dtype=dtype, rng=rng))
        self.head = self.register_module("head", Linear(width, cfg.output_size, dtype=dtype, rng=rng))

    def __call__(self, x, lengths=None) -> np.ndarray:
        return self.forward(x, lengths)

    def forward(self, x, lengths=None) -> np.ndarray:
        """x (T, B, input_size), lengths (B,) or None → (B, output_size)."""
        parts = []
        if self.cfg.recurrent:
            h, _ = self.rnn(x, lengths=lengths)
            parts.append(self.pool(h, lengths))                     # (B, D·H)
        if self.cfg.conv_filters:
            parts.append(self.fcn(x, lengths))                      # (B, Cₙ)
        p = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return self.head(self.drop(p))

    def backward(self, dz: np.ndarray) -> None:
        """Parameter gradients of the last forward call (added into each ``p.grad``)."""
        dp = self.drop.backward(self.head.backward(dz))             # (B, D·H + Cₙ)
        if self.cfg.recurrent:
            self.rnn.backward(self.pool.backward(np.ascontiguousarray(dp[:, :self.split])))
        if self.cfg.conv_filters:
            self.fcn.backward(np.ascontiguousarray(dp[:, self.split:]))


def with_dtype(net: SequenceNet, dtype) -> SequenceNet:
    """A copy of ``net`` computing in ``dtype``, in eval mode: the estimators train in float32
    (~35% faster per step than float64 here) and predict in float64, so a prediction does not
    depend on which other sequences share its batch."""
    twin = SequenceNet(net.cfg, dtype=dtype, rng=0)
    twin.load_state_dict(net.state_dict())
    return twin.eval()
