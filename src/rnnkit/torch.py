"""Move models between rnnkit and PyTorch in one call (torch is optional: ``pip install torch==2.13.0``).

    import rnnkit.torch
    t = rnnkit.torch.to_torch(layer)        # nn.LSTM / nn.GRU / nn.RNN, or a cell, or a CharLM
    layer = rnnkit.torch.from_torch(t)      # and back

Conv1d, BatchNorm1d (its running statistics too) and LayerNorm go both ways as well.

Parameters keep their names (rnnkit uses PyTorch's), dtype (float32 or float64), values and the
module's training mode. A language model with norms between its layers (``norm_between``) becomes
a twin whose ``rnn`` holds ``layers`` (one-layer nn.LSTM/GRU/RNN each) and ``norms`` (nn.BatchNorm1d
over (B, F, T), or nn.LayerNorm): rnnkit's ``rnn.weight_ih_l{k}`` is its ``rnn.layers.{k}.weight_ih_l0``.
What PyTorch lacks cannot be converted: peephole LSTMs, the Cho GRU (``reset_after=False``) and
zoneout (whose eval mode blends the states) raise an error saying so. Recurrent dropout acts in
training mode only: a layer in eval mode converts to the plain torch.nn module, which computes the
same there; in training mode it is refused. torch is imported only inside this module's
functions, so ``import rnnkit.torch`` works without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.cells import CellBase
from rnnkit.conv import Conv1d
from rnnkit.kinds import BY_TITLE, KINDS, cell_class, layer_class
from rnnkit.lm.model import CharLM, ModelConfig
from rnnkit.norm import BatchNorm1d, LayerNorm
from rnnkit.norm.between import NormedStack, layer_name, stack_name

# The recurrent layers and cells, by their torch.nn names (the same as rnnkit's).
LAYERS = {cls: cls.__name__ for classes in (layer_class, cell_class) for cls in map(classes, KINDS)}
# Feed-forward layers of the same name in torch.nn: both sides keep these constructor arguments as
# attributes of the same name and form, and ``bias`` as the parameter or None.
FEEDFORWARD = {
    Conv1d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
    BatchNorm1d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    LayerNorm: ("normalized_shape", "eps", "elementwise_affine"),
}


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("rnnkit.torch needs PyTorch: pip install torch==2.13.0 (the CPU build: "
                          "an unpinned torch pulls a multi-GB CUDA build)") from exc
    return torch


def _check_convertible(module) -> None:
    """A ValueError saying why, when torch.nn has no equivalent of this layer's options."""
    name = type(module).__name__
    lacks = module.kind.torch_lacks(module.options, module.training)
    if lacks:
        raise ValueError(f"to_torch: this {name} {lacks.format(name=name)}, so it has no equivalent")


def _load(target, state: dict, torch) -> None:
    target.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})


def _layer_to_torch(layer, torch):
    _check_convertible(layer)
    cls = getattr(torch.nn, LAYERS[type(layer)])
    dtype = getattr(torch, layer.dtype.name)
    kw = layer.kind.torch_options(layer.options)
    if isinstance(layer, CellBase):
        t = cls(layer.input_size, layer.hidden_size, bias=layer.bias, dtype=dtype, **kw)
    else:
        t = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers, bias=layer.bias,
                batch_first=layer.batch_first, dropout=layer.dropout, bidirectional=layer.bidirectional,
                dtype=dtype, **kw)
    _load(t, layer.state_dict(), torch)
    return t.train(layer.training)


def _feedforward_args(module, cls) -> dict:
    """The constructor arguments of ``module`` (an rnnkit or a torch.nn layer of type ``cls``'s name)."""
    return {name: getattr(module, name) for name in FEEDFORWARD[cls]} | {"bias": module.bias is not None}


def _feedforward_to_torch(module, torch):
    cls = type(module)
    t = getattr(torch.nn, cls.__name__)(**_feedforward_args(module, cls), dtype=getattr(torch, module.dtype.name))
    _load(t, module.state_dict(), torch)                 # buffers too: the state dict holds them
    return t.train(module.training)


