"""Pooling layers: float64 finite differences, a PyTorch transcription, padding and errors."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.pooling import AttentionPool, LastStep, MaxPool, MeanPool, make_pool
from helpers import rel_err
from test_errors import raises
from test_gradcheck import assert_close, numeric_grad

T, B, F = 5, 4, 6
LENGTHS = np.array([5, 2, 1, 4])


def make(kind: str, batch_first=False, bidirectional=False):
    kw = dict(batch_first=batch_first, dtype=np.float64)
    if kind == "attention":
        return AttentionPool(F, 3, rng=7, **kw)
    if kind == "last":
        return LastStep(bidirectional, **kw)
    return {"max": MaxPool, "mean": MeanPool}[kind](**kw)


CASES = [(kind, lengths, bf, False) for kind in ("last", "max", "mean", "attention")
         for lengths in (False, True) for bf in (False, True)] + \
        [("last", True, False, True), ("last", False, True, True)]


@pytest.mark.parametrize("kind,with_lengths,batch_first,bidirectional", CASES)
def test_gradients_by_finite_differences(kind, with_lengths, batch_first, bidirectional):
    rng = np.random.default_rng(0)
    pool = make(kind, batch_first, bidirectional)
    h = rng.standard_normal((B, T, F) if batch_first else (T, B, F))
    lengths = LENGTHS if with_lengths else None
    w = rng.standard_normal((B, F))
    pool.zero_grad()
    pool(h, lengths)
    dh = pool.backward(w)

    def loss():
        with rnnkit.no_grad():
            return float(np.sum(pool(h, lengths) * w))

    assert_close(dh, numeric_grad(loss, h), "h")
    for name, p in pool.named_parameters():
        assert_close(p.grad, numeric_grad(loss, p.data), name)
    if with_lengths:          # padded steps get exactly zero gradient
        time_major = dh.transpose(1, 0, 2) if batch_first else dh
        pad = np.arange(T)[:, None] >= LENGTHS[None, :]
        assert np.all(time_major[pad] == 0)


@pytest.mark.parametrize("kind", ["last", "max", "mean", "attention"])
def test_padding_never_reaches_the_output(kind):
    rng = np.random.default_rng(1)
    pool = make(kind)
    h = rng.standard_normal((T, B, F))
    y = pool(h, LENGTHS)
    h2 = h.copy()
    h2[np.arange(T)[:, None] >= LENGTHS[None, :]] = 1e6        # huge padding: must not win or leak
    np.testing.assert_array_equal(pool(h2, LENGTHS), y)


def test_values_against_direct_formulas():
    rng = np.random.default_rng(2)
    h = rng.standard_normal((T, B, F))
    for b, L in enumerate(LENGTHS):
        np.testing.assert_allclose(MeanPool(dtype=np.float64)(h, LENGTHS)[b], h[:L, b].mean(axis=0))
        np.testing.assert_array_equal(MaxPool(dtype=np.float64)(h, LENGTHS)[b], h[:L, b].max(axis=0))
        np.testing.assert_array_equal(LastStep(dtype=np.float64)(h, LENGTHS)[b], h[L - 1, b])
        both = LastStep(True, dtype=np.float64)(h, LENGTHS)[b]
        np.testing.assert_array_equal(both, np.r_[h[L - 1, b, :F // 2], h[0, b, F // 2:]])


def test_attention_weights_are_readable_and_masked():
    pool = make("attention")
    h = np.random.default_rng(3).standard_normal((T, B, F))
    with rnnkit.no_grad():
        y = pool(h, LENGTHS)
    alpha = pool.alpha
    assert alpha.shape == (B, T)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(alpha[np.arange(T)[None, :] >= LENGTHS[:, None]] == 0.0)
    assert np.all(alpha[np.arange(T)[None, :] < LENGTHS[:, None]] > 0.0)
    assert alpha[2, 0] == 1.0                                   # a one-step sequence: all weight there
    np.testing.assert_allclose(y, np.einsum("bt,tbf->bf", alpha, h), rtol=1e-14)
    with pytest.raises(RuntimeError, match="no forward call with gradients enabled"):
        pool.backward(np.ones((B, F)))


@pytest.mark.parametrize("cell", [rnnkit.GRU, rnnkit.LSTM])
def test_bidirectional_last_step_is_the_final_state(cell):
    """LastStep(bidirectional) of a packed bidirectional layer's output is [h_n forward, h_n reverse]."""
    layer = cell(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    x = np.random.default_rng(4).standard_normal((T, B, 3))
    out, state = layer(x, lengths=LENGTHS)
    h_n = state[0] if isinstance(state, tuple) else state
    y = LastStep(bidirectional=True, dtype=np.float64)(out, LENGTHS)
    np.testing.assert_array_equal(y, np.concatenate([h_n[-2], h_n[-1]], axis=1))


# -- the PyTorch transcription ----------------------------------------------------------------------

torch = pytest.importorskip("torch")


def torch_pool(kind, h, lengths, W=None, b=None, v=None, bidirectional=False):
    """The same pooling written with torch operations (masked_fill, masked softmax, gather)."""
    steps = h.shape[0]
    mask = torch.arange(steps)[:, None] < lengths[None, :]                 # (T, B)
    if kind == "max":
        return h.masked_fill(~mask[:, :, None], float("-inf")).max(dim=0).values
    if kind == "mean":
        return (h * mask[:, :, None]).sum(dim=0) / lengths[:, None].to(h.dtype)
    if kind == "last":
        last = h[lengths - 1, torch.arange(h.shape[1])]
        if bidirectional:
            half = h.shape[2] // 2
            last = torch.cat([last[:, :half], h[0, :, half:]], dim=1)
        return last
    u = torch.tanh(h @ W.T + b)
    e = (u @ v).masked_fill(~mask, float("-inf"))
    alpha = torch.softmax(e, dim=0)
    return (alpha[:, :, None] * h).sum(dim=0)


@pytest.mark.parametrize("kind,bidirectional", [("last", False), ("last", True), ("max", False),
                                                ("mean", False), ("attention", False)])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_matches_torch_transcription(kind, bidirectional, with_lengths):
    rng = np.random.default_rng(5)
    h = rng.standard_normal((T, B, F))
    w = rng.standard_normal((B, F))
    lengths = LENGTHS if with_lengths else np.full(B, T)
    pool = make(kind, bidirectional=bidirectional)
    y = pool(h, lengths if with_lengths else None)
    dh = pool.backward(w)
    ht = torch.tensor(h, requires_grad=True)
    params = {k: torch.tensor(p.data.copy(), requires_grad=True) for k, p in pool.named_parameters()}
    yt = torch_pool(kind, ht, torch.from_numpy(lengths), bidirectional=bidirectional, **params)
    (yt * torch.from_numpy(w)).sum().backward()
    assert rel_err(y, yt.detach().numpy()) < 1e-14
    assert rel_err(dh, ht.grad.numpy()) < 1e-14
    for name, p in pool.named_parameters():
        assert rel_err(p.grad, params[name].grad.numpy()) < 1e-13, name


def test_float32_matches_float64():
    h = np.random.default_rng(6).standard_normal((T, B, F))
    for kind in ("max", "mean", "attention", "last"):
        p64 = make(kind)
        p32 = make_pool(kind, F, dtype=np.float32, rng=7)
        if kind == "attention":
            p32 = AttentionPool(F, 3, dtype=np.float32, rng=7)
        y32 = p32(h, LENGTHS)
        assert y32.dtype == np.float32
        assert rel_err(y32, p64(h, LENGTHS)) < 1e-6


def test_errors():
    pool = MaxPool()
    with raises(ValueError, "MaxPool: h must have 3 dimensions (T, B, F)", "got shape (5, 6)"):
        pool(np.zeros((5, 6)))
    with raises(ValueError, "(B, T, F)"):
        MeanPool(batch_first=True)(np.zeros(3))
    with raises(ValueError, "lengths must lie in [1, T=5]", "max 6"):
        pool(np.zeros((5, 2, 3)), [6, 1])
    with raises(ValueError, "lengths must have shape (2,)"):
        pool(np.zeros((5, 2, 3)), [5])
    with raises(RuntimeError, "MeanPool.backward: no forward call"):
        MeanPool().backward(np.zeros((2, 3)))
    pool(np.zeros((5, 2, 3)))
    with raises(ValueError, "dout must have shape (2, 3)", "got (3, 2)"):
        pool.backward(np.zeros((3, 2)))
    with raises(ValueError, "even number of features", "got 3"):
        LastStep(bidirectional=True)(np.zeros((5, 2, 3)))
    with raises(ValueError, "features=6", "got shape (5, 2, 4)"):
        AttentionPool(6)(np.zeros((5, 2, 4)))
    with raises(ValueError, "pooling must be one of", "'sum'"):
        make_pool("sum", 4)
    assert [n for n, _ in AttentionPool(4, 2).named_parameters()] == ["W", "b", "v"]
