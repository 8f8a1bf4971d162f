"""Optimizers, clipping and schedules against torch.optim over several steps; exact resume."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit.engine
from rnnkit.module import Parameter
from rnnkit.optim import SGD, Adagrad, Adam, AdamW, RMSprop, Schedule, clip_grad_norm_, clip_grad_value_
from helpers import rel_err

torch = pytest.importorskip("torch")

CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.05)),
]


def grads_for(step: int, shapes):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("ours,theirs,kw", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_optimizer_matches_torch_over_steps(ours, theirs, kw):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = [Parameter(a.copy()) for a in init]
    tparams = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, topt = ours(params, **kw), theirs(tparams, **kw)
    for step in range(6):
        for p, tp, g in zip(params, tparams, grads_for(step, [a.shape for a in init])):
            p.grad[...] = g
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        assert rel_err(p.data, tp.detach().numpy()) < 1e-13


@pytest.mark.parametrize("ours,theirs,kw", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_state_dict_resumes_exactly(ours, theirs, kw):
    shapes = [(3, 4), (5,)]
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in shapes]

    def run(steps, opt, params):
        for step in steps:
            for p, g in zip(params, grads_for(step, shapes)):
                p.grad[...] = g
            opt.step()

    straight = [Parameter(a.copy()) for a in init]
    run(range(6), ours(straight, **kw), straight)
    first = [Parameter(a.copy()) for a in init]
    opt = ours(first, **kw)
    run(range(3), opt, first)
    saved = opt.state_dict()
    second = [Parameter(p.data.copy()) for p in first]
    opt2 = ours(second, **kw)
    opt2.load_state_dict(saved)
    run(range(3, 6), opt2, second)
    for a, b in zip(straight, second):
        np.testing.assert_array_equal(a.data, b.data)


def test_load_state_dict_rejects_other_shapes():
    opt = Adam([Parameter(np.zeros(3))])
    other = Adam([Parameter(np.zeros(4))]).state_dict()
    with pytest.raises(ValueError, match="do not match"):
        opt.load_state_dict(other)


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="lr must be a finite number >= 0, got -1"):
        SGD([Parameter(np.zeros(2))], lr=-1)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="nesterov requires momentum > 0"):
        SGD([Parameter(np.zeros(2))], nesterov=True)


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(0)
    gs = [rng.standard_normal((4, 3)) * 3, rng.standard_normal(7)]
    params = [Parameter(np.zeros_like(g)) for g in gs]
    for p, g in zip(params, gs):
        p.grad[...] = g
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for tp, g in zip(tps, gs):
        tp.grad = torch.from_numpy(g.copy())
    norm = clip_grad_norm_(params, 1.5)
    t_norm = torch.nn.utils.clip_grad_norm_(tps, 1.5)
    assert abs(norm - t_norm.item()) < 1e-12
    for p, tp in zip(params, tps):
        assert rel_err(p.grad, tp.grad.numpy()) < 1e-14
    assert clip_grad_norm_(params, 100.0) == pytest.approx(1.5, rel=1e-6)   # below max: untouched


def test_clip_grad_value():
    p = Parameter(np.zeros(4))
    p.grad[...] = [-3.0, -0.5, 0.5, 3.0]
    clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.5, 1.0])


def test_schedules():
    assert [Schedule("constant", warmup=4).factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    step = Schedule("step", step_size=2, gamma=0.1)
    assert [round(step.factor(s), 12) for s in range(5)] == [1.0, 1.0, 0.1, 0.1, 0.01]
    cos = Schedule("cosine", warmup=2, total=10, min_factor=0.1)
    assert cos.factor(2) == pytest.approx(1.0) and cos.factor(7) == pytest.approx(0.55)
    assert cos.factor(12) == pytest.approx(0.1) and cos.factor(50) == pytest.approx(0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), T_max=10, eta_min=0.1)
    ours = Schedule("cosine", total=10, min_factor=0.1)
    for s in range(10):
        assert ours.factor(s) == pytest.approx(sched.get_last_lr()[0], rel=1e-12)
        sched.optimizer.step()
        sched.step()
    with pytest.raises(ValueError, match="schedule kind must be"):
        Schedule("linear")


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_fused_adam_equals_numpy_adam(cls, monkeypatch):
    """The engine's one-pass update (rnnkit.engine.optim) against the NumPy equations, 5 steps."""
    def run(enabled: bool) -> list:
        monkeypatch.setattr(rnnkit.engine, "enabled", lambda: enabled)
        rng = np.random.default_rng(0)
        params = [Parameter(rng.standard_normal(s)) for s in ((7, 3), (11,))]
        opt = cls(params, lr=1e-2, weight_decay=0.1)
        for _ in range(5):
            for p in params:
                p.grad[...] = rng.standard_normal(p.shape)
            opt.step()
        return [p.data.copy() for p in params] + [a.copy() for st in opt.state for a in st.values()]
    for fused, plain in zip(run(True), run(False)):
        np.testing.assert_allclose(fused, plain, rtol=1e-13, atol=1e-15)