def _feedforward_from_torch(t, torch):
    cls = {c.__name__: c for c in FEEDFORWARD}[type(t).__name__]
    ours = cls(**_feedforward_args(t, cls), dtype=_dtype_of(t, torch))
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in t.state_dict().items()})
    return ours.train(t.training)


def to_torch(module):
    """The equivalent PyTorch module, weights copied: an rnnkit RNN/LSTM/GRU layer or cell gives
    ``torch.nn.RNN/LSTM/GRU`` (or the cell), a :class:`~rnnkit.lm.model.CharLM` — or a run
    directory written by ``rnnkit train`` — gives a ``torch.nn.Module`` with the same submodules
    (``embed``, ``rnn``, ``drop``, ``head``) and ``forward(tokens, state) -> (logits, state)``."""
    torch = _torch()
    if isinstance(module, (str, Path)):
        from rnnkit.lm.load import load_model
        module = load_model(module)[0]
    if isinstance(module, CharLM):
        for layer in module.rnn.layers if isinstance(module.rnn, NormedStack) else [module.rnn]:
            _check_convertible(layer)
        t = charlm_class()(module.cfg, dtype=getattr(torch, module.dtype.name))
        state = module.state_dict()
        if isinstance(module.rnn, NormedStack):          # the twin's one-layer modules' names
            state = {("rnn." + layer_name(k[4:]) if k.startswith("rnn.") else k): v for k, v in state.items()}
        _load(t, state, torch)
        return t.train(module.training)
    if type(module) in LAYERS:
        return _layer_to_torch(module, torch)
    if type(module) in FEEDFORWARD:
        return _feedforward_to_torch(module, torch)
    raise TypeError(f"to_torch: cannot convert a {type(module).__name__}; supported: "
                    f"{', '.join(c.__name__ for c in [*LAYERS, *FEEDFORWARD])}, CharLM or a run directory")


def _dtype_of(module, torch) -> np.dtype:
    """The one float dtype of the module's parameters and float buffers (float32 if it has none)."""
    dtypes = {p.dtype for p in module.parameters()} | {b.dtype for b in module.buffers() if b.is_floating_point()}
    if not dtypes:
        return np.dtype(np.float32)
    if not dtypes <= {torch.float32, torch.float64} or len(dtypes) != 1:
        raise TypeError(f"from_torch: rnnkit computes in float32 or float64; this {type(module).__name__} "
                        f"has parameters of dtype {sorted(str(d) for d in dtypes)}")
    return np.dtype(str(dtypes.pop()).removeprefix("torch."))


def _layer_from_torch(t, torch):
    name = type(t).__name__
    cls = {v: k for k, v in LAYERS.items()}[name]
    dtype = _dtype_of(t, torch)
    cell = issubclass(cls, CellBase)
    kw = {o.name: getattr(t, o.name) for o in cls.kind.options if not o.torch_lacks and not (cell and o.layers_only)}
    if cell:
        ours = cls(t.input_size, t.hidden_size, bias=t.bias, dtype=dtype, rng=0, **kw)
    else:
        ours = cls(t.input_size, t.hidden_size, num_layers=t.num_layers, bias=t.bias, batch_first=t.batch_first,
                   dropout=float(t.dropout), bidirectional=t.bidirectional, dtype=dtype, rng=0, **kw)
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in t.state_dict().items()})
    return ours.train(t.training)


