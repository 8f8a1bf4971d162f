"""The compiled loops: when they are chosen, that they equal the NumPy loops, and how to turn them off."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
import rnnkit.compiled
from rnnkit.kernels.base import Weights
from rnnkit.kernels.gru import GRUKernel
from rnnkit.kernels.lstm import LSTMKernel
from rnnkit.kernels.rnn import RNNKernel

LAYERS = [
    (rnnkit.LSTM, {}), (rnnkit.LSTM, {"peephole": True}), (rnnkit.GRU, {}), (rnnkit.GRU, {"reset_after": False}),
    (rnnkit.RNN, {}), (rnnkit.RNN, {"nonlinearity": "relu"}),
]


def run(layer_cls, kw, limit, monkeypatch, dtype):
    """Forward + backward of a 2-layer bidirectional layer with lengths, under one loop choice."""
    monkeypatch.setattr(rnnkit.compiled, "MAX_STEP_MACS", limit)
    rng = np.random.default_rng(5)
    layer = layer_cls(6, 5, num_layers=2, bidirectional=True, dtype=dtype, rng=1, **kw)
    x = rng.standard_normal((9, 4, 6))
    out, state = layer(x, lengths=[9, 2, 7, 5])
    dstate = tuple(rng.standard_normal(s.shape) for s in (state if isinstance(state, tuple) else (state,)))
    dx, _ = layer.backward(rng.standard_normal(out.shape), dstate if len(dstate) > 1 else dstate[0])
    return [out, dx] + [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("layer_cls,kw", LAYERS, ids=[f"{c.__name__}-{k}" for c, k in LAYERS])
def test_compiled_equals_numpy(layer_cls, kw, monkeypatch):
    compiled = run(layer_cls, kw, 1 << 62, monkeypatch, np.float64)
    numpy = run(layer_cls, kw, -1, monkeypatch, np.float64)
    for a, b in zip(compiled, numpy):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def weights(gates: int, hidden: int, peephole: bool = False) -> Weights:
    z = np.zeros
    peeps = {f"weight_c{g}": z(hidden, np.float32) for g in "ifo"} if peephole else {}
    return Weights(z((gates * hidden, 3), np.float32), z((gates * hidden, hidden), np.float32),
                   z(gates * hidden, np.float32), z(gates * hidden, np.float32), **peeps)


def test_which_loop_by_size(monkeypatch):
    monkeypatch.setattr(rnnkit.compiled, "MAX_STEP_MACS", 1 << 18)
    lstm, w = LSTMKernel(64), weights(4, 64)
    assert lstm.compiled_loops(w, 100, 8) is not None                       # 8 · 256 · 64 = 2^17
    assert lstm.compiled_loops(w, 100, 32) is None                          # 2^19
    assert lstm.compiled_loops(w, 1, 8) is None                             # one step: NumPy
    assert LSTMKernel(64, proj_size=16).compiled_loops(w, 100, 1) is None   # projection: NumPy
    assert GRUKernel(32, reset_after=False).compiled_loops(weights(3, 32), 5, 1) is not None
    assert RNNKernel(512).compiled_loops(weights(1, 512), 5, 1) is not None  # 2^18: still compiled
    assert RNNKernel(512).compiled_loops(weights(1, 512), 5, 2) is None


def test_rnnkit_jit_0_turns_them_off():
    code = ("import numpy as np, rnnkit, rnnkit.compiled as c\n"
            "m = rnnkit.GRU(3, 4, rng=0); y, _ = m(np.ones((5, 2, 3))); m.backward(np.ones_like(y))\n"
            "print(c.enabled(), float(y.sum()))")
    outs = {}
    for flag in ("0", "1"):
        env = dict(os.environ, RNNKIT_JIT=flag)
        outs[flag] = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout.split()
    assert outs["0"][0] == "False" and outs["1"][0] == "True"
    assert float(outs["0"][1]) == pytest.approx(float(outs["1"][1]), rel=1e-6)
