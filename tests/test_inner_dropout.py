"""Dropout inside the recurrence: ``recurrent_dropout`` and ``zoneout`` on every layer and cell.

Finite differences in float64 with the masks fixed by the rng; the layer against a torch-autograd
transcription of the spec with the same masks (reference_inner.py); cells stepped with the layer's
masks; eval mode's expectation; the same generator state, the same masks; p = 0 is the plain layer;
the engine against the reference at 1 and 2 threads; argument checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

import rnnkit
import rnnkit.backend
import rnnkit.kinds
from helpers import CLASSES, Case, as_tuple, rel_err
from test_gradcheck import check_layer
from test_stepwise import check_steps_equal_layer

KINDS = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("gru", {}), ("gru", {"reset_after": False}),
         ("lstm", {}), ("lstm", {"peephole": True}), ("lstm", {"proj_size": 2, "peephole": True})]
KIND_IDS = [m + "".join(f"-{k}={v}" for k, v in kw.items()) for m, kw in KINDS]
NOISE = [dict(recurrent_dropout=0.4), dict(zoneout=0.3), dict(recurrent_dropout=0.3, zoneout=0.4)]
NOISE_IDS = ["rd", "zo", "rd+zo"]

BOTH = pytest.mark.both_backends            # run on the engine and on the NumPy reference (conftest.py)


@dataclass(frozen=True)
class NoisyCase(Case):
    """A test Case with dropout inside the recurrence, in training mode unless ``eval`` says otherwise."""

    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    eval: bool = False

    def layer_kwargs(self) -> dict:
        return {**super().layer_kwargs(), "recurrent_dropout": self.recurrent_dropout, "zoneout": self.zoneout}

    def make(self, dtype=np.float64, seed=0):
        layer = super().make(dtype, seed)
        return layer.eval() if self.eval else layer.train()


def case_of(mode, kw, noise, **extra) -> NoisyCase:
    return NoisyCase(mode, **kw, **noise, **extra)


# -- finite differences, masks fixed by the rng --------------------------------------------------

@BOTH
@pytest.mark.parametrize("noise", NOISE, ids=NOISE_IDS)
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_gradients_in_training_mode(mode, kw, noise):
    check_layer(case_of(mode, kw, noise, num_layers=2, bidirectional=True, lengths=True, init_state=True,
                        dropout=0.3), seed=4, dropout_train=True)


@BOTH
@pytest.mark.parametrize("layout", [dict(unbatched=True), dict(batch_first=True, num_layers=3)],
                         ids=["unbatched", "batch_first"])
@pytest.mark.parametrize("mode,kw", [("lstm", {"proj_size": 2}), ("gru", {})], ids=["lstm-proj", "gru"])
def test_gradients_in_other_layouts(mode, kw, layout):
    check_layer(case_of(mode, kw, dict(recurrent_dropout=0.3, zoneout=0.4), bidirectional=True, init_state=True,
                        **layout), seed=8)


@BOTH
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_gradients_in_eval_mode(mode, kw):
    check_layer(case_of(mode, kw, dict(recurrent_dropout=0.5, zoneout=0.3), eval=True, lengths=True,
                        init_state=True, bidirectional=True), seed=6)


# -- the torch-autograd transcription of the spec ----------------------------------------------

def _rnnkit_run(case: NoisyCase, dtype, seed):
    rng = np.random.default_rng(seed)
    layer = case.make(dtype, seed)
    x, state, lengths = case.inputs(rng)
    state = state if state is not None else case.zero_state()
    out, fin = layer(x, state, lengths=lengths, rng=seed + 100)
    w_out = rng.standard_normal(out.shape)
    w_fin = tuple(rng.standard_normal(s.shape) for s in as_tuple(fin))
    dx, d0 = layer.backward(w_out, w_fin if case.mode == "lstm" else w_fin[0])
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    return layer, (x, state, lengths, w_out, w_fin), (out, as_tuple(fin), dx, as_tuple(d0), grads)


def _torch_run(case: NoisyCase, layer, inputs, seed):
    import torch

    from reference_inner import run_stack
    x, state, lengths, w_out, w_fin = inputs
    dt = torch.float64
    params = {n: torch.tensor(np.asarray(v, np.float64), requires_grad=True) for n, v in layer.state_dict().items()}
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    st = tuple(torch.tensor(np.asarray(s, np.float64), requires_grad=True) for s in as_tuple(state))
    kw = {k: v for k, v in case.layer_kwargs().items() if k in ("peephole", "reset_after", "nonlinearity")}
    out, fin = run_stack(case.mode, params, xt, st, lengths, case.num_layers, case.bidirectional,
                         training=not case.eval, rng=np.random.default_rng(seed + 100),
                         recurrent_dropout=case.recurrent_dropout, zoneout=case.zoneout, dropout=case.dropout, **kw)
    loss = (out * torch.tensor(w_out, dtype=dt)).sum() + sum((f * torch.tensor(w, dtype=dt)).sum()
                                                             for f, w in zip(fin, w_fin))
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in params.items()}
    return out.detach().numpy(), tuple(f.detach().numpy() for f in fin), xt.grad.numpy(), \
        tuple(s.grad.numpy() for s in st), grads


@BOTH
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-11), (np.float32, 2e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("noise", NOISE + [dict(recurrent_dropout=0.4, zoneout=0.3, eval=True)],
                         ids=NOISE_IDS + ["eval"])
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_equals_torch_transcription(mode, kw, noise, dtype, tol):
    pytest.importorskip("torch")
    case = case_of(mode, kw, noise, T=6, B=4, H=5, num_layers=2, bidirectional=True, lengths=True,
                   init_state=True, dropout=0.25)
    layer, inputs, ours = _rnnkit_run(case, dtype, seed=11)
    theirs = _torch_run(case, layer, inputs, seed=11)
    out, fin, dx, d0, grads = ours
    t_out, t_fin, t_dx, t_d0, t_grads = theirs
    assert rel_err(out, t_out) < tol
    for a, b in zip(fin, t_fin):
        assert rel_err(a, b) < tol
    assert rel_err(dx, t_dx) < tol
    for a, b in zip(d0, t_d0):
        assert rel_err(a, b) < tol
    for name, g in grads.items():
        assert rel_err(g, t_grads[name]) < tol, name


# -- the engine against the reference, 1 and 2 threads -------------------------------------------

def _both(case: NoisyCase, dtype, name):
    with rnnkit.backend.use(name):
        _, _, (out, fin, dx, d0, grads) = _rnnkit_run(case, dtype, seed=3)
    return [out, *fin, dx, *d0, *grads.values()]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("noise", NOISE + [dict(zoneout=0.3, eval=True)], ids=NOISE_IDS + ["eval"])
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_engine_equals_reference(mode, kw, noise, dtype, tol, threads):
    case = case_of(mode, kw, noise, T=9, B=11, I=6, H=37, num_layers=2, bidirectional=True, lengths=True,
                   init_state=True)
    fast, reference = _both(case, dtype, "engine"), _both(case, dtype, "numpy")
    for k, (a, b) in enumerate(zip(fast, reference)):
        assert rel_err(a, b) < tol, k


# -- cells stepped with the layer's masks ----------------------------------------------------------

CELL_KINDS = [(m, kw) for m, kw in KINDS if "proj_size" not in kw]


@BOTH
@pytest.mark.parametrize("noise", NOISE + [dict(zoneout=0.3, eval=True)], ids=NOISE_IDS + ["eval"])
@pytest.mark.parametrize("mode,kw", CELL_KINDS, ids=[i for i in KIND_IDS if "proj" not in i])
def test_cell_steps_equal_layer(mode, kw, noise):
    noise = dict(noise)
    evaluate = noise.pop("eval", False)
    layer = CLASSES[mode](4, 5, dtype=np.float64, rng=1, **kw, **noise).train(not evaluate)
    cell = rnnkit.kinds.cell_class(mode)(4, 5, dtype=np.float64, rng=2, **kw, **noise).train(not evaluate)
    check_steps_equal_layer(layer, cell, tol=1e-12, rng=7)


# -- eval mode, the generator, p = 0, checks -------------------------------------------------------

def _layer(mode, kw, seed=1, **noise):
    return CLASSES[mode](3, 6, num_layers=2, bidirectional=True, dtype=np.float64, rng=seed, **kw, **noise)


@BOTH
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_eval_mode_is_deterministic_and_recurrent_dropout_is_the_identity(mode, kw):
    x = np.random.default_rng(0).standard_normal((7, 4, 3))
    plain = _layer(mode, kw).eval()
    noisy = _layer(mode, kw, recurrent_dropout=0.5).eval()
    zoned = _layer(mode, kw, recurrent_dropout=0.5, zoneout=0.3).eval()
    out, _ = noisy(x)
    np.testing.assert_array_equal(out, plain(x)[0])            # recurrent dropout: off in eval mode
    first, second = zoned(x)[0], zoned(x, rng=123)[0]
    np.testing.assert_array_equal(first, second)              # no randomness in eval mode
    assert rel_err(first, out) > 1e-3                          # ... but zoneout's expectation acts


def test_eval_zoneout_is_the_expected_blend_of_one_step():
    """One step from h0: h_1 = p·h0 + (1 − p)·h̃_1, h̃_1 the plain cell's update (and c the same)."""
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4))
    plain = rnnkit.LSTM(3, 4, dtype=np.float64, rng=5).eval()
    zoned = rnnkit.LSTM(3, 4, zoneout=0.25, dtype=np.float64, rng=5).eval()
    _, (h, c) = plain(x, (h0, c0))
    _, (hz, cz) = zoned(x, (h0, c0))
    np.testing.assert_allclose(hz, 0.25 * h0 + 0.75 * h, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cz, 0.25 * c0 + 0.75 * c, rtol=1e-13, atol=1e-15)