def from_torch(module):
    """The rnnkit equivalent of ``torch.nn.RNN/LSTM/GRU`` (or their cells), weights copied; a
    language model with ``embed`` (nn.Embedding), ``rnn`` (nn.LSTM/GRU/RNN, time-major) and
    ``head`` (nn.Linear) submodules — such as :func:`to_torch` returns — gives a CharLM."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    if type(module).__name__ in LAYERS.values() and type(module).__module__.startswith("torch.nn"):
        return _layer_from_torch(module, torch)
    if type(module).__name__ in {c.__name__ for c in FEEDFORWARD} and type(module).__module__.startswith("torch.nn"):
        return _feedforward_from_torch(module, torch)
    if all(isinstance(getattr(module, n, None), torch.nn.Module) for n in ("embed", "rnn", "head")):
        return _charlm_from_torch(module, torch)
    raise TypeError(f"from_torch: cannot convert a {type(module).__name__}; supported: torch.nn.RNN, LSTM, "
                    "GRU, their cells, Conv1d, BatchNorm1d, LayerNorm, and language models with embed / rnn / "
                    "head submodules")


def _charlm_from_torch(t, torch):
    rnn = t.rnn
    if isinstance(getattr(rnn, "layers", None), torch.nn.ModuleList) and isinstance(getattr(rnn, "norms", None),
                                                                                   torch.nn.ModuleList):
        return _normed_charlm_from_torch(t, torch)
    kind = BY_TITLE.get(type(rnn).__name__)
    if kind is None or rnn.bidirectional or rnn.batch_first or getattr(rnn, "proj_size", 0) \
            or rnn.input_size != t.embed.embedding_dim or t.head.in_features != rnn.hidden_size \
            or getattr(rnn, "nonlinearity", "tanh") != "tanh" or not rnn.bias:
        raise TypeError("from_torch: a CharLM's rnn is a one-way, time-major nn.LSTM/GRU/RNN (tanh) with "
                        f"biases reading the embedding and feeding head; got {rnn!r} between {t.embed!r} and {t.head!r}")
    drop = getattr(t, "drop", None)
    adaptive = isinstance(t.head, torch.nn.AdaptiveLogSoftmaxWithLoss)
    if adaptive and t.head.head_bias:
        raise TypeError("from_torch: a CharLM's adaptive softmax has no head bias (head_bias=False)")
    head = dict(softmax="adaptive", cutoffs=tuple(t.head.cutoffs[:-1]), div_value=float(t.head.div_value)) \
        if adaptive else {}
    cfg = ModelConfig(t.embed.num_embeddings, kind.name, t.embed.embedding_dim, rnn.hidden_size, rnn.num_layers,
                      float(getattr(drop, "p", rnn.dropout)), **head)
    ours = CharLM(cfg, dtype=_dtype_of(t, torch), rng=0)
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in t.state_dict().items()})
    return ours.train(t.training)


def _normed_charlm_from_torch(t, torch):
    """A twin with norms between its layers (rnn.layers, rnn.norms: what to_torch gives) as a CharLM."""
    layers, norms = list(t.rnn.layers), list(t.rnn.norms)
    first = layers[0]
    kinds = {type(m).__name__ for m in layers}
    norm = {type(n).__name__ for n in norms}
    norm_between = {"BatchNorm1d": "batch", "LayerNorm": "layer"}.get(norm.pop()) if len(norm) == 1 else None
    plain = all(m.num_layers == 1 and not m.bidirectional and not m.batch_first and m.bias
                and not getattr(m, "proj_size", 0) and getattr(m, "nonlinearity", "tanh") == "tanh" for m in layers)
    if len(kinds) != 1 or kinds.pop() not in BY_TITLE or not plain or norm_between is None \
            or len(norms) != len(layers) or first.input_size != t.embed.embedding_dim:
        raise TypeError("from_torch: a CharLM with norms between its layers has rnn.layers (one-layer, one-way, "
                        "time-major nn.LSTM/GRU/RNN with biases) and rnn.norms (as many nn.BatchNorm1d or "
                        f"nn.LayerNorm), reading the embedding; got {t.rnn!r}")
    if isinstance(t.head, torch.nn.AdaptiveLogSoftmaxWithLoss):
        head = dict(softmax="adaptive", cutoffs=tuple(t.head.cutoffs[:-1]), div_value=float(t.head.div_value))
    else:
        head = {}
    cfg = ModelConfig(t.embed.num_embeddings, BY_TITLE[type(first).__name__].name, t.embed.embedding_dim,
                      first.hidden_size, len(layers), float(t.rnn.drop.p), **head,
                      norm_between=norm_between)
    ours = CharLM(cfg, dtype=_dtype_of(t, torch), rng=0)
    ours.load_state_dict({("rnn." + stack_name(k[4:]) if k.startswith("rnn.") else k): v.detach().cpu().numpy()
                          for k, v in t.state_dict().items()})
    return ours.train(t.training)


_CHARLM_CLASS = None


def charlm_class():
    """The PyTorch twin of :class:`~rnnkit.lm.model.CharLM` (defined on first use: torch is optional)."""
    global _CHARLM_CLASS
    if _CHARLM_CLASS is None:
        torch = _torch()

        class TorchNormedStack(torch.nn.Module):
            """One-layer LSTM/GRU/RNN modules, each followed by a BatchNorm1d over (B, F, T) or a
            LayerNorm and, but the last, by dropout: rnnkit.norm.between.NormedStack."""

            def __init__(self, cfg: ModelConfig, dtype=torch.float32) -> None:
                super().__init__()
                rnn = getattr(torch.nn, KINDS[cfg.cell].title)
                self.layers = torch.nn.ModuleList(rnn(cfg.embed if k == 0 else cfg.hidden, cfg.hidden, dtype=dtype)
                                                  for k in range(cfg.layers))
                norm = torch.nn.BatchNorm1d if cfg.norm_between == "batch" else torch.nn.LayerNorm
                self.norms = torch.nn.ModuleList(norm(cfg.hidden, dtype=dtype) for _ in range(cfg.layers))
                self.drop = torch.nn.Dropout(cfg.dropout if cfg.layers > 1 else 0.0)

            def forward(self, x, state=None):
                """x (T, B, E), state as a cfg.layers-layer nn.LSTM/GRU/RNN's → (output, state)."""
                lstm = isinstance(self.layers[0], torch.nn.LSTM)
                parts = None if state is None else (tuple(state) if lstm else (state,))
                finals = []
                for k, (layer, norm) in enumerate(zip(self.layers, self.norms)):
                    s = None if parts is None else tuple(p[k:k + 1] for p in parts)
                    x, f = layer(x, None if s is None else (s if lstm else s[0]))
                    x = norm(x.permute(1, 2, 0)).permute(2, 0, 1) if isinstance(norm, torch.nn.BatchNorm1d) else norm(x)
                    x = self.drop(x) if k < len(self.layers) - 1 else x
                    finals.append(f if lstm else (f,))
                joined = tuple(torch.cat(p) for p in zip(*finals))
                return x, (joined if lstm else joined[0])

        class TorchCharLM(torch.nn.Module):
            """Embedding → LSTM/GRU/RNN stack (with norms between the layers: TorchNormedStack) →
            Dropout → Linear, with CharLM's parameter names."""

            def __init__(self, cfg: ModelConfig, dtype=torch.float32) -> None:
                super().__init__()
                rnn = getattr(torch.nn, KINDS[cfg.cell].title)
                self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.embed, dtype=dtype)
                self.rnn = TorchNormedStack(cfg, dtype) if cfg.norm_between != "none" else \
                    rnn(cfg.embed, cfg.hidden, cfg.layers, dropout=cfg.dropout if cfg.layers > 1 else 0.0, dtype=dtype)
                self.drop = torch.nn.Dropout(cfg.dropout)
                self.head = (torch.nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden, cfg.vocab_size, list(cfg.cutoffs),
                                                                 div_value=cfg.div_value, dtype=dtype)
                             if cfg.softmax == "adaptive" else torch.nn.Linear(cfg.hidden, cfg.vocab_size, dtype=dtype))

            def forward(self, tokens, state=None):
                """tokens (T, B) int64 → (logits (T, B, V) — the log-probabilities with the adaptive
                softmax —, final state)."""
                h, state = self.rnn(self.embed(tokens), state)
                h = self.drop(h)
                if isinstance(self.head, torch.nn.AdaptiveLogSoftmaxWithLoss):
                    return self.head.log_prob(h.reshape(-1, h.shape[-1])).reshape(*h.shape[:-1], -1), state
                return self.head(h), state

        _CHARLM_CLASS = TorchCharLM
    return _CHARLM_CLASS
