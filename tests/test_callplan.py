"""Call plans (rnnkit.engine.callplan, backplan): a call of a shape seen before replays the records
of the first, and must give what a layer that never kept anything gives, bit for bit, whatever
happened to the weights in between."""

import numpy as np
import pytest

import rnnkit
import rnnkit.optim
from rnnkit.engine import callplan
from rnnkit.precision import bfloat16_usable

pytestmark = pytest.mark.skipif(not rnnkit.engine.enabled(), reason="the engine is unavailable")

LAYERS = [(rnnkit.LSTM, {}), (rnnkit.GRU, {}), (rnnkit.RNN, {}), (rnnkit.LSTM, {"num_layers": 2}),
          (rnnkit.LSTM, {"peephole": True}), (rnnkit.LSTM, {"proj_size": 5}), (rnnkit.GRU, {"num_layers": 2})]
IDS = ["lstm", "gru", "rnn", "lstm-2-layers", "lstm-peephole", "lstm-proj", "gru-2-layers"]


def fresh_call(layer, kw, x, dout=None):
    """(output, dx, gradients) of a new layer holding ``layer``'s weights: its first call, which
    has no plan (``layer``'s plans are left as they are)."""
    fresh = type(layer)(6, 12, rng=9, **kw)
    fresh.load_state_dict(layer.state_dict())
    return call(fresh, x, dout)


def call(layer, x, dout=None):
    """(output, dx, {name: gradient}) of one call; inference only when ``dout`` is None."""
    if dout is None:
        with rnnkit.no_grad():
            return layer(x)[0], None, {}
    for p in layer.parameters():
        p.grad[...] = 0
    out = layer(x)[0]
    dx, _ = layer.backward(dout)
    return out, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}


def assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    if a[1] is not None:
        np.testing.assert_array_equal(a[1], b[1])
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        np.testing.assert_array_equal(a[2][name], b[2][name], err_msg=name)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=IDS)
def test_plan_sees_weights_changed_in_place(layer_cls, kw, training):
    """After calls that made and replayed plans, a change in place of one element of any weight
    (the last one: the comparison's end; -0.0 and NaN: bits, not values) gives a fresh layer's result."""
    layer = layer_cls(6, 12, rng=1, **kw)
    x = np.random.default_rng(2).standard_normal((11, 3, 6)).astype(np.float32)
    dout = np.random.default_rng(3).standard_normal((11, 3, layer.proj_size or 12)).astype(np.float32)
    d = dout if training else None
    first = call(layer, x, d)
    assert_same(call(layer, x, d), first)                       # replayed
    for name, p in layer.named_parameters():
        for value in (0.25, -0.0, np.nan):
            p.data.reshape(-1)[-1] = value
            call(layer, x, d)
            got = call(layer, x, d)                              # the plan made again, replayed
            assert_same(got, fresh_call(layer, kw, x, d))
        p.data.reshape(-1)[-1] = 0.5
    assert not np.array_equal(got[0], first[0])


@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=IDS)
def test_plan_follows_optimizer_steps(layer_cls, kw):
    """Training steps (forward, backward, Adam's step in place): every call equals a fresh layer's."""
    layer = layer_cls(6, 12, rng=1, **kw)
    opt = rnnkit.optim.Adam(layer.parameters(), lr=1e-2)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 2, 6)).astype(np.float32)
    dout = rng.standard_normal((7, 2, layer.proj_size or 12)).astype(np.float32)
    for _ in range(3):
        got = call(layer, x, dout)
        opt.step()
        with rnnkit.no_grad():
            out = layer(x)[0]
        np.testing.assert_array_equal(out, fresh_call(layer, kw, x)[0])
    assert_same(call(layer, x, dout), fresh_call(layer, kw, x, dout))
    assert not np.array_equal(got[0], out)


def test_plan_sees_weights_rebound():
    """A parameter given a new array (p.data = ...) is not the array a plan read."""
    layer = rnnkit.LSTM(6, 12, rng=1)
    x = np.random.default_rng(2).standard_normal((5, 2, 6)).astype(np.float32)
    call(layer, x), call(layer, x)
    p = dict(layer.named_parameters())["weight_hh_l0"]
    p.data = p.data * np.float32(0.5)
    assert_same(call(layer, x), fresh_call(layer, {}, x))


