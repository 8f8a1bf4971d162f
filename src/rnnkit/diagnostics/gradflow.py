"""Gradient flow through time: how much of a loss at the last step reaches each earlier step.

For a loss L on the final output h_T, BPTT gives dL/dh_t = dL/dh_T · Π_{s=t+1..T} ∂h_s/∂h_{s−1}.
In a plain RNN each factor is W_hhᵀ diag(φ'), so the product shrinks (or grows) geometrically in
T − t; the LSTM's cell path multiplies by the forget gate instead, and the GRU's by 1 − z. This
module measures it on real layers with their own backward pass: ||dL/dh_t|| (and ||dL/dc_t|| for
the LSTM) for every t, and the spectral norm of the one-step Jacobian ∂h_t/∂h_{t−1}.

The initialisation is one of the things that set the product: ``InitOptions.scheme`` draws the
recurrent weights by rnnkit.init's schemes (He / kaiming: Var w = gain²/fan_in, gain √2 for a
ReLU RNN; orthogonal W_hh: every singular value 1), so the same layer, inputs and loss can be
compared column by column (:func:`compare_flows`), with and without layer-normalised cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnnkit import init
from rnnkit.diagnostics.stepping import between_steps, layer_cells, run_forward, state_gradients
from rnnkit.kinds import KINDS, layer_class
from rnnkit.layers import state_parts


@dataclass(frozen=True)
class InitOptions:
    orthogonal: bool = False           # orthogonal recurrent weights (each gate block)
    forget_bias: float | None = None   # LSTM: total forget-gate bias (b_if + b_hf)
    chrono: int = 0                    # LSTM: chrono init (Tallec & Ollivier 2018) for this T_max; 0 = off
    rnn_scale: float = 1.0             # plain RNN: W_hh multiplied by this after initialisation
    scheme: str = "default"            # rnnkit.init.SCHEMES for the weights, applied first
    nonlinearity: str = "tanh"         # plain RNN: φ = tanh, or relu (where He's gain √2 belongs)
    layer_norm: bool = False           # layer-normalised cells (for layers that have the option)

    def label(self) -> str:
        """"+kaiming+ln" and so on: the scheme and layer norm, as a column's suffix ("" by default)."""
        return (f"+{self.scheme}" if self.scheme != "default" else "") + ("+ln" if self.layer_norm else "")


@dataclass(frozen=True)
class Flow:
    cell: str
    h_norms: np.ndarray                # (T,) mean over the batch of ||dL/dh_t||, t = 0 .. T−1
    c_norms: np.ndarray | None         # (T,) the same for the LSTM cell state
    jacobian_norms: np.ndarray | None  # (T,) ||∂h_t/∂h_{t−1}||₂ on the first sequence (index 0: NaN)


def make_layer(cell: str, input_size: int, hidden: int, opts: InitOptions, rng: np.random.Generator,
               dtype=np.float64):
    """A one-layer ``cell`` initialised by ``opts``. The scheme draws from a child of ``rng``, so
    whatever comes from ``rng`` after the layer (inputs, the loss) is the same for every scheme."""
    kw = {"nonlinearity": opts.nonlinearity} if cell == "rnn" and opts.nonlinearity != "tanh" else {}
    if opts.layer_norm:
        kw["layer_norm"] = True
    layer = layer_class(cell)(input_size, hidden, dtype=dtype, rng=rng, **kw)
    if opts.scheme != "default":
        init.init_recurrent_(layer, opts.scheme, rng=rng.spawn(1)[0])
    if opts.orthogonal:
        init.orthogonal_recurrent_(layer, rng=rng)
    if cell == "lstm" and opts.forget_bias is not None:
        init.forget_bias_(layer, opts.forget_bias)
    if cell == "lstm" and opts.chrono:
        chrono_init_(layer, opts.chrono, rng)
    if cell == "rnn" and opts.rnn_scale != 1.0:
        for name, p in layer.named_parameters():
            if name.startswith("weight_hh"):
                p.data *= opts.rnn_scale
    return layer