@BOTH
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_same_generator_state_gives_the_same_masks(mode, kw):
    x = np.random.default_rng(0).standard_normal((7, 4, 3))
    layer = _layer(mode, kw, recurrent_dropout=0.4, zoneout=0.3).train()
    a, b, c = layer(x, rng=5)[0], layer(x, rng=5)[0], layer(x, rng=6)[0]
    np.testing.assert_array_equal(a, b)
    assert rel_err(a, c) > 1e-3
    layer.rng = np.random.default_rng(5)                       # the layer's own rng: the same draws
    np.testing.assert_array_equal(layer(x)[0], a)


@BOTH
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_zero_probabilities_are_the_plain_layer_exactly(mode, kw):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 4, 3))
    plain = _layer(mode, kw, dropout=0.3).train()
    zero = _layer(mode, kw, dropout=0.3, recurrent_dropout=0.0, zoneout=0.0).train()
    out, fin = plain(x, rng=9)
    out0, fin0 = zero(x, rng=9)                                 # the same dropout masks: nothing else drawn
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(out0, out)
    for a, b in zip(as_tuple(fin0), as_tuple(fin)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(zero.backward(dout)[0], plain.backward(dout)[0])
    for p, q in zip(zero.parameters(), plain.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


@pytest.mark.parametrize("name", ["recurrent_dropout", "zoneout"])
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN, rnnkit.LSTMCell, rnnkit.GRUCell, rnnkit.RNNCell])
def test_probabilities_are_checked(cls, name):
    for bad, error in [(1.0, ValueError), (-0.1, ValueError), (1.5, ValueError), ("0.2", TypeError),
                       (True, TypeError), (None, TypeError)]:
        got = f"{type(bad).__name__} {bad!r}" if error is TypeError else repr(bad)      # the wrong type named
        with pytest.raises(error, match=re.escape(f"{name} must be a finite number in [0, 1), got {got}")):
            cls(3, 4, **{name: bad})
    assert getattr(cls(3, 4, **{name: 0.5}), name) == 0.5


