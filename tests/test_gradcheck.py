"""Finite-difference gradient checks in float64 for every layer, cell and option.

The loss is a random weighted sum of the outputs and the final states, so every output position
and every state component carries gradient. Each parameter entry, each input entry and each
initial-state entry is perturbed (central differences) and compared with the analytic gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from helpers import Case, as_tuple, from_tuple, loss_weights, weighted_loss

pytestmark = pytest.mark.both_backends      # the engine and the NumPy reference (conftest.py)

EPS = 1e-6
TOL = 1e-7        # relative to max(1, |gradient|); central differences err ~EPS² ≈ 1e-12 here


def numeric_grad(f, a: np.ndarray) -> np.ndarray:
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = a[idx]
        a[idx] = old + EPS
        up = f()
        a[idx] = old - EPS
        down = f()
        a[idx] = old
        g[idx] = (up - down) / (2 * EPS)
    return g


def assert_close(analytic, numeric, what):
    err = np.max(np.abs(analytic - numeric) / np.maximum(1.0, np.abs(numeric)))
    assert err < TOL, f"{what}: max error {err:.3g}"


def check_layer(case: Case, seed: int = 0, dropout_train: bool = False):
    rng = np.random.default_rng(seed)
    layer = case.make(np.float64, seed)
    if dropout_train:
        layer.train()
    x, state, lengths = case.inputs(rng)
    if state is None:          # still check the gradient reaching the (zero) initial state
        state = case.zero_state()

    def forward():
        layer.rng = np.random.default_rng(seed + 1)      # same dropout masks every call
        return layer(x, state, lengths=lengths)

    out, st = forward()
    w_out, w_state = loss_weights(rng, out, st)
    # Masked (padded) outputs are constants; their weights must not matter.
    layer.zero_grad()
    dx, dstate0 = layer.backward(w_out, from_tuple(case, w_state))

    def loss():
        with rnnkit.no_grad():
            o, s = forward()
        return weighted_loss(o, s, w_out, w_state)

    for name, p in layer.named_parameters():
        assert_close(p.grad, numeric_grad(loss, p.data), name)
    assert_close(dx, numeric_grad(loss, x), "x")
    for k, (s, ds) in enumerate(zip(as_tuple(state), as_tuple(dstate0))):
        assert_close(ds, numeric_grad(loss, s), f"state[{k}]")


LAYER_CASES = [
    Case("rnn"), Case("rnn", nonlinearity="relu"), Case("rnn", bias=False),
    Case("gru"), Case("gru", reset_after=False), Case("gru", bias=False),
    Case("lstm"), Case("lstm", peephole=True), Case("lstm", proj_size=2),
    Case("lstm", proj_size=2, peephole=True), Case("lstm", bias=False),
]
OPTION_SETS = [
    dict(),
    dict(num_layers=2, bidirectional=True, lengths=True, init_state=True),
    dict(batch_first=True, num_layers=3, init_state=True),
    dict(unbatched=True, bidirectional=True),
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_layer_gradients(case, options):
    check_layer(case.with_(**options), seed=3)


@pytest.mark.parametrize("mode,extra", [("lstm", {"peephole": True, "proj_size": 2}), ("gru", {}),
                                        ("gru", {"reset_after": False}), ("rnn", {})])
def test_gradients_with_training_dropout(mode, extra):
    """Training-mode dropout between layers: backward uses the forward call's masks."""
    check_layer(Case(mode, num_layers=3, bidirectional=True, dropout=0.4, lengths=True, **extra),
                seed=5, dropout_train=True)


CELL_CASES = [
    (rnnkit.RNNCell, {}), (rnnkit.RNNCell, {"nonlinearity": "relu"}),
    (rnnkit.GRUCell, {}), (rnnkit.GRUCell, {"reset_after": False}),
    (rnnkit.LSTMCell, {}), (rnnkit.LSTMCell, {"peephole": True}), (rnnkit.LSTMCell, {"bias": False}),
]


def check_cell(cell, batched: bool = True, seed: int = 1):
    """One call of ``cell`` (float64) on a random input and state, for a random weighted loss of the
    new state: every parameter, the input and each state part against central differences."""
    rng = np.random.default_rng(seed)
    lstm = isinstance(cell, rnnkit.LSTMCell)
    shape = (2,) if batched else ()
    x = rng.standard_normal(shape + (cell.input_size,))
    state = tuple(rng.standard_normal(shape + (cell.hidden_size,)) for _ in range(2 if lstm else 1))
    arg = state if lstm else state[0]
    w = tuple(rng.standard_normal(shape + (cell.hidden_size,)) for _ in state)

    def loss():
        with rnnkit.no_grad():
            return weighted_loss(0.0, cell(x, arg), 0.0, w)

    cell(x, arg)
    dx, dprev = cell.backward(*w)
    for name, p in cell.named_parameters():
        assert_close(p.grad, numeric_grad(loss, p.data), name)
    assert_close(dx, numeric_grad(loss, x), "x")
    for k, (s, ds) in enumerate(zip(state, as_tuple(dprev))):
        assert_close(ds, numeric_grad(loss, s), f"state[{k}]")


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("cls,kw", CELL_CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_cell_gradients(cls, kw, batched):
    check_cell(cls(3, 4, dtype=np.float64, rng=2, **kw), batched)
