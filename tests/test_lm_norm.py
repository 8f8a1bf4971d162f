"""The language model's training remedies outside the recurrence: --norm-between, --init, and the
pass-through of the layers' own --layer-norm, --recurrent-dropout and --zoneout.

The model's gradient with a norm between the layers against finite differences; the norms'
parameters and running statistics in the checkpoints, restored by --resume (bit for bit the
uninterrupted run, validation in eval mode included) and by load_model; the configuration's
checks; the layer options reach the layers' constructor only when set, and the tests of the
flags that the layers may lack run once they have them.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import replace

import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.files import read_tensors
from rnnkit.lm.config import TrainConfig
from rnnkit.lm.model import LAYER_FLAGS, CharLM, ModelConfig
from rnnkit.lm.load import load_model
from rnnkit.lm.schema import model_config, model_problems
from test_gradcheck import numeric_grad
from test_lm_cli import SMALL, corpus, metrics, train_losses  # noqa: F401 (corpus: a fixture)


def _has_option(name: str) -> bool:
    return name in inspect.signature(rnnkit.LSTM).parameters


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_charlm_gradient_with_norm_between(norm, cell):
    cfg = ModelConfig(7, cell, embed=3, hidden=4, layers=2, norm_between=norm)
    model = CharLM(cfg, dtype=np.float64, rng=0)
    for n in model.rnn.norms:
        n.weight.data[...] = np.linspace(0.6, 1.4, n.weight.shape[0])
        n.bias.data[...] = np.linspace(-0.3, 0.3, n.bias.shape[0])
        if norm == "batch":
            n.track_running_stats = False        # the probes must not move the statistics
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 7, (5, 3)), rng.integers(0, 7, (5, 3))
    model.zero_grad()
    model.loss(idx, targets)
    model.backward_loss()
    params = dict(model.named_parameters())
    assert {"rnn.norms.0.weight", "rnn.norms.1.bias", "rnn.weight_hh_l1"} <= set(params)
    for name in ("rnn.norms.0.weight", "rnn.norms.0.bias", "rnn.norms.1.weight", "rnn.weight_ih_l0",
                 "rnn.weight_hh_l1", "embed.weight", "head.weight"):
        num = numeric_grad(lambda: model.loss(idx, targets)[0], params[name].data)
        assert np.max(np.abs(params[name].grad - num)) < 1e-7, name
        assert np.abs(num).max() > 1e-5, name


def test_plain_model_unchanged_by_the_new_defaults():
    cfg = ModelConfig(9, "gru", embed=4, hidden=5, layers=2)
    assert cfg.layer_options() == {}
    model = CharLM(cfg, rng=3)
    assert type(model.rnn) is rnnkit.GRU
    assert list(model.state_dict()) == list(CharLM(replace(cfg, init="default"), rng=3).state_dict())


@pytest.mark.parametrize("scheme", ["xavier", "orthogonal", "kaiming"])
def test_init_changes_only_the_recurrent_weights(scheme):
    cfg = ModelConfig(9, "lstm", embed=4, hidden=6, layers=2)
    default, other = CharLM(cfg, rng=3).state_dict(), CharLM(replace(cfg, init=scheme), rng=3).state_dict()
    changed = {k for k in default if not np.array_equal(default[k], other[k])}
    expected = {k for k in default if k.startswith("rnn.weight_hh")}
    if scheme != "orthogonal":
        expected |= {k for k in default if k.startswith("rnn.weight_ih")}
    assert changed == expected


def test_checkpoints_carry_the_norms_and_resume_reproduces_the_run(tmp_path, corpus):
    opts = [str(corpus), *SMALL, "--layers", "2", "--eval-every", "7", "--schedule", "constant",
            "--norm-between", "batch", "--init", "kaiming"]
    assert main(["train", *opts, "--max-steps", "20", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", *opts, "--max-steps", "9", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--resume", "--max-steps", "20", "--out", str(tmp_path / "b")]) == 0
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b")
    val_a = {m["step"]: m["val_bpc"] for m in a if "val_bpc" in m}           # eval mode: running statistics
    val_b = {m["step"]: m["val_bpc"] for m in b if "val_bpc" in m}           # (b also validated at step 9)
    assert sorted(val_a) == [7, 14, 20] and all(val_a[s] == val_b[s] for s in val_a)
    tensors, _ = read_tensors(tmp_path / "b" / "latest.safetensors")
    assert int(tensors["model.rnn.norms.1.num_batches_tracked"]) == 20
    assert tensors["model.rnn.norms.0.running_var"].shape == (24,)
    model, _, _ = load_model(tmp_path / "a", "latest")
    assert not model.training and model.cfg.norm_between == "batch" and model.cfg.init == "kaiming"
    saved, _ = read_tensors(tmp_path / "a" / "latest.safetensors")
    for k, v in model.state_dict().items():
        assert np.array_equal(v, saved["model." + k]), k
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["model"]["norm_between"] == "batch" and config["train"]["init"] == "kaiming"
    assert main(["train", "--resume", "--norm-between", "layer", "--out", str(tmp_path / "b")]) == 2


def test_layer_norm_between_needs_no_running_statistics(tmp_path, corpus):
    assert main(["train", str(corpus), *SMALL, "--layers", "2", "--max-steps", "3", "--norm-between", "layer",
                 "--out", str(tmp_path / "l")]) == 0
    names = set(read_tensors(tmp_path / "l" / "best.safetensors")[0])
    assert {"model.rnn.norms.0.weight", "model.rnn.norms.1.bias"} <= names
    assert not any("running" in n for n in names)


def test_config_checks():
    with pytest.raises(ValueError, match="norm_between must be one of none, batch, layer, got 'group'"):
        ModelConfig(5, norm_between="group")
    with pytest.raises(ValueError, match="init must be one of default, xavier, orthogonal, kaiming, got 'he'"):
        ModelConfig(5, init="he")
    with pytest.raises(ValueError, match=r"--init must be one of default, xavier, orthogonal, kaiming"):
        TrainConfig(init="glorot")
    with pytest.raises(ValueError, match=r"--zoneout must be a finite number in \[0, 1\), got 1.0"):
        TrainConfig(zoneout=1.0)
    with pytest.raises(ValueError, match=r"--recurrent-dropout must be a finite number in \[0, 1\), got -0.1"):
        TrainConfig(recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match=r"--layer-norm must be true or false, got 'yes'"):
        TrainConfig(layer_norm="yes")
    old = {"vocab_size": 5, "cell": "gru", "embed": 4, "hidden": 8, "layers": 1, "dropout": 0.0, "peephole": False}
    assert model_problems(old) == []                          # a run directory from before the options
    cfg = model_config(old)
    assert (cfg.norm_between, cfg.init, cfg.layer_norm, cfg.zoneout) == ("none", "default", False, 0.0)
    assert model_problems({**old, "norm_between": "instance", "zoneout": 2}) == [
        "model.norm_between must be one of none, batch, layer, got 'instance'",
        "model.zoneout must be a finite number in [0, 1), got 2"]


@pytest.mark.parametrize("flag,value", [("layer_norm", True), ("recurrent_dropout", 0.25), ("zoneout", 0.1)])
def test_layer_flags_fail_loudly_without_the_layer_option(flag, value):
    if _has_option(flag):
        pytest.skip(f"the layers have {flag}: test_layer_flags_reach_the_layers covers it")
    with pytest.raises(ValueError, match=f"needs recurrent layers with the {flag} option"):
        ModelConfig(5, **{flag: value})
    with pytest.raises(ValueError, match="needs recurrent layers with the"):
        TrainConfig(**{flag: value})


@pytest.mark.parametrize("norm_between", ["none", "layer"])
@pytest.mark.parametrize("flag,value", [("layer_norm", True), ("recurrent_dropout", 0.25), ("zoneout", 0.1)])
def test_layer_flags_reach_the_layers(flag, value, norm_between):
    if not _has_option(flag):
        pytest.skip(f"rnnkit.LSTM has no {flag} argument yet")
    cfg = ModelConfig(6, "lstm", embed=3, hidden=4, layers=2, norm_between=norm_between, **{flag: value})
    assert cfg.layer_options() == {flag: value}
    model = CharLM(cfg, rng=0)
    layers = model.rnn.layers if norm_between != "none" else [model.rnn]
    assert all(getattr(layer, flag) == value for layer in layers)
    others = {f: off for f, off in LAYER_FLAGS.items() if f != flag}
    assert all(getattr(layer, f, off) == off for layer in layers for f, off in others.items())


def test_cli_passes_the_layer_flags(tmp_path, corpus, capsys):
    for flag, arg in [("layer_norm", ["--layer-norm"]), ("recurrent_dropout", ["--recurrent-dropout", "0.2"]),
                      ("zoneout", ["--zoneout", "0.1"])]:
        run = tmp_path / flag
        code = main(["train", str(corpus), *SMALL, "--max-steps", "2", *arg, "--out", str(run)])
        err = capsys.readouterr().err
        if _has_option(flag):
            assert code == 0, err
            value = json.loads((run / "config.json").read_text())["model"][flag]
            assert value == (True if flag == "layer_norm" else float(arg[1]))
        else:
            assert code == 2 and f"{arg[0]} needs recurrent layers with the {flag} option" in err


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_language_model_with_norms_to_torch_and_back(norm, cell):
    torch = pytest.importorskip("torch")
    import rnnkit.torch as rt
    lm = CharLM(ModelConfig(11, cell, embed=4, hidden=6, layers=3, dropout=0.1, norm_between=norm), rng=0)
    rng = np.random.default_rng(0)
    for _ in range(3):                                        # running statistics away from 0 and 1
        lm.loss(rng.integers(0, 11, (7, 3)), rng.integers(0, 11, (7, 3)))
    lm.eval()
    theirs = rt.to_torch(lm)
    assert {"rnn.layers.2.weight_hh_l0", "rnn.norms.0.weight"} <= set(theirs.state_dict())
    tokens = rng.integers(0, 11, (7, 3))
    state0 = tuple(rng.standard_normal(s).astype(np.float32) for s in lm.rnn.state_shapes(3))
    state0 = state0 if cell == "lstm" else state0[0]
    with rnnkit.no_grad():
        logits, state = lm(tokens, state0)
    with torch.no_grad():
        t_state0 = tuple(map(torch.from_numpy, state0)) if cell == "lstm" else torch.from_numpy(state0)
        t_logits, t_state = theirs(torch.from_numpy(tokens), t_state0)
    np.testing.assert_allclose(t_logits.numpy(), logits, atol=2e-5)
    for a, b in zip(t_state if cell == "lstm" else (t_state,), state if cell == "lstm" else (state,)):
        np.testing.assert_allclose(a.numpy(), b, atol=2e-5)
    back = rt.from_torch(theirs)
    assert back.cfg == lm.cfg and not back.training
    assert list(back.state_dict()) == list(lm.state_dict())
    for name, a in lm.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], a)


@pytest.mark.parametrize("norm,cell,lengths", [("batch", "lstm", False), ("layer", "gru", True),
                                               ("batch", "gru", True), ("layer", "lstm", False)])
def test_language_model_with_norms_exports_to_onnx(norm, cell, lengths):
    pytest.importorskip("onnxruntime")
    import rnnkit.onnx
    lm = CharLM(ModelConfig(13, cell, embed=5, hidden=8, layers=3, norm_between=norm), rng=0)
    rng = np.random.default_rng(1)
    for _ in range(3):
        lm.loss(rng.integers(0, 13, (6, 4)), rng.integers(0, 13, (6, 4)))
    lm.eval()
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(lm, lengths=lengths))
    tokens = rng.integers(0, 13, (9, 3))
    lens = np.array([9, 4, 6]) if lengths else None
    state0 = tuple(rng.standard_normal(s).astype(np.float32) for s in lm.rnn.state_shapes(3))
    with rnnkit.no_grad():
        logits, state = lm(tokens, state0 if cell == "lstm" else state0[0], lengths=lens)
    feeds = {"tokens": tokens, **{f"{n}0": s for n, s in zip("hc", state0)}}
    got = sess.run(None, feeds | ({"lengths": lens} if lengths else {}))
    expected = (logits, *(state if cell == "lstm" else (state,)))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_config_json_sections_must_agree_on_the_remedies(tmp_path, corpus):
    from rnnkit.lm.schema import config_problems
    assert main(["train", str(corpus), *SMALL, "--max-steps", "1", "--norm-between", "layer", "--out",
                 str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config_problems(data) == []
    data["train"]["norm_between"] = "batch"
    assert config_problems(data) == ["model.norm_between = 'layer' but train.norm_between = 'batch' (they must agree)"]
