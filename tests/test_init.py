"""He initialisation and calculate_gain against torch.nn.init (PyTorch 2.13).

The gains exactly, for every nonlinearity torch names, and its errors; the bound (uniform) and
the std (normal) of kaiming_uniform_ / kaiming_normal_ exactly, recovered from torch's own draws
(the maximum of many uniform draws approaches the bound from below; the std of many normal draws
is the std within sampling error) and from ours the same way; init_recurrent_'s schemes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import rnnkit
from rnnkit import init

torch = pytest.importorskip("torch")

GAIN_CASES = [(name, None) for name in init.NONLINEARITIES] + [
    ("leaky_relu", 0), ("leaky_relu", 0.2), ("leaky_relu", 1), ("leaky_relu", -0.5), ("leaky_relu", np.float64(0.3)),
]


@pytest.mark.parametrize("nonlinearity,param", GAIN_CASES)
def test_calculate_gain_equals_torch(nonlinearity, param):
    ours = init.calculate_gain(nonlinearity, param)
    assert ours == torch.nn.init.calculate_gain(nonlinearity, param)
    assert type(ours) is type(torch.nn.init.calculate_gain(nonlinearity, param))


def test_calculate_gain_values():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("selu") == 0.75
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))


@pytest.mark.parametrize("nonlinearity,param", [("swish", None), ("leaky_relu", "0.1"), ("leaky_relu", True),
                                                 ("leaky_relu", [0.1]), ("Relu", None)])
def test_calculate_gain_errors_as_torch(nonlinearity, param):
    with pytest.raises(ValueError) as theirs:
        torch.nn.init.calculate_gain(nonlinearity, param)
    with pytest.raises(ValueError) as ours:
        init.calculate_gain(nonlinearity, param)
    assert str(ours.value).startswith(str(theirs.value))


SHAPES = [(64, 32), (48, 12, 5), (300, 7)]
KAIMING_ARGS = [dict(), dict(a=0.2), dict(mode="fan_out"), dict(nonlinearity="relu"), dict(nonlinearity="tanh"),
                dict(a=1, mode="FAN_IN", nonlinearity="leaky_relu"), dict(nonlinearity="linear", mode="fan_out")]


def _torch_std(shape, kw) -> float:
    """torch's std for these arguments, from its own formula's pieces (gain, fan)."""
    t = torch.empty(shape)
    fan = torch.nn.init._calculate_correct_fan(t, kw.get("mode", "fan_in"))
    return torch.nn.init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0)) / math.sqrt(fan)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kw", KAIMING_ARGS, ids=str)
def test_kaiming_std_equals_torch(shape, kw):
    assert init.kaiming_std(shape, kw.get("a", 0), kw.get("mode", "fan_in"), kw.get("nonlinearity", "leaky_relu")) \
        == _torch_std(shape, kw)


@pytest.mark.parametrize("kw", KAIMING_ARGS, ids=str)
def test_kaiming_uniform_bound_and_statistics(kw):
    shape = (400, 250)                                    # 100 000 draws
    std = _torch_std(shape, kw)
    bound = math.sqrt(3) * std
    t = torch.nn.init.kaiming_uniform_(torch.empty(shape, dtype=torch.float64), generator=torch.Generator().manual_seed(0), **kw)
    ours = init.kaiming_uniform_(np.empty(shape), **kw, rng=0)
    for a in (t.numpy(), ours):
        assert np.abs(a).max() <= bound
        assert np.abs(a).max() > bound * (1 - 1e-3)       # the largest of 1e5 draws: within 1e-3 of it
        assert abs(a.mean()) < 5 * std / math.sqrt(a.size)
        assert a.std() == pytest.approx(std, rel=0.01)    # sampling error ~0.2% at 1e5 draws
    assert abs(ours.std() / t.numpy().std() - 1) < 0.01


@pytest.mark.parametrize("kw", KAIMING_ARGS, ids=str)
def test_kaiming_normal_std_and_statistics(kw):
    shape = (400, 250)
    std = _torch_std(shape, kw)
    t = torch.nn.init.kaiming_normal_(torch.empty(shape, dtype=torch.float64), generator=torch.Generator().manual_seed(0), **kw)
    ours = init.kaiming_normal_(np.empty(shape), **kw, rng=0)
    for a in (t.numpy(), ours):
        assert a.std() == pytest.approx(std, rel=0.01)
        assert abs(a.mean()) < 5 * std / math.sqrt(a.size)
        kurtosis = ((a - a.mean()) ** 4).mean() / a.var() ** 2
        assert kurtosis == pytest.approx(3.0, abs=0.1)    # Gaussian (a uniform's is 1.8)


def test_kaiming_conv_weight_uses_the_receptive_field():
    w = init.kaiming_normal_(np.empty((256, 8, 25)), mode="fan_in", nonlinearity="relu", rng=1)
    assert w.std() == pytest.approx(math.sqrt(2 / (8 * 25)), rel=0.01)


def test_kaiming_same_rng_same_values_and_in_place():
    a, b = np.empty((5, 4)), np.empty((5, 4), np.float32)
    assert init.kaiming_uniform_(a, rng=3) is a
    init.kaiming_uniform_(b, rng=3)
    assert a.tolist() == init.kaiming_uniform_(np.empty((5, 4)), rng=np.random.default_rng(3)).tolist()
    assert b.dtype == np.float32 and np.allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("fn", ["kaiming_uniform_", "kaiming_normal_"])
def test_kaiming_errors_as_torch(fn):
    for args, kw in [((np.empty(5),), {}), ((np.empty((3, 4)),), dict(mode="fan_avg")),
                     ((np.empty((3, 4)),), dict(nonlinearity="gelu")), ((np.empty((3, 4)), "x"), {})]:
        targs = (torch.from_numpy(args[0]), *args[1:])
        with pytest.raises(ValueError) as theirs:
            getattr(torch.nn.init, fn)(*targs, **kw)
        with pytest.raises(ValueError) as ours:
            getattr(init, fn)(*args, **kw)
        assert str(ours.value).split(",")[0].split(";")[0][:20] == str(theirs.value)[:20]


def test_kaiming_zero_elements_warns_and_leaves_it():
    a = np.empty((0, 3))
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_normal_(a) is a
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init.kaiming_normal_(np.empty((2, 3)), rng=0)


@pytest.mark.parametrize("cell,kw,gain", [("rnn", dict(nonlinearity="relu"), math.sqrt(2)), ("gru", {}, 5 / 3),
                                          ("lstm", dict(peephole=True), 5 / 3)])
def test_init_recurrent_kaiming(cell, kw, gain):
    layer = rnnkit.kinds.layer_class(cell)(40, 200, num_layers=2, dtype=np.float64, rng=0, **kw)
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    init.init_recurrent_(layer, "kaiming", rng=1)
    for name, p in layer.named_parameters():
        if name.startswith(("weight_ih", "weight_hh")):
            assert p.data.std() == pytest.approx(gain / math.sqrt(p.data.shape[1]), rel=0.03), name
        else:                                               # biases and peepholes keep theirs
            assert np.array_equal(p.data, before[name]), name


def test_init_recurrent_schemes():
    def fresh():
        return rnnkit.LSTM(6, 8, dtype=np.float64, rng=0)
    default = fresh()
    init.init_recurrent_(default, "default", rng=1)
    assert all(np.array_equal(a, b) for a, b in zip(default.state_dict().values(), fresh().state_dict().values()))
    ortho = fresh()
    init.init_recurrent_(ortho, "orthogonal", rng=1)
    block = ortho.state_dict()["weight_hh_l0"][8:16]
    assert np.allclose(block @ block.T, np.eye(8))
    assert np.array_equal(ortho.state_dict()["weight_ih_l0"], fresh().state_dict()["weight_ih_l0"])
    xav = fresh()
    init.init_recurrent_(xav, "xavier", rng=1)
    w = xav.state_dict()["weight_ih_l0"]
    assert np.abs(w).max() <= math.sqrt(6 / (6 + 8)) and np.abs(w).max() > 1 / math.sqrt(8)
    assert not np.array_equal(w, fresh().state_dict()["weight_ih_l0"])
    with pytest.raises(ValueError, match="init scheme must be one of default, xavier, orthogonal, kaiming"):
        init.init_recurrent_(fresh(), "he")
