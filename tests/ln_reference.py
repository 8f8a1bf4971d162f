"""The spec's layer-normalised cells transcribed in torch autograd, for the tests.

Deliberately plain and independent of rnnkit's code (tests/reference.py's style): one sequence at
a time, one step at a time, lengths by slicing each sequence to its own length, the reverse
direction by reversing that slice; LN written out from its definition (biased variance, ε = 1e-5).
torch's autograd gives every gradient.
"""

from __future__ import annotations

import torch

EPS = 1e-5


def ln(v, gain, shift=None):
    mu = v.mean()
    var = ((v - mu) ** 2).mean()
    y = gain * (v - mu) / torch.sqrt(var + EPS)
    return y if shift is None else y + shift


def rnn_cell(p, x, state, nonlinearity="tanh"):
    h, = state
    a = ln(p["weight_ih"] @ x, p["ln_weight_ih"]) + p.get("bias_ih", 0) \
        + ln(p["weight_hh"] @ h, p["ln_weight_hh"]) + p.get("bias_hh", 0)
    return (torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)),


def gru_cell(p, x, state, **_):
    h, = state
    H = h.shape[0]
    ax = ln(p["weight_ih"] @ x, p["ln_weight_ih"]) + p.get("bias_ih", 0)
    ah = ln(p["weight_hh"] @ h, p["ln_weight_hh"]) + p.get("bias_hh", 0)
    r = torch.sigmoid(ax[:H] + ah[:H])
    z = torch.sigmoid(ax[H:2 * H] + ah[H:2 * H])
    n = torch.tanh(ax[2 * H:] + r * ah[2 * H:])
    return (1 - z) * n + z * h,


def lstm_cell(p, x, state, **_):
    h, c = state
    H = c.shape[0]
    a = ln(p["weight_ih"] @ x, p["ln_weight_ih"]) + p.get("bias_ih", 0) \
        + ln(p["weight_hh"] @ h, p["ln_weight_hh"]) + p.get("bias_hh", 0)
    i, f, g, o = torch.sigmoid(a[:H]), torch.sigmoid(a[H:2 * H]), torch.tanh(a[2 * H:3 * H]), torch.sigmoid(a[3 * H:])
    c = f * c + i * g
    return o * torch.tanh(ln(c, p["ln_weight_c"], p["ln_bias_c"])), c


CELLS = {"rnn": rnn_cell, "gru": gru_cell, "lstm": lstm_cell}


def run_stack(mode, sd, x, state0, lengths, num_layers, bidirectional, **cell_kw):
    """sd: name -> torch leaf; x (T, B, I) and state0 ((L·D, B, n), ...) torch tensors.
    Returns (output (T, B, D·H), tuple of final states), differentiable."""
    cell = CELLS[mode]
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    finals = [[None] * (num_layers * D) for _ in state0]
    layer_in = x
    for k in range(num_layers):
        outs = []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            p = {name[: -len(suffix)]: v for name, v in sd.items() if name.endswith(suffix)}
            columns = []
            for b in range(B):
                L = lengths[b]
                steps = range(L - 1, -1, -1) if d else range(L)
                st = tuple(s[k * D + d, b] for s in state0)
                ys = [None] * T
                for t in steps:
                    st = cell(p, layer_in[t, b], st, **cell_kw)
                    ys[t] = st[0]
                zero = torch.zeros_like(st[0])
                columns.append(torch.stack([zero if y is None else y for y in ys]))
                for f, s in zip(finals, st):
                    f[k * D + d] = (f[k * D + d] or []) + [s]
            outs.append(torch.stack(columns, dim=1))                          # (T, B, H)
        layer_in = torch.cat(outs, dim=-1)
    return layer_in, tuple(torch.stack([torch.stack(rows) for rows in f]) for f in finals)