def test_results_are_the_callers():
    """Outputs, final states and dx of one call are not overwritten by the next call's."""
    layer = rnnkit.LSTM(6, 12, rng=1)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((8, 2, 6)).astype(np.float32) for _ in range(3)]
    with rnnkit.no_grad():
        kept = [layer(x) for x in xs]
    out, (h, c) = kept[0]
    with rnnkit.no_grad():
        again, (h2, c2) = layer(xs[0])
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(c, c2)
    dout = np.ones((8, 2, 12), np.float32)
    layer(xs[0])
    dx0 = layer.backward(dout)[0]
    saved = dx0.copy()
    layer(xs[1])
    layer.backward(dout)
    np.testing.assert_array_equal(dx0, saved)


def test_plans_equal_the_reference():
    """The replayed calls (inference and training) agree with the NumPy reference."""
    layer = rnnkit.GRU(6, 12, num_layers=2, rng=1)
    x = np.random.default_rng(7).standard_normal((9, 3, 6)).astype(np.float32)
    dout = np.ones((9, 3, 12), np.float32)
    call(layer, x, dout)
    got = call(layer, x, dout)
    with rnnkit.backend.use("numpy"):
        want = call(layer, x, dout)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5)
    for name in want[2]:
        np.testing.assert_allclose(got[2][name], want[2][name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_bits_compared_exactly():
    """same_bits: one differing bit anywhere in any array (NaN's and -0.0's included) is seen."""
    arrays = [np.arange(n, dtype=np.float32) for n in (1, 255, 256, 257, 1000)]
    kept = tuple(callplan.bits(a.copy()) for a in arrays)
    live = tuple(callplan.bits(a) for a in arrays)
    assert callplan.same_bits(kept, live)
    for a in arrays:
        for k in {0, a.size // 2, a.size - 1}:
            for value in (np.float32(-0.0) if a[k] == 0 else np.float32(0.0), np.float32(np.nan)):
                old = a[k]
                a[k] = value
                assert not callplan.same_bits(kept, live)
                a[k] = old
    assert callplan.same_bits(kept, live)


@pytest.mark.parametrize("training", [False, True], ids=["infer", "train"])
def test_no_plan_under_low_precision(training):
    """Under rnnkit.autocast the products are bfloat16's (engine.mixed): the float32 plans made
    before are not replayed, and the call equals a fresh layer's under autocast."""
    layer = rnnkit.LSTM(6, 12, rng=1)
    x = np.random.default_rng(2).standard_normal((11, 3, 6)).astype(np.float32)
    d = np.ones((11, 3, 12), np.float32) if training else None
    plain = call(layer, x, d)
    call(layer, x, d)
    with rnnkit.autocast():
        low = call(layer, x, d)
        assert_same(low, fresh_call(layer, {}, x, d))
    # without a bfloat16 unit autocast runs float32 (a PrecisionWarning says so): the same values
    assert np.array_equal(low[0], plain[0]) != bfloat16_usable()
    assert_same(call(layer, x, d), plain)


@pytest.mark.parametrize("layer_cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN], ids=["lstm", "gru", "rnn"])
def test_plans_on_shared_steps(layer_cls, threads):
    """With the steps shared between threads (helpers.engine_threads), replayed calls, before and
    after an in-place change, equal fresh layers' (on the same threads)."""
    layer = layer_cls(6, 12, num_layers=2, rng=1)
    x = np.random.default_rng(2).standard_normal((9, 3, 6)).astype(np.float32)
    dout = np.ones((9, 3, 12), np.float32)
    call(layer, x, dout)
    assert_same(call(layer, x, dout), fresh_call(layer, {"num_layers": 2}, x, dout))
    dict(layer.named_parameters())["weight_hh_l1"].data[0, 0] += 1
    call(layer, x, dout)
    assert_same(call(layer, x, dout), fresh_call(layer, {"num_layers": 2}, x, dout))
