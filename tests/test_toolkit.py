"""The training toolkit against torch: Embedding, Linear, Dropout, cross-entropy, initialisers."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import init
from rnnkit.dropout import Dropout
from rnnkit.embedding import Embedding
from rnnkit.linear import Linear
from rnnkit.losses import log_softmax, mean_squared_error, softmax, softmax_cross_entropy
from helpers import rel_err
from test_gradcheck import assert_close, numeric_grad

torch = pytest.importorskip("torch")


def test_embedding_matches_torch_with_repeated_ids():
    emb = Embedding(7, 3, dtype=np.float64, rng=0)
    idx = np.array([[1, 1, 6], [0, 1, 6]])
    dout = np.random.default_rng(0).standard_normal((2, 3, 3))
    t = torch.nn.Embedding(7, 3, dtype=torch.float64)
    t.load_state_dict({"weight": torch.from_numpy(emb.weight.data.copy())})
    out = emb(idx)
    emb.backward(dout)
    t_out = t(torch.from_numpy(idx))
    (t_out * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    assert rel_err(emb.weight.grad, t.weight.grad.numpy()) < 1e-15


def test_embedding_rejects_bad_ids():
    emb = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 5\).*max 5"):
        emb(np.array([0, 5]))
    with pytest.raises(TypeError, match="idx must be an integer array, got dtype float64"):
        emb(np.array([0.0]))


def test_linear_matches_torch_and_gradcheck():
    lin = Linear(4, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 4))
    w = np.random.default_rng(2).standard_normal((5, 2, 3))
    t = torch.nn.Linear(4, 3, dtype=torch.float64)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})
    xt = torch.tensor(x, requires_grad=True)
    (t(xt) * torch.from_numpy(w)).sum().backward()
    out = lin(x)
    dx = lin.backward(w)
    assert rel_err(out, t(xt).detach().numpy()) < 1e-15
    assert rel_err(dx, xt.grad.numpy()) < 1e-15
    assert rel_err(lin.weight.grad, t.weight.grad.numpy()) < 1e-14
    assert rel_err(lin.bias.grad, t.bias.grad.numpy()) < 1e-14

    def loss():
        with rnnkit.no_grad():
            return float(np.sum(lin(x) * w))
    assert_close(dx, numeric_grad(loss, x), "x")


def test_dropout_masks_scale_and_reuse():
    d = Dropout(0.5, dtype=np.float64, rng=0)
    x = np.ones((1000,))
    y = d(x)
    assert set(np.unique(y)) == {0.0, 2.0}
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), y)
    d.eval()
    np.testing.assert_array_equal(d(x), x)


@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy_matches_torch(masked):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 3, 11)) * 5
    y = rng.integers(0, 11, (6, 3))
    mask = rng.random((6, 3)) < 0.6 if masked else None
    loss, dz = softmax_cross_entropy(z, y, mask)
    zt = torch.tensor(z, requires_grad=True)
    per = torch.nn.functional.cross_entropy(zt.reshape(-1, 11), torch.from_numpy(y).reshape(-1), reduction="none")
    m = torch.ones(18, dtype=torch.float64) if mask is None else torch.from_numpy(mask.reshape(-1)).double()
    t_loss = (per * m).sum() / m.sum()
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-14
    assert rel_err(dz, zt.grad.numpy()) < 1e-14


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4]], dtype=np.float32)
    loss, dz = softmax_cross_entropy(z, np.array([2]))
    assert np.isfinite(loss) and abs(loss - 2e4) < 1.0
    assert np.all(np.isfinite(dz))
    assert np.all(np.isfinite(log_softmax(z)))


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\).*got \(3,\)"):
        softmax_cross_entropy(np.zeros((2, 4)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 4]))


def test_xavier_and_orthogonal():
    a = np.empty((200, 300))
    init.xavier_uniform_(a, rng=0)
    assert abs(a.var() - 2 / 500) < 2e-4 and np.abs(a).max() <= np.sqrt(6 / 500)
    init.xavier_normal_(a, gain=2.0, rng=1)
    assert abs(a.std() - 2 * np.sqrt(2 / 500)) < 2e-3
    q = np.empty((5, 8))
    init.orthogonal_(q, rng=2)
    np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-12)


def test_orthogonal_recurrent_and_forget_bias():
    lstm = rnnkit.LSTM(3, 6, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    init.orthogonal_recurrent_(lstm, rng=1)
    init.forget_bias_(lstm, 1.0)
    for name, p in lstm.named_parameters():
        if name.startswith("weight_hh"):
            for k in range(4):
                block = p.data[6 * k:6 * (k + 1)]
                np.testing.assert_allclose(block @ block.T, np.eye(6), atol=1e-12)
        if name.startswith("bias_ih"):
            np.testing.assert_array_equal(p.data[6:12], 1.0)
        if name.startswith("bias_hh"):
            np.testing.assert_array_equal(p.data[6:12], 0.0)


def test_cross_entropy_gradient_by_finite_differences():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 2, 5))
    y = rng.integers(0, 5, (4, 2))
    mask = rng.random((4, 2)) < 0.7
    _, dz = softmax_cross_entropy(z, y, mask)
    assert_close(dz, numeric_grad(lambda: softmax_cross_entropy(z, y, mask)[0], z), "logits")


def test_mean_squared_error_by_hand_and_by_finite_differences():
    z = np.array([[1.0, -2.0], [0.5, 3.0], [0.0, 0.25]])
    y = np.array([[0.0, -1.0], [0.5, 1.0], [2.0, 0.0]])
    loss, dz = mean_squared_error(z, y)
    assert loss == pytest.approx((1 + 1 + 0 + 4 + 4 + 0.0625) / 6, rel=1e-15)
    np.testing.assert_allclose(dz, np.array([[1, -1], [0, 2], [-2, 0.25]]) * 2 / 6, rtol=1e-15)
    assert mean_squared_error(z, y, grad=False) == (loss, None)
    assert loss == pytest.approx(torch.nn.functional.mse_loss(torch.from_numpy(z), torch.from_numpy(y)).item(),
                                 rel=1e-15)
    assert_close(dz, numeric_grad(lambda: mean_squared_error(z, y)[0], z), "outputs")
    with pytest.raises(ValueError, match=r"targets must have shape \(3, 2\)"):
        mean_squared_error(z, np.zeros((4, 3, 2)))


def test_softmax_is_the_exponential_of_log_softmax():
    z = np.random.default_rng(5).standard_normal((4, 6)) * 30
    p = softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p, np.exp(log_softmax(z)), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(softmax(z), torch.softmax(torch.from_numpy(z), dim=1).numpy(), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_gradients_by_finite_differences(cell):
    """The whole composition Embedding → 2-layer stack → Dropout → Linear → cross-entropy,
    in training mode with dropout (the same masks in every call), checked in float64."""
    from rnnkit.lm.model import CharLM, ModelConfig
    model = CharLM(ModelConfig(7, cell, embed=3, hidden=4, layers=2, dropout=0.3), dtype=np.float64, rng=0)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 7, (5, 2)), rng.integers(0, 7, (5, 2))
    state = model.initial_state(2)

    def loss(grad=False):
        model.rng.bit_generator.state = seed_state
        logits, _ = model(x, state)
        value, dz = softmax_cross_entropy(logits, y)
        return (value, dz) if grad else value

    seed_state = np.random.default_rng(9).bit_generator.state
    _, dz = loss(grad=True)
    model.zero_grad()
    model.backward(dz)
    for name, p in model.named_parameters():
        with rnnkit.no_grad():
            numeric = numeric_grad(loss, p.data)
        assert_close(p.grad, numeric, name)
