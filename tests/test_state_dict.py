"""State dicts move both ways between rnnkit and PyTorch, with PyTorch's names and shapes."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from helpers import Case, as_tuple, rel_err

torch = pytest.importorskip("torch")

CASES = [Case("rnn", num_layers=2, bidirectional=True), Case("gru", num_layers=3),
         Case("lstm", num_layers=2, bidirectional=True, proj_size=2), Case("lstm", bias=False)]
TORCH = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def torch_kwargs(case: Case) -> dict:
    kw = dict(num_layers=case.num_layers, bidirectional=case.bidirectional, bias=case.bias, dtype=torch.float64)
    return kw | ({"proj_size": case.proj_size} if case.proj_size else {})


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_torch_weights_into_rnnkit(case):
    torch.manual_seed(0)
    t = TORCH[case.mode](case.I, case.H, **torch_kwargs(case))
    ours = case.make(np.float64, seed=99)
    ours.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((case.T, case.B, case.I))
    out, fin = ours(x)
    t_out, t_fin = t(torch.from_numpy(x))
    assert rel_err(out, t_out.detach().numpy()) < 1e-12
    for a, b in zip(as_tuple(fin), as_tuple(t_fin)):
        assert rel_err(a, b.detach().numpy()) < 1e-12


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_rnnkit_weights_into_torch(case):
    ours = case.make(np.float64, seed=5)
    t = TORCH[case.mode](case.I, case.H, **torch_kwargs(case))
    sd = ours.state_dict()
    assert list(sd) == list(t.state_dict())                  # same names, same order
    t.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = np.random.default_rng(1).standard_normal((case.T, case.B, case.I))
    assert rel_err(t(torch.from_numpy(x))[0].detach().numpy(), ours(x)[0]) < 1e-12


def test_cell_state_dicts_match_torch_names():
    for ours, theirs in [(rnnkit.RNNCell(3, 4), torch.nn.RNNCell(3, 4)),
                         (rnnkit.GRUCell(3, 4), torch.nn.GRUCell(3, 4)),
                         (rnnkit.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4))]:
        sd = ours.state_dict()
        assert {k: v.shape for k, v in sd.items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
        a = ours(x)
        b = theirs(torch.from_numpy(x))
        for u, v in zip(as_tuple(a), as_tuple(b)):
            assert rel_err(u, v.detach().numpy()) < 1e-5


def test_peephole_names_and_shapes():
    lstm = rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, peephole=True)
    shapes = {k: v.shape for k, v in lstm.state_dict().items()}
    for k in range(2):
        for sfx in ("", "_reverse"):
            for gate in "ifo":
                assert shapes[f"weight_c{gate}_l{k}{sfx}"] == (5,)
            assert shapes[f"weight_hr_l{k}{sfx}"] == (2, 5)
            assert shapes[f"weight_hh_l{k}{sfx}"] == (20, 2)
    assert shapes["weight_ih_l1"] == (20, 4)


def test_load_errors_list_every_problem_and_change_nothing():
    lstm = rnnkit.LSTM(3, 4)
    before = lstm.state_dict()
    sd = dict(before)
    del sd["bias_hh_l0"]
    sd["weight_hh_l0"] = np.zeros((4, 4))
    sd["extra"] = np.zeros(1)
    sd["weight_ih_l0"] = sd["weight_ih_l0"] + 1
    with pytest.raises(ValueError) as info:
        lstm.load_state_dict(sd)
    msg = str(info.value)
    assert "bias_hh_l0" in msg and "extra" in msg
    assert "weight_hh_l0: expected shape (16, 4), got (4, 4)" in msg
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_load_skips_missing_and_unexpected():
    gru = rnnkit.GRU(2, 3, rng=0)
    sd = {"weight_ih_l0": np.ones((9, 2)), "unknown": np.zeros(2)}
    gru.load_state_dict(sd, strict=False)
    np.testing.assert_array_equal(dict(gru.named_parameters())["weight_ih_l0"].data, 1.0)


def test_load_keeps_layer_dtype_and_copies():
    gru = rnnkit.GRU(2, 3, dtype=np.float32)
    src = {k: v.astype(np.float64) for k, v in gru.state_dict().items()}
    gru.load_state_dict(src)
    src["weight_ih_l0"][...] = 7.0                           # the layer keeps its own copy
    assert all(p.data.dtype == np.float32 for p in gru.parameters())
    assert not np.any(gru.state_dict()["weight_ih_l0"] == 7.0)


def test_load_rejects_non_numeric():
    gru = rnnkit.GRU(2, 3)
    sd = gru.state_dict()
    sd["bias_ih_l0"] = np.array(["a"] * 9)
    with pytest.raises(ValueError, match="bias_ih_l0: expected real numbers"):
        gru.load_state_dict(sd)
