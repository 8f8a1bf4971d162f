"""An independent, deliberately plain transcription of ../shared/spec/cells.md for the tests.

One sequence at a time, one step at a time, no shared code with rnnkit: lengths are handled by
slicing each sequence to its own length (not by masks), the reverse direction by reversing that
slice. Used as the oracle for what PyTorch lacks (peephole LSTM, reset_after=False GRU) and as a
second oracle for everything else.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def rnn_cell(p, x, h, nonlinearity="tanh"):
    a = p["weight_ih"] @ x + p.get("bias_ih", 0) + p["weight_hh"] @ h + p.get("bias_hh", 0)
    return (np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)),


def gru_cell(p, x, h, reset_after=True):
    H = h.shape[0]
    Wi, Wh = p["weight_ih"], p["weight_hh"]
    bi, bh = p.get("bias_ih", np.zeros(3 * H)), p.get("bias_hh", np.zeros(3 * H))
    r = sigmoid(Wi[:H] @ x + bi[:H] + Wh[:H] @ h + bh[:H])
    z = sigmoid(Wi[H:2 * H] @ x + bi[H:2 * H] + Wh[H:2 * H] @ h + bh[H:2 * H])
    if reset_after:
        n = np.tanh(Wi[2 * H:] @ x + bi[2 * H:] + r * (Wh[2 * H:] @ h + bh[2 * H:]))
    else:
        n = np.tanh(Wi[2 * H:] @ x + bi[2 * H:] + Wh[2 * H:] @ (r * h) + bh[2 * H:])
    return ((1 - z) * n + z * h),


def lstm_cell(p, x, state, peephole=False):
    h, c = state
    H = c.shape[0]
    a = p["weight_ih"] @ x + p.get("bias_ih", 0) + p["weight_hh"] @ h + p.get("bias_hh", 0)
    pi = p["weight_ci"] * c if peephole else 0
    pf = p["weight_cf"] * c if peephole else 0
    i = sigmoid(a[:H] + pi)
    f = sigmoid(a[H:2 * H] + pf)
    g = np.tanh(a[2 * H:3 * H])
    c_new = f * c + i * g
    o = sigmoid(a[3 * H:] + (p["weight_co"] * c_new if peephole else 0))
    h_new = o * np.tanh(c_new)
    if "weight_hr" in p:
        h_new = p["weight_hr"] @ h_new
    return h_new, c_new


CELLS = {"rnn": rnn_cell, "gru": gru_cell, "lstm": lstm_cell}


def run_stack(mode, sd, x, state0, lengths, num_layers, bidirectional, cells=CELLS, xp=np, **cell_kw):
    """Reference forward of a whole stack in time-major layout.

    mode: "rnn" | "gru" | "lstm"; sd: state dict of arrays; x (T, B, I); state0: tuple of
    (L·D, B, n) arrays. Returns (output (T, B, D·H_out), tuple of final states). ``cells`` maps
    mode to a cell ``cell(p, x, h or (h, c), **cell_kw) -> new state tuple``; ``xp`` is the array
    library of those arrays (numpy, or torch for a differentiable transcription: tests/ln_reference.py),
    whose zeros_like, stack and concatenate assemble the results without writing into arrays.
    """
    cell = cells[mode]
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    finals = [[None] * (num_layers * D) for _ in state0]        # per state part: per layer·direction, B rows
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
                ys = [None] * T                                 # None: a padded step, output zero
                for t in steps:
                    st = cell(p, layer_in[t, b], st if mode == "lstm" else st[0], **cell_kw)
                    ys[t] = st[0]
                zero = xp.zeros_like(st[0])
                columns.append(xp.stack([zero if y is None else y for y in ys]))
                for f, s in zip(finals, st):
                    f[k * D + d] = (f[k * D + d] or []) + [s]
            outs.append(xp.stack(columns, 1))                  # (T, B, H_out)
        layer_in = xp.concatenate(outs, -1)
    return layer_in, tuple(xp.stack([xp.stack(rows) for rows in f]) for f in finals)
