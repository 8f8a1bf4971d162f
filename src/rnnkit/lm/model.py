"""The character language model: Embedding → recurrent stack → Dropout → Linear.

    e_t = E[x_t]                      (T, B, E)
    h_t, state = RNN(e, state)        (T, B, H)
    z_t = dropout(h_t) W_outᵀ + b     (T, B, V) logits of the next character

Parameter names follow the attribute names (``embed.weight``, ``rnn.weight_ih_l0``, ...,
``head.weight``), so the same model written in PyTorch with these attributes shares state dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rnnkit.dropout import Dropout
from rnnkit.embedding import Embedding
from rnnkit.kinds import GATED_FIRST, KINDS, layer_class, option_problems
from rnnkit.linear import Linear
from rnnkit.module import Module
from rnnkit.checks import make_rng

CELLS = GATED_FIRST             # lstm, gru, rnn


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    cell: str = "lstm"
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    peephole: bool = False

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        problems = option_problems(self.cell, self.layer_options())
        if problems:
            raise ValueError("; ".join(problems))

    def layer_options(self) -> dict:
        """The options of the recurrent layer that this configuration sets (the peephole)."""
        return {"peephole": self.peephole} if self.peephole else {}

    def to_json(self) -> dict:
        return asdict(self)


class CharLM(Module):
    def __init__(self, cfg: ModelConfig, *, dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.cfg = cfg
        rng = make_rng(rng)
        self.embed = Embedding(cfg.vocab_size, cfg.embed, dtype=dtype, rng=rng)
        rnn_kw = dict(num_layers=cfg.layers, dropout=cfg.dropout if cfg.layers > 1 else 0.0,
                      dtype=dtype, rng=rng)
        self.rnn = layer_class(cfg.cell)(cfg.embed, cfg.hidden, **cfg.layer_options(), **rnn_kw)
        self.drop = Dropout(cfg.dropout, dtype=dtype, rng=rng)
        self.head = Linear(cfg.hidden, cfg.vocab_size, dtype=dtype, rng=rng)
        for name in ("embed", "rnn", "drop", "head"):
            self.register_module(name, getattr(self, name))
        self.rng = rng          # shared by every dropout in the model: one state to checkpoint

    def initial_state(self, batch: int):
        shapes = self.rnn.state_shapes(batch)
        zeros = tuple(np.zeros(s, self.dtype) for s in shapes)
        return zeros if len(KINDS[self.cfg.cell].states) > 1 else zeros[0]

    def __call__(self, idx, state=None, lengths=None):
        return self.forward(idx, state, lengths)

    def forward(self, idx, state=None, lengths=None):
        """idx (T, B) integer ids → (logits (T, B, V), final state)."""
        h, state = self.rnn(self.embed(idx), state, lengths=lengths)
        return self.head(self.drop(h)), state

    def backward(self, dlogits: np.ndarray) -> None:
        """Gradients of the last forward call into every ``p.grad`` (the ids have none)."""
        dh, _ = self.rnn.backward(self.drop.backward(self.head.backward(dlogits)))
        self.embed.backward(dh)
