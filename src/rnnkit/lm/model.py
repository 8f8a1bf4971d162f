"""The language model: Embedding → recurrent stack → Dropout → output layer (the next token's
distribution: a full softmax, or an adaptive one for a large vocabulary).

    e_t = E[x_t]                      (T, B, E)
    h_t, state = RNN(e, state)        (T, B, H)    with norm_between, a norm after each layer:
                                                   rnnkit.norm.between.NormedStack
    z_t = dropout(h_t) W_outᵀ + b     (T, B, V) logits of the next token          softmax "full"
    log p(· | x_≤t) = ASM(dropout(h_t))  (T, B, V) exact log-probabilities      softmax "adaptive"

(:mod:`rnnkit.adaptive`). :meth:`CharLM.forward` returns scores whose softmax is the next token's
distribution (the logits, or the log-probabilities themselves); training and scoring go through
:meth:`CharLM.loss`, which the adaptive softmax computes on each target's cluster only.

Parameter names follow the attribute names (``embed.weight``, ``rnn.weight_ih_l0``, ...,
``head.weight`` — or ``head.head.weight``, ``head.tail.0.0.weight``, ... for the adaptive
softmax), so the same model written in PyTorch with these attributes shares state dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rnnkit import init
from rnnkit.adaptive import AdaptiveLogSoftmaxWithLoss
from rnnkit.dropout import Dropout
from rnnkit.embedding import Embedding
from rnnkit.kinds import GATED_FIRST, KINDS, layer_class, option_problems
from rnnkit.linear import Linear
from rnnkit.module import Module
from rnnkit.checks import check_choice, make_rng
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.layer_flags import LAYER_FLAGS, flag_problems, set_flags
from rnnkit.losses import softmax_cross_entropy
from rnnkit.norm.between import NORMS, NormedStack

CELLS = GATED_FIRST             # lstm, gru, rnn
SOFTMAXES = ("full", "adaptive")
@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    cell: str = "lstm"
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0
    peephole: bool = False
    softmax: str = "full"           # "full" | "adaptive"; run directories before it: "full"
    cutoffs: tuple[int, ...] = ()   # the adaptive softmax's clusters (rnnkit.adaptive), ids by frequency
    div_value: float = 4.0          # each cluster's projection is 4x narrower (Grave et al., PyTorch)
    norm_between: str = "none"      # "none" | "batch" | "layer": a norm after every recurrent layer,
                                    # before the next and before the output layer; none: the plain
                                    # stack, as every run directory before the option
    layer_norm: bool = False        # the layers' own layer-normalised cells (off: the plain cells)
    recurrent_dropout: float = 0.0  # the layers' dropout of the state entering W_hh (0: none)
    zoneout: float = 0.0            # the layers' probability of keeping the previous state (0: none)
    init: str = "default"           # rnnkit.init.SCHEMES for the recurrent weights; default: PyTorch's
                                    # U(-1/sqrt(H), 1/sqrt(H)), what every earlier run used

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))
        check_choice("norm_between", self.norm_between, NORMS)
        check_choice("init", self.init, init.SCHEMES)
        if problems := flag_problems(self.cell, asdict(self)):
            raise ValueError("; ".join(problems))
        check_choice("softmax", self.softmax, SOFTMAXES)
        if self.softmax == "adaptive" and not self.cutoffs:
            raise ValueError("the adaptive softmax needs cutoffs")
        check_choice("cell", self.cell, CELLS)
        problems = option_problems(self.cell, self.layer_options())
        if problems:
            raise ValueError("; ".join(problems))

    def layer_options(self) -> dict:
        """The options of the recurrent layer that this configuration sets: the peephole and the
        LAYER_FLAGS, each only when not at its default (a layer without the option never sees it)."""
        peephole = {"peephole": True} if self.peephole else {}
        return {**peephole, **set_flags({f: getattr(self, f) for f in LAYER_FLAGS})}

    def to_json(self) -> dict:
        d = asdict(self)
        d["cutoffs"] = list(self.cutoffs)
        return d


class CharLM(Module):
    def __init__(self, cfg: ModelConfig, *, dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.cfg = cfg
        rng = make_rng(rng)
        self.embed = Embedding(cfg.vocab_size, cfg.embed, dtype=dtype, rng=rng)
        between = cfg.dropout if cfg.layers > 1 else 0.0          # dropout between layers
        if cfg.norm_between == "none":
            self.rnn = layer_class(cfg.cell)(cfg.embed, cfg.hidden, num_layers=cfg.layers, dropout=between,
                                             dtype=dtype, rng=rng, **cfg.layer_options())
        else:
            self.rnn = NormedStack(cfg.cell, cfg.embed, cfg.hidden, cfg.layers, cfg.norm_between, between,
                                   options=cfg.layer_options(), dtype=dtype, rng=rng)
        self.drop = Dropout(cfg.dropout, dtype=dtype, rng=rng)
        self.adaptive = cfg.softmax == "adaptive"
        self.head = (AdaptiveLogSoftmaxWithLoss(cfg.hidden, cfg.vocab_size, cfg.cutoffs, cfg.div_value,
                                                dtype=dtype, rng=rng) if self.adaptive
                     else Linear(cfg.hidden, cfg.vocab_size, dtype=dtype, rng=rng))
        self._dloss: np.ndarray | None = None    # ∂loss/∂(logits or target log-probabilities)
        for name in ("embed", "rnn", "drop", "head"):
            self.register_module(name, getattr(self, name))
        if cfg.init != "default":          # after every draw of the default: the rest stays as it was
            init.init_recurrent_(self.rnn, cfg.init, rng=rng)
        self.rng = rng          # shared by every dropout in the model: one state to checkpoint

    def use_rng(self, rng) -> None:
        """Draw training mode's masks (dropout, recurrent dropout, zoneout) from ``rng`` from now
        on: e.g. one rank's share of the whole batch's draws from ``self.rng``
        (:meth:`rnnkit.distributed.World.sharded_random`). ``self.rng`` stays the generator whose
        state a checkpoint keeps."""
        for part in (self.rnn, self.drop):
            part.use_rng(rng)

    def initial_state(self, batch: int):
        shapes = self.rnn.state_shapes(batch)
        zeros = tuple(np.zeros(s, self.dtype) for s in shapes)
        return zeros if len(KINDS[self.cfg.cell].states) > 1 else zeros[0]

    def __call__(self, idx, state=None, lengths=None):
        return self.forward(idx, state, lengths)

    def forward(self, idx, state=None, lengths=None):
        """idx (T, B) integer ids → (scores (T, B, V), final state): the logits, or with the
        adaptive softmax the log-probabilities (the softmax of either is the distribution)."""
        h, state = self.rnn(self.embed(idx), state, lengths=lengths)
        h = self.drop(h)
        if self.adaptive:
            return self.head.log_prob(h.reshape(-1, h.shape[-1])).reshape(h.shape[:-1] + (-1,)), state
        return self.head(h), state

    def backward(self, dlogits: np.ndarray) -> None:
        """Gradients of the last forward call into every ``p.grad`` (the ids have none); the full
        softmax's logits only (the adaptive softmax trains through :meth:`loss`)."""
        if self.adaptive:
            raise RuntimeError("CharLM.backward: an adaptive-softmax model trains through loss() and "
                               "backward_loss(), not through the scores of forward()")
        self._backward_hidden(self.head.backward(dlogits))

    def _backward_hidden(self, dh: np.ndarray) -> None:
        dh, _ = self.rnn.backward(self.drop.backward(dh))
        self.embed.backward(dh)

    def loss(self, idx, targets, state=None, mask=None):
        """(mean negative log-likelihood in nats of ``targets`` (T, B) over the positions ``mask``
        counts (all by default), final state); with gradients enabled, :meth:`backward_loss`
        then gives its gradient. The full softmax: fused softmax cross-entropy of the logits;
        the adaptive one: each target's log-probability from its own cluster."""
        h, state = self.rnn(self.embed(idx), state)
        h = self.drop(h)                                                   # (T, B, H)
        grad = is_grad_enabled()
        if not self.adaptive:
            loss, self._dloss = softmax_cross_entropy(self.head(h), targets, mask, grad=grad)
            return loss, state
        targets = np.asarray(targets)
        if targets.shape != h.shape[:-1]:
            raise ValueError(f"targets must have shape {h.shape[:-1]} (the ids'), got {targets.shape}")
        w = np.ones(targets.size) if mask is None else np.asarray(mask, np.float64).reshape(-1)
        n = max(float(w.sum()), 1.0)
        out = self.head(h.reshape(-1, h.shape[-1]), targets.reshape(-1)).output     # (T·B,)
        self._dloss = (-w / n).reshape(targets.shape) if grad else None
        return float(-np.dot(out.astype(np.float64), w) / n), state

    def backward_loss(self) -> None:
        """Gradients of the last :meth:`loss` into every ``p.grad``."""
        if self._dloss is None:
            raise RuntimeError("CharLM.backward_loss: no loss() call with gradients enabled before it")
        d, self._dloss = self._dloss, None
        if self.adaptive:
            dh = self.head.backward(d.reshape(-1))
            self._backward_hidden(dh.reshape(d.shape + (-1,)))
        else:
            self._backward_hidden(self.head.backward(d))
