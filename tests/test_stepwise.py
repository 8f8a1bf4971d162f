"""Stepping a cell one step at a time equals the whole-sequence layer, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from helpers import as_tuple, rel_err

pytestmark = pytest.mark.both_backends      # the engine and the NumPy reference (conftest.py)

CELLS = [
    (rnnkit.RNN, rnnkit.RNNCell, {}), (rnnkit.RNN, rnnkit.RNNCell, {"nonlinearity": "relu"}),
    (rnnkit.GRU, rnnkit.GRUCell, {}), (rnnkit.GRU, rnnkit.GRUCell, {"reset_after": False}),
    (rnnkit.LSTM, rnnkit.LSTMCell, {}), (rnnkit.LSTM, rnnkit.LSTMCell, {"peephole": True}),
    (rnnkit.LSTM, rnnkit.LSTMCell, {"peephole": True, "bias": False}),
]


def check_steps_equal_layer(layer, cell, tol: float, rng=None):
    """Stepping ``cell`` (given the one-layer ``layer``'s parameters) through a random sequence with
    random initial states equals ``layer``: outputs, input and state gradients, parameter gradients;
    so does its streaming call (no_grad), step by step. ``rng`` seeds the masks of dropout inside
    the recurrence, drawn by the layer's call and by ``cell.draw_masks`` alike (same order)."""
    T, B, I, H = 6, 3, layer.input_size, layer.hidden_size
    dtype = next(iter(layer.parameters())).data.dtype
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    r = np.random.default_rng(0)
    lstm = isinstance(layer, rnnkit.LSTM)
    x = r.standard_normal((T, B, I)).astype(dtype)
    s0 = tuple(r.standard_normal((1, B, H)).astype(dtype) for _ in range(2 if lstm else 1))
    out, fin = layer(x, s0 if lstm else s0[0], rng=rng)
    dout = r.standard_normal(out.shape).astype(dtype)
    dfin = tuple(r.standard_normal((1, B, H)).astype(dtype) for _ in s0)
    dx, ds0 = layer.backward(dout, dfin if lstm else dfin[0])
    masks = cell.draw_masks(B, T, rng=rng)
    mask = (lambda t: None) if masks is None else masks.at
    first = (s0[0][0], s0[1][0]) if lstm else s0[0][0]

    state, caches, outs = first, [], []
    for t in range(T):
        state, cache = cell.step(x[t], state, masks=mask(t))
        caches.append(cache)
        outs.append(state[0] if lstm else state)
    assert rel_err(np.stack(outs), out) < tol

    dstate = tuple(d[0] for d in dfin)
    dxs = [None] * T
    for t in range(T - 1, -1, -1):
        dstate = (dstate[0] + dout[t],) + dstate[1:]
        dxs[t], prev = cell.step_backward(dstate if lstm else dstate[0], caches[t])
        dstate = prev if lstm else (prev,)
    assert rel_err(np.stack(dxs), dx) < tol
    for a, b in zip(dstate, as_tuple(ds0)):
        assert rel_err(a, b[0]) < tol
    for (name, p), (cname, q) in zip(layer.named_parameters(), cell.named_parameters()):
        assert name.removesuffix("_l0") == cname
        assert rel_err(q.grad, p.grad) < tol, name

    with rnnkit.no_grad():                                   # the streaming path computes the same
        state = first
        for t in range(T):
            state = cell(x[t], state, masks=mask(t))
            assert rel_err(as_tuple(state)[0], outs[t]) < tol, t
    for a, b in zip(as_tuple(state), as_tuple(fin)):
        assert rel_err(a, b[0]) < tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layer_cls,cell_cls,kw", CELLS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_cell_steps_equal_layer(layer_cls, cell_cls, kw, dtype):
    check_steps_equal_layer(layer_cls(4, 5, dtype=dtype, rng=1, **kw), cell_cls(4, 5, dtype=dtype, rng=2, **kw),
                            tol=1e-12 if dtype == np.float64 else 1e-5)


def test_cell_call_then_backward_matches_step_pair():
    cell = rnnkit.LSTMCell(3, 4, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 3))
    h, c = cell(x)
    dh, dc = np.ones_like(h), np.full_like(c, 0.5)
    dx, (dh0, dc0) = cell.backward(dh, dc)
    grads = [p.grad.copy() for p in cell.parameters()]
    cell.zero_grad()
    (h2, c2), cache = cell.step(x)
    dx2, (dh2, dc2) = cell.step_backward((dh, dc), cache)
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(dc0, dc2)
    for g, p in zip(grads, cell.parameters()):
        np.testing.assert_array_equal(g, p.grad)


def test_docs_layer_example_and_hand_written_loop_run(capsys):
    """docs/layers.md's "The layers" example runs; its hand-written BPTT loop over LSTMCell.step /
    step_backward gives the layer's output gradients and parameter gradients."""
    from helpers import doc_block
    scope: dict = {}
    exec(compile(doc_block("docs/layers.md", "layers"), "docs/layers.md", "exec"), scope)
    assert scope["out"].shape == (50, 4, 64) and scope["dx"].shape == (50, 4, 10)
    assert "weight_ih_l0 (128, 10)" in capsys.readouterr().out
    loop: dict = {}
    exec(compile(doc_block("docs/layers.md", "bptt-loop"), "docs/layers.md", "exec"), loop)
    cell, x, dout = loop["cell"], loop["x"], loop["dout"]
    layer = rnnkit.LSTM(10, 32, peephole=True, rng=1)
    layer.load_state_dict({f"{name}_l0": p.data for name, p in cell.named_parameters()})
    out, (h_n, c_n) = layer(x)
    dx, _ = layer.backward(dout)
    assert rel_err(loop["state"][0], h_n[0]) < 1e-5 and rel_err(loop["state"][1], c_n[0]) < 1e-5
    assert rel_err(loop["dx"], dx) < 1e-5
    for name, p in cell.named_parameters():
        assert rel_err(p.grad, dict(layer.named_parameters())[f"{name}_l0"].grad) < 1e-5, name
