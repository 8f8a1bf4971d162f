"""Gradient flow, long-range tasks and the inspect page (the page in a real headless browser)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.diagnostics.gradflow import InitOptions, gradient_flow, jacobian_norms, make_layer
from rnnkit.diagnostics.inspect import text_features
from rnnkit.diagnostics.stepping import layer_cells, run_forward, state_gradients
from rnnkit.diagnostics.tasks import adding_batch, baseline, copy_batch, run_task
from helpers import chromium, rel_err


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_gradients_equal_layer_backward_from_that_state(cell):
    """dL/dh_t from stepping = dL/d(initial state) of the layer run from h_t over the rest."""
    rng = np.random.default_rng(0)
    layer = make_layer(cell, 3, 5, InitOptions(), rng)
    x = rng.standard_normal((8, 2, 3))
    u = rng.standard_normal((2, 5))
    cells = layer_cells(layer)
    trace = run_forward(cells, x)
    grads = state_gradients(cells, trace, u)
    for t in (2, 5):
        state = trace.states[t][0]
        out, _ = layer(x[t + 1:], tuple(s[None] for s in state) if cell == "lstm" else state[None])
        dout = np.zeros_like(out)
        dout[-1] = u
        _, ds0 = layer.backward(dout)
        for a, b in zip(grads[t][0], ds0 if cell == "lstm" else (ds0,)):
            assert rel_err(a, b[0]) < 1e-12


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_jacobian_norm_matches_finite_differences(cell):
    rng = np.random.default_rng(1)
    layer = make_layer(cell, 3, 4, InitOptions(), rng)
    x = rng.standard_normal((3, 1, 3))
    cells = layer_cells(layer)
    trace = run_forward(cells, x)
    norms = jacobian_norms(cells[0], x, trace)
    prev = trace.states[1][0]
    parts = prev if isinstance(prev, tuple) else (prev,)
    J = np.zeros((4, 4))
    for j in range(4):
        bumped = []
        for sign in (1, -1):
            h = parts[0].copy()
            h[0, j] += sign * 1e-6
            st = (h, parts[1]) if cell == "lstm" else h
            with rnnkit.no_grad():
                new = cells[0](x[2], st)
            bumped.append((new[0] if cell == "lstm" else new)[0])
        J[:, j] = (bumped[0] - bumped[1]) / 2e-6
    assert abs(norms[2] - np.linalg.norm(J, 2)) < 1e-6
    assert np.isnan(norms[0])


def test_gradflow_json_and_init_options(capsys):
    assert main(["gradflow", "--seq-len", "30", "--hidden", "8", "--batch", "4", "--json"]) == 0
    flows = json.loads(capsys.readouterr().out)
    assert set(flows) == {"rnn", "lstm", "gru"}
    for norms in flows.values():
        assert len(norms) == 30 and all(np.isfinite(norms))
        assert norms[-1] > norms[0]                       # the gradient shrinks going back
    small = gradient_flow(["rnn"], 8, 30, 4, 4, InitOptions(rnn_scale=0.5), 0)["rnn"].h_norms
    large = gradient_flow(["rnn"], 8, 30, 4, 4, InitOptions(rnn_scale=2.0), 0)["rnn"].h_norms
    assert small[0] / small[-1] < large[0] / large[-1]
    plain = gradient_flow(["lstm"], 8, 30, 4, 4, InitOptions(), 0)["lstm"].h_norms
    remembering = gradient_flow(["lstm"], 8, 30, 4, 4, InitOptions(forget_bias=3.0), 0)["lstm"].h_norms
    assert remembering[0] / remembering[-1] > 100 * plain[0] / plain[-1]


def test_task_data_and_baselines():
    x, y = adding_batch(np.random.default_rng(0), 20, 500)
    assert x.shape == (20, 500, 2) and np.all(x[..., 1].sum(axis=0) == 2)
    marked = (x[..., 0] * x[..., 1]).sum(axis=0)
    np.testing.assert_allclose(marked, y[:, 0])
    assert abs(np.mean((y - 1) ** 2) - baseline("adding", 20)) < 0.03
    x, y = copy_batch(np.random.default_rng(0), 15, 4)
    assert x.shape == (35, 4, 10) and y.shape == (35, 4)
    np.testing.assert_array_equal(y[-10:], x[:10].argmax(axis=-1))
    assert np.all(y[:-10] == 0) and np.all(x[24].argmax(axis=-1) == 9)
    assert baseline("copy", 15) == pytest.approx(10 * np.log(8) / 35)


def test_lstm_solves_a_short_adding_problem():
    r = run_task("adding", 10, "lstm", 32, 400, 1e-2, 64, seed=0, eval_every=400)
    assert r.solved and r.test_metric < 0.1 * r.baseline
    assert r.curve[-1][0] == 400


def test_task_cli_json(capsys):
    assert main(["task", "copy", "--seq-len", "5", "--steps", "20", "--hidden", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"test_metric", "baseline", "steps"} <= set(result) and result["steps"] == 20
    assert result["baseline"] == pytest.approx(10 * np.log(8) / 25)


def test_text_features():
    f = text_features('x = f("a(b", [1])\ny')
    assert f["inside quotes"].tolist()[6:11] == [0, 1, 1, 1, 1]
    assert f["inside brackets"][7] == 1 and f["inside brackets"][-1] == 0
    assert f["line position"][-1] == 0 and f["line position"][4] == 4


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    corpus = d / "c.txt"
    corpus.write_text('def f(x):\n    return "value" + str(x)\n' * 80, encoding="utf-8")
    run = d / "run"
    assert main(["train", str(corpus), "--cell", "lstm", "--hidden", "16", "--embed", "8", "--batch-size", "4",
                 "--seq-len", "16", "--max-steps", "30", "--sample-chars", "0", "--out", str(run)]) == 0
    return run, corpus


def test_gradflow_on_a_checkpoint(lm_run, capsys):
    run, corpus = lm_run
    assert main(["gradflow", str(run), "--text", str(corpus), "--seq-len", "40",
                 "--batch", "4", "--json"]) == 0
    flows = json.loads(capsys.readouterr().out)
    assert list(flows) == ["lstm"] and len(flows["lstm"]) == 40


def test_inspect_page_in_a_headless_browser(lm_run, tmp_path, capsys):
    run, corpus = lm_run
    page = tmp_path / "page.html"
    assert main(["inspect", str(run), str(corpus), "--max-chars", "300", "--out", str(page)]) == 0
    out = capsys.readouterr().out
    assert "gate saturation" in out and "most correlated with inside quotes" in out
    driver = chromium(tmp_path)
    from selenium.webdriver.support.ui import Select
    try:
        driver.get(page.as_uri())
        spans = driver.find_elements("css selector", "#text span")
        assert len(spans) == 300
        colours = lambda: [s.value_of_css_property("background-color") for s in spans[:60]]  # noqa: E731
        before = colours()
        assert len(set(before)) > 1                               # it is shaded at all
        Select(driver.find_element("id", "quantity")).select_by_value("f")
        after_gate = colours()
        assert after_gate != before
        driver.find_element("id", "next").click()
        assert colours() != after_gate
        assert driver.find_element("id", "unit").get_attribute("value") == "1"
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
