"""layer_norm=True on RNN, LSTM, GRU and their cells (the spec's "Layer-normalised cells").

Three ways, on both backends: float64 finite differences of every parameter, the input and the
initial states; stepping a cell equals the whole-sequence layer, forward and backward; parity with
an independent transcription of the spec in torch autograd (tests/ln_reference.py) over the core
grid (layers 1-2, both directions, lengths, initial states, float64 and float32). Also: the
refusals, the parameters' names and initial values, and a safetensors round trip.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from helpers import CLASSES, Case, as_tuple, engine_threads, from_tuple, loss_weights, rel_err
from rnnkit.kinds import cell_class
from test_gradcheck import check_cell, check_layer
from test_stepwise import check_steps_equal_layer

pytestmark = pytest.mark.both_backends      # the engine and the NumPy reference (conftest.py)

def randomise_norm(module, seed: int) -> None:
    """Gains and shifts away from their initial 1 and 0, so that their gradients are tested."""
    rng = np.random.default_rng(seed)
    for name, p in module.named_parameters():
        if name.startswith("ln_"):
            base = 0.0 if name.startswith("ln_bias") else 1.0
            p.data[...] = base + 0.5 * rng.standard_normal(p.data.shape)


# -- gradients: float64 finite differences ------------------------------------------------------------

GRAD_CASES = [Case("lstm", layer_norm=True), Case("gru", layer_norm=True), Case("rnn", layer_norm=True),
              Case("rnn", layer_norm=True, nonlinearity="relu"), Case("lstm", layer_norm=True, bias=False)]
# Random initial states: at h_0 = 0 the recurrent product is 0 and LN's r = 1/√ε ≈ 316, where
# central differences lose their accuracy (the analytic gradient is still exact there).
GRAD_OPTIONS = [dict(init_state=True), dict(num_layers=2, bidirectional=True, lengths=True, init_state=True),
                dict(batch_first=True, num_layers=2, init_state=True),
                dict(unbatched=True, bidirectional=True, init_state=True)]


@pytest.mark.parametrize("options", GRAD_OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("case", GRAD_CASES, ids=repr)
def test_layer_gradients(case, options, monkeypatch):
    make = Case.make

    def make_randomised(self, dtype=np.float64, seed=0):
        layer = make(self, dtype, seed)
        randomise_norm(layer, seed)
        return layer
    monkeypatch.setattr(Case, "make", make_randomised)
    check_layer(case.with_(**options), seed=3)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn"])
def test_gradients_with_training_dropout(mode, monkeypatch):
    check_layer(Case(mode, num_layers=2, bidirectional=True, dropout=0.4, lengths=True, layer_norm=True,
                     init_state=True),
                seed=5, dropout_train=True)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn"])
def test_cell_gradients(mode):
    cell = cell_class(mode)(3, 4, dtype=np.float64, rng=2, layer_norm=True)
    randomise_norm(cell, 4)
    check_cell(cell)


# -- stepping a cell equals the layer -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn"])
def test_cell_steps_equal_layer(mode, dtype):
    layer = CLASSES[mode](4, 5, dtype=dtype, rng=1, layer_norm=True)
    randomise_norm(layer, 2)
    check_steps_equal_layer(layer, cell_class(mode)(4, 5, dtype=dtype, rng=2, layer_norm=True),
                            tol=1e-12 if dtype == np.float64 else 2e-5)


# -- parity with the spec transcribed in torch autograd ---------------------------------------------

TOL = {np.float64: 1e-9, np.float32: 2e-4}
PARITY_GRID = [Case(mode, T=5, B=3, I=3, H=4, num_layers=L, bidirectional=bi, lengths=lengths, init_state=init,
                    layer_norm=True)
               for mode in ("lstm", "gru", "rnn") for L in (1, 2) for bi in (False, True)
               for lengths, init in ((False, False), (True, True))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", PARITY_GRID, ids=repr)
def test_parity_with_torch_transcription(case, dtype):
    torch = pytest.importorskip("torch")
    from ln_reference import run_stack
    rng = np.random.default_rng(7)
    layer = case.make(dtype, seed=11)
    randomise_norm(layer, 12)
    x, state, lengths = case.inputs(rng)
    x = x.astype(dtype)
    if state is None:
        state = case.zero_state()
    state = from_tuple(case, tuple(s.astype(dtype) for s in as_tuple(state)))
    out, fin = layer(x, state, lengths=lengths)
    w_out, w_state = loss_weights(rng, out, fin)
    dx, dstate0 = layer.backward(w_out.astype(dtype), from_tuple(case, tuple(w.astype(dtype) for w in w_state)))

    sd = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in layer.state_dict().items()}
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    st = tuple(torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in as_tuple(state))
    kw = {"nonlinearity": case.nonlinearity} if case.mode == "rnn" else {}
    t_out, t_fin = run_stack(case.mode, sd, xt, st, lengths, case.num_layers, case.bidirectional, **kw)
    loss = (t_out * torch.tensor(w_out.astype(dtype), dtype=torch.float64)).sum()
    loss = loss + sum((f * torch.tensor(w.astype(dtype), dtype=torch.float64)).sum() for f, w in zip(t_fin, w_state))
    loss.backward()
    pairs = [("output", out, t_out), ("dx", dx, xt.grad)]
    pairs += [(f"final[{k}]", a, b) for k, (a, b) in enumerate(zip(as_tuple(fin), t_fin))]
    pairs += [(f"dstate0[{k}]", a, s.grad) for k, (a, s) in enumerate(zip(as_tuple(dstate0), st))]
    pairs += [(name, p.grad, sd[name].grad) for name, p in layer.named_parameters()]
    for name, a, b in pairs:
        b = b.detach().numpy()
        assert a.dtype == dtype and a.shape == b.shape, name
        err = rel_err(a, b)
        assert err <= TOL[dtype], f"{name}: relative error {err:.3g} > {TOL[dtype]}"
        assert err > 0 or dtype == np.float64 or not np.any(b), f"{name}: equal bits in float32: not compared?"


# -- parameters, refusals, files ------------------------------------------------------------------

def test_parameters_names_and_initial_values():
    lstm = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, layer_norm=True, rng=0)
    names = [n for n, _ in lstm.named_parameters()]
    for k in range(2):
        for suffix in (f"_l{k}", f"_l{k}_reverse"):
            for field, size, value in (("ln_weight_ih", 16, 1.0), ("ln_weight_hh", 16, 1.0),
                                       ("ln_weight_c", 4, 1.0), ("ln_bias_c", 4, 0.0)):
                p = lstm.state_dict()[field + suffix]
                assert p.shape == (size,) and np.all(p == value), field + suffix
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    plain = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)
    for name, a in plain.state_dict().items():     # the same draws for the weights and biases
        assert np.array_equal(a, lstm.state_dict()[name]), name
    gru = rnnkit.GRUCell(3, 5, layer_norm=True)
    assert {n for n, _ in gru.named_parameters()} >= {"ln_weight_ih", "ln_weight_hh"}
    assert gru.state_dict()["ln_weight_hh"].shape == (15,) and "ln_weight_c" not in gru.state_dict()


@pytest.mark.parametrize("make,words", [
    (lambda: rnnkit.LSTM(3, 4, proj_size=2, layer_norm=True), "proj_size=2"),
    (lambda: rnnkit.LSTM(3, 4, peephole=True, layer_norm=True), "peephole=True"),
    (lambda: rnnkit.LSTMCell(3, 4, peephole=True, layer_norm=True), "peephole=True"),
    (lambda: rnnkit.GRU(3, 4, reset_after=False, layer_norm=True), "reset_after=False"),
    (lambda: rnnkit.GRUCell(3, 4, reset_after=False, layer_norm=True), "reset_after=False"),
    (lambda: rnnkit.LSTM(3, 4, recurrent_dropout=0.2, layer_norm=True), "recurrent_dropout=0.2"),
    (lambda: rnnkit.RNNCell(3, 4, zoneout=0.1, layer_norm=True), "zoneout=0.1"),
])
def test_refused_combinations(make, words):
    with pytest.raises(ValueError, match=f"layer_norm=True cannot be combined with {words}"):
        make()


def test_torch_exchange_refuses():
    pytest.importorskip("torch")
    import rnnkit.torch
    with pytest.raises(ValueError, match="layer-normalised"):
        rnnkit.torch.to_torch(rnnkit.LSTM(3, 4, layer_norm=True))
    with pytest.raises(ValueError, match="layer-normalised"):
        rnnkit.torch.to_torch(rnnkit.GRUCell(3, 4, layer_norm=True))


def test_safetensors_round_trip(tmp_path):
    from rnnkit.files import read_tensors, write_tensors
    lstm = rnnkit.LSTM(3, 4, num_layers=2, layer_norm=True, rng=0)
    randomise_norm(lstm, 1)
    write_tensors(tmp_path / "m.safetensors", dict(lstm.state_dict()), {"layer_norm": True})
    arrays, meta = read_tensors(tmp_path / "m.safetensors")
    again = rnnkit.LSTM(3, 4, num_layers=2, layer_norm=meta["layer_norm"], rng=5)
    again.load_state_dict(arrays)
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(np.float32)
    assert np.array_equal(lstm(x)[0], again(x)[0])
    with pytest.raises(Exception, match="ln_weight_c_l0"):   # a plain LSTM has no such parameter
        rnnkit.LSTM(3, 4, num_layers=2).load_state_dict(arrays)


# -- ONNX: LayerNormalization (opset 17) inside the Scan of each direction -------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn"])
def test_onnx_export_matches(mode, dtype):
    pytest.importorskip("onnxruntime")
    import rnnkit.onnx
    layer = CLASSES[mode](3, 5, num_layers=2, bidirectional=True, layer_norm=True, dtype=dtype, rng=4)
    randomise_norm(layer, 6)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4, 3)).astype(dtype)
    lengths = np.array([6, 2, 5, 1])
    state = tuple(rng.standard_normal((4, 4, 5)).astype(dtype) for _ in range(2 if mode == "lstm" else 1))
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(layer, lengths=True), threads=1)
    feeds = {"input": x, "lengths": lengths, **{f"{n}0": s for n, s in zip("hc", state)}}
    with rnnkit.no_grad():
        out, fin = layer(x, state if mode == "lstm" else state[0], lengths=lengths)
    # onnxruntime's float64 LayerNormalization itself errs by ~7e-13 (measured against NumPy's
    # two-pass LN); through two layers of ten steps that grows to ~4e-11.
    tol = 1e-5 if dtype == np.float32 else 1e-10
    for got, expected in zip(sess.run(None, feeds), (out, *as_tuple(fin))):
        assert got.dtype == dtype and rel_err(got, expected) < tol
    assert "LayerNormalization" in {n.op_type for g in rnnkit.onnx.to_model(layer).graph.node
                                    for a in g.attribute if a.g.node for n in a.g.node}


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn"])
def test_onnx_cell_export_matches(mode):
    pytest.importorskip("onnxruntime")
    import rnnkit.onnx
    cell = cell_class(mode)(3, 4, layer_norm=True, rng=1)
    randomise_norm(cell, 2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    state = tuple(rng.standard_normal((5, 4)).astype(np.float32) for _ in range(2 if mode == "lstm" else 1))
    with rnnkit.no_grad():
        expected = as_tuple(cell(x, state if mode == "lstm" else state[0]))
    got = rnnkit.onnx.session(rnnkit.onnx.to_model(cell)).run(None, {"input": x, **{f"{n}0": s for n, s in
                                                                                     zip("hc", state)}})
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_onnx_export_before_opset_17_is_refused():
    pytest.importorskip("onnx")
    import rnnkit.onnx
    with pytest.raises(ValueError, match="LayerNormalization, which needs opset >= 17; got opset 16"):
        rnnkit.onnx.to_model(rnnkit.GRU(3, 4, layer_norm=True), opset=16)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn"])
def test_engine_gives_the_same_bits_on_one_thread_and_two(mode, backend):
    """The row statistics are sums of per-panel sums in panel order and the column sums over fixed
    blocks of rows, so the thread count changes nothing (the bulk passes run parallel here too:
    T·B·G·H ≥ 2^16)."""
    if backend != "engine":
        pytest.skip("the reference runs on one thread")
    runs = []
    for threads in (1, 2):
        with engine_threads(threads):
            layer = CLASSES[mode](16, 64, num_layers=2, layer_norm=True, rng=0)
            randomise_norm(layer, 1)
            x = np.random.default_rng(1).standard_normal((20, 64, 16)).astype(np.float32)
            out, _ = layer(x, lengths=np.random.default_rng(2).integers(1, 21, 64))
            dx, _ = layer.backward(np.ones_like(out))
            runs.append([out, dx] + [p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
