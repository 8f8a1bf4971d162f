"""Dropout inside the recurrence transcribed from ../shared/spec/cells.md in torch autograd, for the
tests: plain and independent of rnnkit's code (reference.py's style).

One sequence at a time, one step at a time; lengths by slicing each sequence to its own length, the
reverse direction by reversing that slice. The masks are drawn here from a NumPy generator in the
order the spec and rnnkit's docs give (per layer, per direction: m_h (B, H_out), then the zoneout
masks of h and c, (T, B, n) each, indexed by the direction's own step; then the dropout mask on the
layer's output), so the same seed gives rnnkit's masks. In eval mode: no m_h, and k = p.
"""

from __future__ import annotations

import numpy as np
import torch


def rnn_cell(p, x, h_in, state, nonlinearity="tanh"):
    a = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h_in + p["bias_hh"]
    return (torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)),


def gru_cell(p, x, h_in, state, reset_after=True):
    (h,) = state
    H = h.shape[0]
    Wi, Wh, bi, bh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    r = torch.sigmoid(Wi[:H] @ x + bi[:H] + Wh[:H] @ h_in + bh[:H])
    z = torch.sigmoid(Wi[H:2 * H] @ x + bi[H:2 * H] + Wh[H:2 * H] @ h_in + bh[H:2 * H])
    if reset_after:
        n = torch.tanh(Wi[2 * H:] @ x + bi[2 * H:] + r * (Wh[2 * H:] @ h_in + bh[2 * H:]))
    else:
        n = torch.tanh(Wi[2 * H:] @ x + bi[2 * H:] + Wh[2 * H:] @ (r * h_in) + bh[2 * H:])
    return (1 - z) * n + z * h,                       # the update reads the carried h, unmasked


def lstm_cell(p, x, h_in, state, peephole=False):
    h, c = state
    H = c.shape[0]
    a = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h_in + p["bias_hh"]
    i = torch.sigmoid(a[:H] + (p["weight_ci"] * c if peephole else 0))
    f = torch.sigmoid(a[H:2 * H] + (p["weight_cf"] * c if peephole else 0))
    g = torch.tanh(a[2 * H:3 * H])
    c_new = f * c + i * g
    o = torch.sigmoid(a[3 * H:] + (p["weight_co"] * c_new if peephole else 0))
    h_new = o * torch.tanh(c_new)
    if "weight_hr" in p:
        h_new = p["weight_hr"] @ h_new
    return h_new, c_new


CELLS = {"rnn": rnn_cell, "gru": gru_cell, "lstm": lstm_cell}


def coin(rng, shape, p):
    """True with probability p: per entry 32 random bits (the generator's raw 64-bit words, low half
    first) below floor(p * 2^32), as rnnkit's docs give it."""
    n = int(np.prod(shape))
    words = [int(w) for w in rng.bit_generator.random_raw((n + 1) // 2)]
    halves = [part for w in words for part in (w & 0xFFFFFFFF, w >> 32)][:n]
    return np.array([v < int(p * 2 ** 32) for v in halves]).reshape(shape)


def draw(rng, training, recurrent_dropout, zoneout, T, B, sizes):
    """One direction's masks: (m_h (B, H_out) or None, [k (T, B, n) per state part] or None)."""
    m = None
    if training and recurrent_dropout > 0:
        m = ~coin(rng, (B, sizes[0]), recurrent_dropout) / (1 - recurrent_dropout)
    keep = None
    if zoneout > 0:
        keep = ([coin(rng, (T, B, n), zoneout) for n in sizes] if training
                else [np.full((T, B, n), zoneout) for n in sizes])
    return m, keep


def run_direction(cell, p, xs, state0, m, keep, **kw):
    """One sequence (its own length) through one direction: xs (L, I) tensors, state0 tuple of (n,),
    m (H_out,) or None, keep [(L, n)] or None. Returns (outputs (L, H_out), final state)."""
    state, outs = state0, []
    for t in range(xs.shape[0]):
        h_in = state[0] if m is None else m * state[0]       # the state entering the products
        new = cell(p, xs[t], h_in, state, **kw)
        if keep is not None:                                  # zoneout: keep the previous value
            new = tuple(k[t] * s + (1 - k[t]) * n for k, s, n in zip(keep, state, new))
        state = new
        outs.append(state[0])
    return torch.stack(outs), state


def run_stack(mode, params, x, state0, lengths, num_layers, bidirectional, *, training, rng,
              recurrent_dropout=0.0, zoneout=0.0, dropout=0.0, **kw):
    """x (T, B, I) tensor, state0 tuple of (L·D, B, n) tensors, params name -> tensor (PyTorch names).
    Returns (output (T, B, D·H_out), tuple of final states (L·D, B, n))."""
    cell = CELLS[mode]
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    lengths = [T] * B if lengths is None else [int(v) for v in lengths]
    sizes = tuple(s.shape[2] for s in state0)
    layer_in, finals = x, [[None] * (num_layers * D) for _ in sizes]
    for k in range(num_layers):
        outs = []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            p = {name[:-len(suffix)]: v for name, v in params.items() if name.endswith(suffix)}
            m, keep = draw(rng, training, recurrent_dropout, zoneout, T, B, sizes)
            out_d = []
            for b in range(B):
                L = lengths[b]
                xs = layer_in[:L, b]
                xs = torch.flip(xs, [0]) if d == 1 else xs
                mb = None if m is None else torch.as_tensor(m[b], dtype=x.dtype)
                kb = None if keep is None else [torch.as_tensor(a[:L, b], dtype=x.dtype) for a in keep]
                s0 = tuple(s[k * D + d, b] for s in state0)
                ys, fin = run_direction(cell, p, xs, s0, mb, kb, **kw)
                ys = torch.flip(ys, [0]) if d == 1 else ys
                out_d.append(torch.cat([ys, torch.zeros((T - L, ys.shape[1]), dtype=x.dtype)]))
                for f, s in zip(finals, fin):
                    f[k * D + d] = (f[k * D + d] or []) + [s]
            outs.append(torch.stack(out_d, dim=1))
        layer_in = torch.cat(outs, dim=-1)
        if training and dropout > 0 and k < num_layers - 1:
            keep_out = (rng.random(tuple(layer_in.shape)) >= dropout) / (1 - dropout)
            layer_in = layer_in * torch.as_tensor(keep_out, dtype=x.dtype)
    return layer_in, tuple(torch.stack([torch.stack(f) for f in part]) for part in finals)
