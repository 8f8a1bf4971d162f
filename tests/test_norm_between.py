"""Normalisation between stacked recurrent layers (rnnkit.norm.between).

Float64 finite differences of the whole NormedStack (input, initial state, every parameter; batch
norm with its batch statistics in training and its running ones in eval, layer norm; with and
without lengths); PyTorch 2.13 parity against a stack written here from torch's own modules
(nn.LSTM/GRU of one layer each, nn.BatchNorm1d over (B, F, T), nn.LayerNorm): outputs, final
states, every gradient, the running statistics and num_batches_tracked after several steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import rel_err
import rnnkit
from rnnkit.norm.between import NormedStack, SequenceBatchNorm, SequenceLayerNorm, sequence_norm, stack_name
from test_gradcheck import numeric_grad

CASES = [("lstm", "batch", False), ("gru", "layer", True), ("rnn", "batch", True), ("lstm", "layer", False)]


def _loss_fn(stack, x, state, lengths, w_out, w_state):
    def loss():
        y, final = stack(x, state, lengths=lengths)
        parts = final if isinstance(final, tuple) else (final,)
        return float((y * w_out).sum() + sum((p * w).sum() for p, w in zip(parts, w_state)))
    return loss


def _state(stack, B, rng):
    parts = tuple(rng.standard_normal(s) * 0.5 for s in stack.state_shapes(B))
    return parts if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("cell,norm,bidirectional", CASES)
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_normed_stack_gradients_match_finite_differences(cell, norm, bidirectional, with_lengths, training):
    rng = np.random.default_rng(1)
    T, B, I, H = 5, 3, 3, 4
    stack = NormedStack(cell, I, H, num_layers=2, norm=norm, bidirectional=bidirectional, dtype=np.float64, rng=2)
    for name, p in stack.named_parameters():
        if name.startswith("norms."):                # away from γ = 1, β = 0: every path counts
            p.data[...] = rng.uniform(0.5, 1.5, p.shape) if name.endswith("weight") else rng.normal(0, 0.3, p.shape)
    if not training:
        for n in stack.norms:
            if isinstance(n, SequenceBatchNorm):
                n.running_mean[...] = rng.normal(0, 0.2, n.running_mean.shape)
                n.running_var[...] = rng.uniform(0.5, 2, n.running_var.shape)
        stack.eval()
    else:                                          # no running-statistic updates between the probes
        for n in stack.norms:
            n.track_running_stats = False
    x = rng.standard_normal((T, B, I))
    state = _state(stack, B, rng)
    lengths = np.array([5, 2, 4]) if with_lengths else None
    y, final = stack(x, state, lengths=lengths)
    w_out = rng.standard_normal(y.shape)
    finals = final if isinstance(final, tuple) else (final,)
    w_state = [rng.standard_normal(f.shape) for f in finals]
    stack.zero_grad()
    stack(x, state, lengths=lengths)
    dx, dstate = stack.backward(w_out, final.__class__(w_state) if isinstance(final, tuple) else w_state[0])
    loss = _loss_fn(stack, x, state, lengths, w_out, w_state)
    assert np.max(np.abs(dx - numeric_grad(loss, x))) < 1e-6
    dparts = dstate if isinstance(dstate, tuple) else (dstate,)
    sparts = state if isinstance(state, tuple) else (state,)
    for d, s in zip(dparts, sparts):
        assert np.max(np.abs(d - numeric_grad(loss, s))) < 1e-6
    for name, p in stack.named_parameters():
        num = numeric_grad(loss, p.data)
        assert np.max(np.abs(p.grad - num)) < 1e-6, name
        assert np.abs(num).max() > 1e-4, f"{name}: the loss must depend on it for the check to mean anything"


def test_padded_positions_are_zero_and_never_read():
    rng = np.random.default_rng(0)
    for norm in ("batch", "layer"):
        stack = NormedStack("gru", 2, 3, 2, norm, dtype=np.float64, rng=0)
        x = rng.standard_normal((6, 2, 2))
        lengths = np.array([6, 3])
        y, h = stack(x, lengths=lengths)
        x2 = x.copy()
        x2[3:, 1] = 1e6                                 # padding: any value
        y2, h2 = stack(x2, lengths=lengths)
        assert np.all(y[3:, 1] == 0) and np.allclose(y, y2) and np.allclose(h, h2)


def test_batch_norm_statistics_over_valid_positions():
    """SequenceBatchNorm with lengths == BatchNorm1d of the gathered valid (M, F) rows."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 4, 5)) * 3 + 1
    lengths = np.array([7, 2, 5, 1])
    valid = np.arange(7)[:, None] < lengths
    seq = SequenceBatchNorm(5, momentum=0.2, dtype=np.float64)
    flat = SequenceBatchNorm.__mro__[1](5, momentum=0.2, dtype=np.float64)
    y = seq(x, lengths)
    assert np.allclose(y[valid], flat(x[valid]))
    assert np.allclose(seq.running_mean, flat.running_mean) and np.allclose(seq.running_var, flat.running_var)
    assert int(seq.num_batches_tracked) == 1


