"""rnnkit.torch: layers, cells and language models to PyTorch and back; checkpoints in PyTorch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.torch as rt
from helpers import Case, doc_block
from rnnkit.cli import main
from rnnkit.lm.load import load_model
from rnnkit.lm.model import CharLM, ModelConfig

torch = pytest.importorskip("torch")

CASES = [
    Case("lstm", num_layers=2, bidirectional=True, proj_size=2, batch_first=True, dropout=0.25),
    Case("gru", num_layers=3, bias=False),
    Case("rnn", nonlinearity="relu", bidirectional=True),
    Case("lstm"),
]


def flat(obj) -> list[np.ndarray]:
    """Nested tuples of tensors or arrays (out, (h, c)) as a flat list of arrays."""
    if isinstance(obj, (tuple, list)):
        return [a for part in obj for a in flat(part)]
    return [obj.detach().numpy() if isinstance(obj, torch.Tensor) else obj]


def torch_out(module, x) -> list[np.ndarray]:
    with torch.no_grad():
        return flat(module(torch.from_numpy(x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.mode)
def test_layers_both_ways(case, dtype):
    ours = case.make(dtype, seed=4)
    theirs = rt.to_torch(ours)
    assert type(theirs) is getattr(torch.nn, case.mode.upper()) and theirs.training == ours.training
    assert next(theirs.parameters()).dtype == getattr(torch, np.dtype(dtype).name)
    assert (theirs.batch_first, theirs.bidirectional, theirs.num_layers, theirs.dropout) == \
        (case.batch_first, case.bidirectional, case.num_layers, case.dropout)
    x = np.random.default_rng(0).standard_normal(
        (case.B, case.T, case.I) if case.batch_first else (case.T, case.B, case.I)).astype(dtype)
    with rnnkit.no_grad():
        expected = flat(ours(x))
    got = torch_out(theirs, x)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6 if dtype == np.float32 else 1e-13)
    back = rt.from_torch(theirs)
    assert repr(back) == repr(ours) and back.training == ours.training
    for name, a in ours.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], a)


@pytest.mark.parametrize("make", [lambda: rnnkit.LSTMCell(3, 4, rng=0), lambda: rnnkit.GRUCell(3, 4, bias=False, rng=0),
                                  lambda: rnnkit.RNNCell(3, 4, nonlinearity="relu", rng=0)], ids=["lstm", "gru", "rnn"])
def test_cells_both_ways(make):
    ours = make()
    theirs = rt.to_torch(ours)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    with rnnkit.no_grad():
        expected = flat(ours(x))
    for a, b in zip(torch_out(theirs, x), expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    back = rt.from_torch(theirs)
    assert type(back) is type(ours) and repr(back.state_dict().keys()) == repr(ours.state_dict().keys())
    for name, a in ours.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], a)


def test_language_model_both_ways():
    lm = CharLM(ModelConfig(11, "lstm", embed=4, hidden=6, layers=2, dropout=0.1), rng=0).eval()
    theirs = rt.to_torch(lm)
    tokens = np.random.default_rng(0).integers(0, 11, (7, 3))
    with rnnkit.no_grad():
        logits, state = lm(tokens)
    with torch.no_grad():
        t_logits, t_state = theirs(torch.from_numpy(tokens))
    np.testing.assert_allclose(t_logits.numpy(), logits, atol=1e-6)
    np.testing.assert_allclose(t_state[1].numpy(), state[1], atol=1e-6)
    back = rt.from_torch(theirs)
    assert back.cfg == lm.cfg and not back.training
    for name, a in lm.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], a)


def test_errors_say_why():
    with pytest.raises(ValueError, match="peephole connections .* PyTorch's nn.LSTM has none"):
        rt.to_torch(rnnkit.LSTM(2, 3, peephole=True))
    with pytest.raises(ValueError, match=re.escape("Cho's original GRU (reset_after=False")):
        rt.to_torch(rnnkit.GRUCell(2, 3, reset_after=False))
    with pytest.raises(ValueError, match="peephole"):
        rt.to_torch(CharLM(ModelConfig(5, "lstm", 2, 3, 1, peephole=True)))
    with pytest.raises(TypeError, match="cannot convert a Linear; supported: RNN, LSTM, GRU, RNNCell"):
        rt.to_torch(rnnkit.linear.Linear(2, 3))
    with pytest.raises(TypeError, match="expected a torch.nn.Module, got LSTM"):
        rt.from_torch(rnnkit.LSTM(2, 3))
    with pytest.raises(TypeError, match="cannot convert a Conv2d"):
        rt.from_torch(torch.nn.Conv2d(2, 3, 1))
    with pytest.raises(TypeError, match=re.escape("float32 or float64; this LSTM has parameters of dtype ['torch.float16']")):
        rt.from_torch(torch.nn.LSTM(2, 3, dtype=torch.float16))


def test_torch_is_imported_only_inside_rnnkit_torch():
    import subprocess
    import sys
    code = ("import sys; import rnnkit, rnnkit.torch, rnnkit.onnx, rnnkit.cli\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    (tmp / "t.txt").write_text("hello world, hello rnnkit.\n" * 60, encoding="utf-8")
    run = tmp / "run"
    assert main(["train", str(tmp / "t.txt"), "--hidden", "12", "--embed", "4", "--batch-size", "4", "--seq-len", "8",
                 "--max-steps", "3", "--sample-chars", "0", "--out", str(run)]) == 0
    return run


def test_run_directory_to_torch(run_dir):
    lm, _, _ = load_model(run_dir)
    theirs = rt.to_torch(run_dir)
    tokens = np.array([[1], [2], [3]])
    with rnnkit.no_grad():
        logits, _ = lm(tokens)
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(tokens))[0].numpy(), logits, atol=1e-6)


def test_docs_checkpoint_loads_in_pytorch(run_dir):
    """docs/deploy.md's example: an rnnkit checkpoint read by safetensors.torch under PyTorch's names."""
    code = doc_block("docs/deploy.md", "safetensors-in-torch").replace('"runs/charlm"', repr(str(run_dir)))
    scope: dict = {}
    exec(compile(code, "docs/deploy.md", "exec"), scope)
    lm, _, _ = load_model(run_dir)
    with rnnkit.no_grad():
        logits, _ = lm(np.array([[5], [7], [2]]))
    np.testing.assert_allclose(scope["logits"].detach().numpy(), logits, atol=1e-6)


def test_docs_deploy_recipe(tmp_path, monkeypatch):
    """docs/deploy.md's recipe: export, run in onnxruntime, to and from torch."""
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(doc_block("docs/deploy.md", "deploy-recipe"), "docs/deploy.md", "exec"), scope)
    lstm, x, lengths = scope["lstm"], scope["x"], scope["lengths"]
    with rnnkit.no_grad():
        out, state = lstm(x, lengths=lengths)
        more, _ = lstm(x, state, lengths=lengths)
    np.testing.assert_allclose(scope["out"], out, atol=1e-6)
    np.testing.assert_allclose(scope["more"][0], more, atol=1e-6)
    for name in ("same", "back"):
        assert repr(scope[name]) == repr(lstm)
        np.testing.assert_array_equal(scope[name].state_dict()["weight_hh_l0_reverse"], lstm.weight_hh_l0_reverse.data
                                      if hasattr(lstm, "weight_hh_l0_reverse") else lstm.state_dict()["weight_hh_l0_reverse"])
    assert isinstance(scope["torch_lstm"], torch.nn.LSTM)
