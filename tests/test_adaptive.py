"""The adaptive softmax: float64 finite differences, parity with PyTorch's AdaptiveLogSoftmaxWithLoss
(outputs, loss, log_prob, predict, every gradient), exact normalisation, and the language model
built on it (its loss against its own log-probabilities, its gradients, its ONNX graph)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.adaptive import AdaptiveLogSoftmaxWithLoss
from rnnkit.lm.model import CharLM, ModelConfig
from test_gradcheck import numeric_grad

CASES = [  # (in_features, n_classes, cutoffs, div_value, head_bias)
    (8, 20, [4, 10], 2.0, False),
    (12, 40, [5, 15, 30], 2.0, True),
    (16, 9, [1], 4.0, False),
    (6, 30, [29], 1.5, True),
]


def targets(rng, n_classes, cutoffs, n):
    """Targets in every cluster, the head and the last class among them."""
    t = rng.integers(0, n_classes, n)
    t[: len(cutoffs) + 2] = [0, *cutoffs, n_classes - 1][: len(cutoffs) + 2]
    return t


@pytest.mark.parametrize("d,V,cutoffs,div,bias", CASES)
def test_finite_differences(d, V, cutoffs, div, bias):
    rng = np.random.default_rng(0)
    m = AdaptiveLogSoftmaxWithLoss(d, V, cutoffs, div, bias, dtype=np.float64, rng=1)
    x = rng.standard_normal((11, d))
    t = targets(rng, V, cutoffs, 11)
    w = rng.standard_normal(11)                          # J = Σ w · log p(target): every row its own weight

    def J():
        with rnnkit.no_grad():
            return float(w @ m(x, t).output)

    m.zero_grad()
    m(x, t)
    dx = m.backward(w)
    np.testing.assert_allclose(dx, numeric_grad(J, x), rtol=1e-7, atol=1e-8)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(J, p.data), rtol=1e-7, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("d,V,cutoffs,div,bias", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_pytorch(d, V, cutoffs, div, bias, dtype):
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    ref = torch.nn.AdaptiveLogSoftmaxWithLoss(d, V, cutoffs, div_value=div, head_bias=bias, dtype=tdtype)
    ours = AdaptiveLogSoftmaxWithLoss(d, V, cutoffs, div, bias, dtype=dtype, rng=0)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(ours.state_dict()[k].shape == tuple(v.shape) for k, v in ref.state_dict().items())
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, d)).astype(dtype)
    t = targets(rng, V, cutoffs, 64)
    xt = torch.tensor(x, requires_grad=True)
    got, want = ours(x, t), ref(xt, torch.tensor(t))
    want.loss.backward()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(got.output, want.output.detach().numpy(), **tol)
    assert got.loss == pytest.approx(want.loss.item(), rel=tol["rtol"], abs=tol["atol"])
    dx = ours.backward(np.full(64, -1 / 64))                      # the mean loss's gradient
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    for (name, p), (tname, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, q.grad.numpy(), **tol, err_msg=name)
    with torch.no_grad():
        np.testing.assert_allclose(ours.log_prob(x), ref.log_prob(torch.tensor(x)).numpy(), **tol)
        np.testing.assert_array_equal(ours.predict(x), ref.predict(torch.tensor(x)).numpy())
        one = ref(torch.tensor(x[0]), torch.tensor(t[0]))                  # unbatched: (d,) and ()
        first = ref.log_prob(torch.tensor(x[:1]))[0].numpy()              # PyTorch's log_prob wants (N, d)
    assert ours(x[0], t[0]).output == pytest.approx(one.output.item(), rel=tol["rtol"], abs=tol["atol"])
    np.testing.assert_allclose(ours.log_prob(x[0]), first, **tol)


@pytest.mark.parametrize("d,V,cutoffs,div,bias", CASES)
def test_probabilities_sum_to_one_and_forward_agrees(d, V, cutoffs, div, bias):
    m = AdaptiveLogSoftmaxWithLoss(d, V, cutoffs, div, bias, dtype=np.float64, rng=3)
    x = 3 * np.random.default_rng(4).standard_normal((50, d))
    lp = m.log_prob(x)
    assert lp.shape == (50, V)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-13)
    for t in (np.zeros(50, int), np.full(50, V - 1), np.arange(50) % V):    # one cluster, or all
        np.testing.assert_allclose(m(x, t).output, lp[np.arange(50), t], rtol=1e-12, atol=1e-12)


def test_a_batch_without_some_clusters_leaves_their_gradients_zero():
    m = AdaptiveLogSoftmaxWithLoss(8, 30, [5, 15], div_value=2.0, dtype=np.float64, rng=0)
    m.zero_grad()
    m(np.ones((4, 8)), np.array([0, 1, 2, 3]))          # head only
    m.backward(np.full(4, -0.25))
    grads = dict(m.named_parameters())
    assert np.abs(grads["head.weight"].grad).sum() > 0
    assert all(not grads[k].grad.any() for k in grads if k.startswith("tail."))


@pytest.mark.parametrize("cutoffs", [[], [5, 5], [10, 4], [0, 4], [4, 20], [2.5], "5"])
def test_bad_cutoffs_are_refused_as_pytorch_does(cutoffs):
    """PyTorch's one message for every bad cutoffs, with the bound and what was given."""
    with pytest.raises(ValueError, match="cutoffs should be a sequence of unique, positive integers") as err:
        AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)
    assert "n_classes-1 = 19" in str(err.value) and f"got {cutoffs!r}" in str(err.value)
    if isinstance(cutoffs, list) and all(float(c).is_integer() for c in cutoffs):
        with pytest.raises(ValueError, match="cutoffs should be a sequence"):
            torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs)