def chrono_init_(lstm, t_max: int, rng: np.random.Generator) -> None:
    """b_f ~ log U(1, T_max − 1), b_i = −b_f: forget time scales spread up to T_max."""
    H = lstm.hidden_size
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            b_f = np.log(rng.uniform(1.0, max(t_max - 1, 2), H))
            p.data[H:2 * H], p.data[:H] = b_f, -b_f
        elif name.startswith("bias_hh"):
            p.data[:2 * H] = 0.0


def measure(layer, x: np.ndarray, loss_gradient, cell: str, jacobian: bool) -> Flow:
    """Norms of the gradient reaching each step of the layer's top sub-layer.

    ``loss_gradient(h_T)`` gives dL/dh_T (B, H) from the top layer's final output (with norms
    between the layers, a NormedStack in eval mode: from the last norm's output).
    """
    cells, between = layer_cells(layer), between_steps(layer)     # a NormedStack's norms (eval mode)
    trace = run_forward(cells, x, between)
    top = trace.states[-1][-1]
    h_top = top[0] if isinstance(top, tuple) else top
    if between is None:
        dh_last = loss_gradient(h_top)
    else:                                  # the loss reads the last norm's output
        y_top, cache = between[-1].forward(h_top)
        dh_last = between[-1].backward(loss_gradient(y_top), cache)
    grads = state_gradients(cells, trace, dh_last, between)
    h = np.array([np.linalg.norm(g[-1][0], axis=-1).mean() for g in grads])
    c = np.array([np.linalg.norm(g[-1][1], axis=-1).mean() for g in grads]) if "c" in KINDS[cell].states else None
    jac = jacobian_norms(cells[-1], x, trace) if jacobian and len(cells) == 1 else None
    return Flow(cell, h, c, jac)


def jacobian_norms(cell, x: np.ndarray, trace) -> np.ndarray:
    """||∂h_t/∂h_{t−1}||₂ (c_{t−1} held fixed for the LSTM) for sequence 0 of a one-layer stack.

    The Jacobian is built in one backward call per step: the step is replayed for H copies of the
    sequence and the gradient of each output unit is pulled back (J = dh_t/dh_{t−1}, H x H).
    """
    H = cell.hidden_size
    out = np.full(x.shape[0], np.nan)
    eye = np.eye(H)
    for t in range(1, x.shape[0]):
        prev = trace.states[t - 1][0]
        parts = state_parts(prev)
        rep = tuple(np.repeat(p[:1], H, axis=0) for p in parts)
        _, cache = cell.step(np.repeat(x[t][:1], H, axis=0), rep if len(rep) == 2 else rep[0])
        d = (eye, np.zeros((H, H))) if len(rep) == 2 else eye
        _, dprev = cell.step_backward(d, cache)
        jt = dprev[0] if isinstance(dprev, tuple) else dprev           # row k: ∂h_t[k]/∂h_{t−1}
        out[t] = np.linalg.norm(jt, 2)
    cell.zero_grad()
    return out


def gradient_flow(cells: list[str], hidden: int, seq_len: int, batch: int, input_size: int,
                  opts: InitOptions, seed: int, jacobian: bool = True) -> dict[str, Flow]:
    """Freshly initialised layers, random N(0, 1) inputs, loss L = mean_b u·h_T (u a unit vector)."""
    flows = {}
    for cell in cells:
        rng = np.random.default_rng(seed)
        layer = make_layer(cell, input_size, hidden, opts, rng)
        x = rng.standard_normal((seq_len, batch, input_size))
        u = rng.standard_normal(hidden)
        dh_last = np.tile(u / np.linalg.norm(u), (batch, 1)) / batch
        flows[cell] = measure(layer, x, lambda h_top: dh_last, cell, jacobian and hidden <= 256)
    return flows


