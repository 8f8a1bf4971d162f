"""Dropout inside the recurrence: ``recurrent_dropout`` and ``zoneout`` on every layer and cell.

Finite differences in float64 with the masks fixed by the rng; the layer against a torch-autograd
transcription of the spec with the same masks (reference_inner.py); cells stepped with the layer's
masks; eval mode's expectation; the same generator state, the same masks; p = 0 is the plain layer;
the engine against the reference at 1 and 2 threads; argument checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import rnnkit
import rnnkit.backend
import rnnkit.engine
from helpers import Case, as_tuple, rel_err
from rnnkit.engine import schedule
from test_gradcheck import check_layer

KINDS = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("gru", {}), ("gru", {"reset_after": False}),
         ("lstm", {}), ("lstm", {"peephole": True}), ("lstm", {"proj_size": 2, "peephole": True})]
KIND_IDS = [m + "".join(f"-{k}={v}" for k, v in kw.items()) for m, kw in KINDS]
NOISE = [dict(recurrent_dropout=0.4), dict(zoneout=0.3), dict(recurrent_dropout=0.3, zoneout=0.4)]
NOISE_IDS = ["rd", "zo", "rd+zo"]

pytestmark = pytest.mark.both_backends      # the engine and the NumPy reference (conftest.py)


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

@pytest.mark.parametrize("noise", NOISE, ids=NOISE_IDS)
@pytest.mark.parametrize("mode,kw", KINDS, ids=KIND_IDS)
def test_gradients_in_training_mode(mode, kw, noise):
    check_layer(case_of(mode, kw, noise, num_layers=2, bidirectional=True, lengths=True, init_state=True,
                        dropout=0.3), seed=4, dropout_train=True)


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