def test_recurrent_parameters_carry_the_plain_stacks_names():
    plain = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    stack = NormedStack("lstm", 3, 4, 2, "batch", bidirectional=True, dtype=np.float64, rng=1)
    names = list(stack.state_dict())
    assert names[:len(plain.state_dict())] == list(plain.state_dict())
    assert names[len(plain.state_dict()):] == [f"norms.{k}.{n}" for k in range(2) for n in
                                              ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    stack.load_state_dict({**stack.state_dict(), **plain.state_dict()})
    assert [n for n, _ in stack.named_parameters()] == [n for n in names if "running" not in n and "tracked" not in n]
    assert np.array_equal(stack.state_dict()["weight_hh_l1_reverse"], plain.state_dict()["weight_hh_l1_reverse"])


def test_sequence_norm_errors():
    with pytest.raises(ValueError, match="norm must be one of none, batch, layer, got 'group'"):
        sequence_norm("group", 4)
    with pytest.raises(ValueError, match=r"x must be a time-major sequence \(T, B, 4\), got shape \(3, 5\)"):
        SequenceLayerNorm(4)(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"NormedStack: norm must be \"batch\" or \"layer\""):
        NormedStack("lstm", 2, 3, norm="none")
    stack = NormedStack("lstm", 2, 3, 2, "layer")
    with pytest.raises(ValueError, match=r"state\[0\] must have shape \(2, 4, 3\)"):
        stack(np.zeros((5, 4, 2)), (np.zeros((1, 4, 3)), np.zeros((2, 4, 3))))
    stack(np.zeros((5, 4, 2)))
    with pytest.raises(ValueError, match=r"NormedStack.backward: dout must be a time-major sequence \(T, B, 3\)"):
        stack.backward(np.zeros((5, 4)))


# -- PyTorch ----------------------------------------------------------------------------------

def _torch_stack(torch, stack: NormedStack, tdtype):
    """The same computation from torch's own modules, written here (not rnnkit.torch's twin)."""
    title = stack.kind.title
    layers = [getattr(torch.nn, title)(layer.input_size, stack.hidden_size, bidirectional=stack.bidirectional,
                                        dtype=tdtype) for layer in stack.layers]
    F = stack.output_size
    norms = [torch.nn.BatchNorm1d(F, dtype=tdtype) if stack.norm == "batch" else torch.nn.LayerNorm(F, dtype=tdtype)
             for _ in stack.layers]
    for k, (tl, tn) in enumerate(zip(layers, norms)):
        sd = stack.state_dict()
        tl.load_state_dict({n: torch.from_numpy(sd[stack_name(f"layers.{k}.{n}")]) for n in tl.state_dict()})
        tn.load_state_dict({n: torch.from_numpy(np.array(sd[f"norms.{k}.{n}"])) for n in tn.state_dict()})

    def forward(x, state):
        D = stack.num_directions
        h, finals = x, []
        for k, (tl, tn) in enumerate(zip(layers, norms)):
            s = tuple(p[k * D:(k + 1) * D] for p in state)
            h, f = tl(h, s if len(s) > 1 else s[0])
            h = tn(h.permute(1, 2, 0)).permute(2, 0, 1) if stack.norm == "batch" else tn(h)
            finals.append(f if isinstance(f, tuple) else (f,))
        return h, tuple(torch.cat(p) for p in zip(*finals))
    return layers, norms, forward


@pytest.mark.parametrize("cell,norm,bidirectional", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-4)], ids=["f64", "f32"])
def test_normed_stack_matches_torch(cell, norm, bidirectional, dtype, tol):
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, np.dtype(dtype).name)
    rng = np.random.default_rng(5)
    T, B, I, H = 6, 4, 3, 5
    stack = NormedStack(cell, I, H, num_layers=3, norm=norm, bidirectional=bidirectional, dtype=dtype, rng=1)
    layers, norms, forward = _torch_stack(torch, stack, tdtype)
    for step, training in enumerate([True, True, True, False]):
        stack.train(training)
        for m in [*layers, *norms]:
            m.train(training)
        x = rng.standard_normal((T, B, I)).astype(dtype)
        state = tuple(rng.standard_normal(s).astype(dtype) for s in stack.state_shapes(B))
        stack.zero_grad()
        y, final = stack(x, state if len(state) > 1 else state[0])
        finals = final if isinstance(final, tuple) else (final,)
        xt = torch.tensor(x, requires_grad=True)
        st = tuple(torch.tensor(s, requires_grad=True) for s in state)
        for m in [*layers, *norms]:
            m.zero_grad()
        ty, tfinals = forward(xt, st)
        assert rel_err(y, ty.detach().numpy()) < tol, f"step {step} output"
        for f, tf in zip(finals, tfinals):
            assert rel_err(f, tf.detach().numpy()) < tol, f"step {step} final state"
        w = rng.standard_normal(y.shape).astype(dtype)
        ws = [rng.standard_normal(f.shape).astype(dtype) for f in finals]
        ((ty * torch.from_numpy(w)).sum() + sum((tf * torch.from_numpy(v)).sum() for tf, v in zip(tfinals, ws))).backward()
        dx, dstate = stack.backward(w, tuple(ws) if len(ws) > 1 else ws[0])
        assert rel_err(dx, xt.grad.numpy()) < tol, f"step {step} dx"
        for d, s in zip(dstate if isinstance(dstate, tuple) else (dstate,), st):
            assert rel_err(d, s.grad.numpy()) < tol, f"step {step} dstate"
        theirs = {stack_name(f"layers.{k}.{n}"): p for k, m in enumerate(layers) for n, p in m.named_parameters()}
        theirs |= {f"norms.{k}.{n}": p for k, m in enumerate(norms) for n, p in m.named_parameters()}
        ours = dict(stack.named_parameters())
        assert set(ours) == set(theirs)
        for name, p in ours.items():
            assert rel_err(p.grad, theirs[name].grad.numpy()) < tol, f"step {step} {name}.grad"
        sd = stack.state_dict()
        for k, tn in enumerate(norms):
            for n, b in tn.named_buffers():
                assert np.allclose(sd[f"norms.{k}.{n}"], b.numpy(), rtol=tol, atol=tol), f"step {step} {n}"
    if norm == "batch":
        assert int(stack.norms[0].num_batches_tracked) == 3