def compare_flows(cells: list[str], variants: list[InitOptions], hidden: int, seq_len: int, batch: int,
                  input_size: int, seed: int, jacobian: bool = True) -> dict[str, Flow]:
    """:func:`gradient_flow` for every cell under every variant, on the same inputs and loss:
    columns "lstm", "lstm+kaiming", "rnn+orthogonal+ln", ..."""
    flows = {}
    for opts in variants:
        for cell, flow in gradient_flow(cells, hidden, seq_len, batch, input_size, opts, seed, jacobian).items():
            flows[cell + opts.label()] = flow
    return flows


def table_steps(seq_len: int) -> list[int]:
    """The steps a table shows: T, T−10, T−50, T−100, ... (as 0-based indices, last first)."""
    back = [0, 10, 50] + [100 * k for k in range(1, seq_len // 100 + 1)]
    return [seq_len - 1 - b for b in back if b < seq_len]


def format_table(flows: dict[str, Flow]) -> str:
    first = next(iter(flows.values()))
    steps = table_steps(len(first.h_norms))
    widths = [max(12, len(name)) for name in flows]        # "lstm+orthogonal+ln" is wider than a number
    header = "step t  (T−t)  " + "  ".join(f"{name:>{w}}" for name, w in zip(flows, widths))
    lines = [header]
    for t in steps:
        row = "  ".join(f"{f.h_norms[t]:{w}.3e}" for f, w in zip(flows.values(), widths))
        lines.append(f"{t + 1:6d} {len(first.h_norms) - 1 - t:6d}  {row}")
    lines.append("ratio first/last " + "  ".join(
        f"{f.h_norms[0] / f.h_norms[-1]:{w}.3e}" for f, w in zip(flows.values(), widths)))
    for name, f in flows.items():
        if f.jacobian_norms is not None:
            j = f.jacobian_norms[1:]
            lines.append(f"{name}: ||dh_t/dh_t-1|| median {np.median(j):.3f}, "
                         f"geometric mean {math.exp(np.mean(np.log(np.maximum(j, 1e-300)))):.3f}")
    return "\n".join(lines)


def plot(flows: dict[str, Flow], path: str, title: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'rnnkit[plot]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, f in flows.items():
        ax.semilogy(np.arange(1, len(f.h_norms) + 1), f.h_norms, label=f"{name}: ||dL/dh_t||")
        if f.c_norms is not None:          # zero at t = T (the loss reads h_T only): not drawn
            c = np.where(f.c_norms > 0, f.c_norms, np.nan)
            ax.semilogy(np.arange(1, len(c) + 1), c, "--", label=f"{name}: ||dL/dc_t||")
    ax.set_xlabel("time step t (loss at the last step)")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def checkpoint_flow(model, ids: np.ndarray, seq_len: int, batch: int, seed: int,
                    jacobian: bool = True) -> Flow:
    """A trained language model on real text: windows of seq_len characters at random offsets,
    the loss being the model's cross-entropy on the character that follows each window."""
    if len(ids) < seq_len + 1:
        raise ValueError(f"the text has {len(ids)} characters; --seq-len {seq_len} needs at least {seq_len + 1}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - seq_len, size=batch)
    windows = np.stack([ids[s: s + seq_len + 1] for s in starts], axis=1)      # (T+1, B)
    x = model.embed.weight.data[windows[:-1]]                                   # (T, B, E)

    def loss_gradient(h_top: np.ndarray) -> np.ndarray:
        if model.adaptive:                                                      # exact, cluster by cluster
            return model.head.input_grad(h_top, windows[-1])
        logits = h_top @ model.head.weight.data.T + model.head.bias.data        # (B, V)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(batch), windows[-1]] -= 1.0
        return (p / batch) @ model.head.weight.data

    return measure(model.rnn, x, loss_gradient, model.cfg.cell, jacobian)
