"""The spec's layer-normalised cells transcribed in torch autograd, for the tests.

Deliberately plain and independent of rnnkit's code: the cells are written here, one sequence and
one step at a time; the stack around them (lengths by slicing, the reverse direction by reversing
that slice) is tests/reference.py's, run on torch tensors. LN is written out from its definition
(biased variance, ε = 1e-5). torch's autograd gives every gradient.
"""

from __future__ import annotations

from functools import partial

import torch

import reference

EPS = 1e-5


def ln(v, gain, shift=None):
    mu = v.mean()
    var = ((v - mu) ** 2).mean()
    y = gain * (v - mu) / torch.sqrt(var + EPS)
    return y if shift is None else y + shift


def rnn_cell(p, x, h, nonlinearity="tanh"):
    a = ln(p["weight_ih"] @ x, p["ln_weight_ih"]) + p.get("bias_ih", 0) \
        + ln(p["weight_hh"] @ h, p["ln_weight_hh"]) + p.get("bias_hh", 0)
    return (torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)),


def gru_cell(p, x, h):
    H = h.shape[0]
    ax = ln(p["weight_ih"] @ x, p["ln_weight_ih"]) + p.get("bias_ih", 0)
    ah = ln(p["weight_hh"] @ h, p["ln_weight_hh"]) + p.get("bias_hh", 0)
    r = torch.sigmoid(ax[:H] + ah[:H])
    z = torch.sigmoid(ax[H:2 * H] + ah[H:2 * H])
    n = torch.tanh(ax[2 * H:] + r * ah[2 * H:])
    return (1 - z) * n + z * h,


def lstm_cell(p, x, state):
    h, c = state
    H = c.shape[0]
    a = ln(p["weight_ih"] @ x, p["ln_weight_ih"]) + p.get("bias_ih", 0) \
        + ln(p["weight_hh"] @ h, p["ln_weight_hh"]) + p.get("bias_hh", 0)
    i, f, g, o = torch.sigmoid(a[:H]), torch.sigmoid(a[H:2 * H]), torch.tanh(a[2 * H:3 * H]), torch.sigmoid(a[3 * H:])
    c = f * c + i * g
    return o * torch.tanh(ln(c, p["ln_weight_c"], p["ln_bias_c"])), c


CELLS = {"rnn": rnn_cell, "gru": gru_cell, "lstm": lstm_cell}

# run_stack(mode, sd, x, state0, lengths, num_layers, bidirectional, **cell_kw): sd name -> torch
# leaf, x (T, B, I) and state0 ((L·D, B, n), ...) torch tensors; differentiable results.
run_stack = partial(reference.run_stack, cells=CELLS, xp=torch)