def test_cell_masks_are_checked():
    cell = rnnkit.GRUCell(3, 4, recurrent_dropout=0.5, rng=0)
    x = np.zeros((2, 3), np.float32)
    masks = cell.draw_masks(2, 5)
    with pytest.raises(TypeError, match="masks must be a rnnkit.inner_dropout.Masks"):
        cell(x, masks=masks.recurrent)
    with pytest.raises(ValueError, match=r"masks.recurrent must be of shape \(3, 4\) .* got shape \(2, 4\)"):
        cell(np.zeros((3, 3), np.float32), masks=masks.at(0))
    cell.eval()                                       # eval mode: no recurrent dropout, so no masks
    assert cell.draw_masks(2, 5) is None
    with pytest.raises(ValueError, match="masks.recurrent must be None for this cell in eval mode"):
        cell(x, masks=masks.at(0))


def test_a_cell_call_without_masks_draws_a_step_of_its_own():
    """Training mode, no masks: the call is a sequence of one step and draws from the cell's rng."""
    cell = rnnkit.LSTMCell(3, 4, zoneout=0.5, recurrent_dropout=0.5, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3))
    h, c = cell(x, rng=4)
    h2, c2 = cell(x, masks=cell.draw_masks(2, 1, rng=4).at(0))
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(c, c2)