def test_bad_inputs_name_the_argument():
    m = AdaptiveLogSoftmaxWithLoss(8, 20, [4, 10], div_value=2.0)
    with pytest.raises(ValueError, match=r"input must have shape \(N, in_features=8\), got \(3, 7\)"):
        m(np.zeros((3, 7)), np.zeros(3, int))
    with pytest.raises(ValueError, match="the same size in the batch dimension, got 3 and 2"):
        m(np.zeros((3, 8)), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 20\), got min 0 and max 20"):
        m(np.zeros((2, 8)), np.array([0, 20]))
    with pytest.raises(TypeError, match="target must be integers"):
        m(np.zeros((2, 8)), np.zeros(2))
    with pytest.raises(RuntimeError, match="no forward call with gradients enabled"):
        with rnnkit.no_grad():
            m(np.zeros((2, 8)), np.zeros(2, int))
        m.backward(np.zeros(2))
    with pytest.raises(ValueError, match="projection of width"):
        AdaptiveLogSoftmaxWithLoss(4, 20, [2, 5, 10], div_value=4.0)


# -- the language model with an adaptive softmax ------------------------------------------------------
def adaptive_lm(dtype=np.float64, cell="gru"):
    cfg = ModelConfig(23, cell, embed=5, hidden=8, layers=2, softmax="adaptive", cutoffs=(4, 12), div_value=2.0)
    return CharLM(cfg, dtype=dtype, rng=0)


def test_language_model_loss_is_its_own_log_probabilities():
    lm = adaptive_lm()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 23, (7, 3)), rng.integers(0, 23, (7, 3))
    mask = rng.random((7, 3)) < 0.7
    scores, _ = lm(x, lm.initial_state(3))
    np.testing.assert_allclose(np.exp(scores).sum(-1), 1.0, rtol=1e-12)       # log-probabilities
    logp = np.take_along_axis(scores, y[..., None], -1)[..., 0]
    loss, _ = lm.loss(x, y, lm.initial_state(3), mask)
    assert loss == pytest.approx(-(logp * mask).sum() / mask.sum(), rel=1e-12)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_language_model_gradients_by_finite_differences(cell):
    lm = adaptive_lm(cell=cell)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 23, (5, 2)), rng.integers(0, 23, (5, 2))
    y[0] = [0, 22]

    def J():
        with rnnkit.no_grad():
            return lm.loss(x, y, lm.initial_state(2))[0]

    lm.zero_grad()
    lm.loss(x, y, lm.initial_state(2))
    lm.backward_loss()
    for name, p in lm.named_parameters():
        if name.startswith(("head.", "embed.", "rnn.weight_hh_l1")):
            np.testing.assert_allclose(p.grad, numeric_grad(J, p.data), rtol=1e-6, atol=1e-9, err_msg=name)
    with pytest.raises(RuntimeError, match="trains through loss"):
        lm.backward(np.zeros((5, 2, 23)))


def test_language_model_matches_a_pytorch_twin():
    lm = adaptive_lm()
    emb = torch.nn.Embedding(23, 5, dtype=torch.float64)
    rnn = torch.nn.GRU(5, 8, num_layers=2, dtype=torch.float64)
    head = torch.nn.AdaptiveLogSoftmaxWithLoss(8, 23, [4, 12], div_value=2.0, dtype=torch.float64)
    modules = {"embed": emb, "rnn": rnn, "head": head}
    for name, p in lm.named_parameters():
        owner, key = name.split(".", 1)
        dict(modules[owner].named_parameters())[key].data[...] = torch.tensor(p.data)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 23, (6, 4)), rng.integers(0, 23, (6, 4))
    h, _ = rnn(emb(torch.tensor(x)))
    want = head(h.reshape(-1, 8), torch.tensor(y).reshape(-1))
    want.loss.backward()
    lm.zero_grad()
    loss, _ = lm.loss(x, y, lm.initial_state(4))
    lm.backward_loss()
    assert loss == pytest.approx(want.loss.item(), rel=1e-12)
    for name, p in lm.named_parameters():
        owner, key = name.split(".", 1)
        np.testing.assert_allclose(p.grad, dict(modules[owner].named_parameters())[key].grad.numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


def test_onnx_graph_gives_the_log_probabilities():
    pytest.importorskip("onnxruntime")
    import rnnkit.onnx
    from rnnkit.onnx.runtime import zero_state_feeds
    lm = adaptive_lm(np.float32, cell="lstm")
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(lm))
    x = np.random.default_rng(3).integers(0, 23, (9, 2))
    want, (h, c) = lm(x, lm.initial_state(2))
    logits, h_n, c_n = sess.run(None, {"tokens": x.astype(np.int64), **zero_state_feeds(sess, 2)})
    np.testing.assert_allclose(logits, want, atol=2e-5)
    np.testing.assert_allclose(h_n, h, atol=2e-6)
    np.testing.assert_allclose(np.exp(logits.astype(np.float64)).sum(-1), 1.0, atol=1e-5)


def test_input_grad_is_the_mean_loss_gradient_and_touches_no_parameter():
    m = AdaptiveLogSoftmaxWithLoss(8, 30, [5, 15], div_value=2.0, dtype=np.float64, rng=0)
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((12, 8)), targets(rng, 30, [5, 15], 12)
    m.zero_grad()
    got = m.input_grad(x, t)
    assert all(not p.grad.any() for p in m.parameters())
    m(x, t)
    np.testing.assert_allclose(got, m.backward(np.full(12, -1 / 12)), rtol=1e-14)
    with rnnkit.no_grad():
        numeric = numeric_grad(lambda: m(x, t).loss, x)
    np.testing.assert_allclose(got, numeric, rtol=1e-7, atol=1e-9)
