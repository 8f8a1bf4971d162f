"""Forward pass against the independent per-step transcription of the spec (tests/reference.py).

This is the oracle for what PyTorch lacks — peephole LSTM and the reset_after=False GRU — in
every combination with layers, directions, projection and lengths; their gradients are proven by
the finite-difference checks in test_gradcheck.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference
from helpers import Case, as_tuple, rel_err

pytestmark = pytest.mark.both_backends      # the engine and the NumPy reference (conftest.py)

CASES = [
    Case("lstm", peephole=True),
    Case("lstm", peephole=True, proj_size=3, num_layers=2, bidirectional=True, lengths=True, init_state=True),
    Case("lstm", peephole=True, bias=False, num_layers=3, init_state=True),
    Case("gru", reset_after=False),
    Case("gru", reset_after=False, num_layers=2, bidirectional=True, lengths=True, init_state=True),
    Case("gru", reset_after=False, bias=False, num_layers=3, bidirectional=True),
    Case("gru", num_layers=2, bidirectional=True, lengths=True, init_state=True),
    Case("rnn", nonlinearity="relu", num_layers=2, bidirectional=True, lengths=True),
    Case("lstm", proj_size=2, num_layers=2, bidirectional=True, lengths=True, init_state=True),
]


def cell_kwargs(case: Case) -> dict:
    return {"lstm": {"peephole": case.peephole}, "gru": {"reset_after": case.reset_after},
            "rnn": {"nonlinearity": case.nonlinearity}}[case.mode]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_forward_matches_reference(case):
    case = case.with_(T=6, B=4, H=5)
    rng = np.random.default_rng(4)
    layer = case.make(np.float64, seed=8)
    x, state, lengths = case.inputs(rng)
    out, fin = layer(x, state, lengths=lengths)
    state0 = tuple(np.zeros(s) for s in case.state_shapes()) if state is None else as_tuple(state)
    ref_out, ref_fin = reference.run_stack(case.mode, layer.state_dict(), x, state0, lengths,
                                           case.num_layers, case.bidirectional, **cell_kwargs(case))
    assert rel_err(out, ref_out) < 1e-13
    for a, b in zip(as_tuple(fin), ref_fin):
        assert rel_err(a, b) < 1e-13
    if lengths is not None:                   # padded outputs are exactly zero
        t = np.arange(case.T)[:, None]
        assert np.all(out[t >= lengths] == 0)


def test_peephole_changes_the_result():
    """Guards the reference test itself: peephole weights must matter."""
    case = Case("lstm", peephole=True, T=5)
    layer = case.make(np.float64, seed=1)
    x, _, _ = case.inputs(np.random.default_rng(0))
    out, _ = layer(x)
    for name in ("weight_ci_l0", "weight_cf_l0", "weight_co_l0"):
        sd = layer.state_dict()
        sd[name] = np.zeros_like(sd[name])
        other = case.make(np.float64, seed=1)
        other.load_state_dict(sd)
        assert rel_err(other(x)[0], out) > 1e-3, name


def test_cho_gru_differs_from_pytorch_form():
    case = Case("gru", T=5)
    a = case.make(np.float64, seed=1)
    b = case.with_(reset_after=False).make(np.float64, seed=1)
    x, _, _ = case.inputs(np.random.default_rng(0))
    assert rel_err(a(x)[0], b(x)[0]) > 1e-3