# -- export ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("noise,dtype", [(dict(recurrent_dropout=0.5, zoneout=0.3), np.float64),
                                         (dict(recurrent_dropout=0.5), np.float32)], ids=["rd+zo-f64", "rd-f32"])
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_onnx_exports_the_eval_mode(mode, kw, noise, dtype):
    """Zoneout as its eval-mode blend (a Scan), recurrent dropout as the plain cell (float32 and no
    projection: ONNX's own recurrent operator)."""
    pytest.importorskip("onnxruntime")
    import rnnkit.onnx
    layer = CLASSES[mode](3, 6, num_layers=2, bidirectional=True, dtype=dtype, rng=1, **kw, **noise).eval()
    model = rnnkit.onnx.to_model(layer, lengths=True)
    sess = rnnkit.onnx.session(model, threads=1)
    rng = np.random.default_rng(4)
    x, lengths = rng.standard_normal((6, 3, 3)).astype(dtype), np.array([6, 2, 4])
    feeds = {"input": x, **rnnkit.onnx.zero_state_feeds(sess, 3), "lengths": lengths}
    got = sess.run(None, feeds)
    with rnnkit.no_grad():
        out, fin = layer(x, lengths=lengths)
    for a, b in zip(got, (out, *as_tuple(fin))):
        assert rel_err(a, b) < (1e-12 if dtype == np.float64 else 1e-5)
    ops = {n.op_type for n in model.graph.node}
    assert ("Scan" in ops) == ("zoneout" in noise or "proj_size" in kw or dtype == np.float64)


def test_torch_refuses_zoneout_and_recurrent_dropout_in_training_mode():
    torch = pytest.importorskip("torch")
    import rnnkit.torch as rt
    with pytest.raises(ValueError, match=r"has zoneout .* PyTorch's nn.GRU lacks"):
        rt.to_torch(rnnkit.GRU(2, 3, zoneout=0.1).eval())
    with pytest.raises(ValueError, match=r"has recurrent_dropout .* call .eval\(\) before converting"):
        rt.to_torch(rnnkit.LSTMCell(2, 3, recurrent_dropout=0.1))
    layer = rnnkit.LSTM(2, 3, num_layers=2, recurrent_dropout=0.3, dtype=np.float64, rng=0).eval()
    t = rt.to_torch(layer)                                      # eval mode: the plain layer, which torch has
    assert isinstance(t, torch.nn.LSTM) and not t.training
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    with torch.no_grad():
        expected = t(torch.from_numpy(x))[0].numpy()
    assert rel_err(layer(x)[0], expected) < 1e-12
