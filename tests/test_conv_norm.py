"""Conv1d, BatchNorm1d, LayerNorm, ReLU and module buffers, without PyTorch.

Finite-difference gradient checks in float64 of every input and parameter; the engine's product
against NumPy's; one product per Conv1d call; errors that name the argument; buffers in the state
dict; the code blocks of docs/conv_norm.md. PyTorch parity: tests/test_conv_norm_torch.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.conv
import rnnkit.engine
from rnnkit.files import read_tensors, write_tensors
from rnnkit.optim import SGD
from test_gradcheck import assert_close, numeric_grad

ROOT = Path(__file__).resolve().parents[1]


def gradcheck(module, x, call=None, seed=0):
    """Analytic gradients of loss = Σ w ⊙ y against central differences, for x and every parameter."""
    call = call or (lambda m, a: m(a))
    w = np.random.default_rng(seed).standard_normal(np.shape(call(module, x)))
    module.zero_grad()
    call(module, x)
    dx = module.backward(w)

    def loss():
        with rnnkit.no_grad():
            return float(np.sum(call(module, x) * w))

    for name, p in module.named_parameters():
        assert_close(p.grad, numeric_grad(loss, p.data), name)
    assert_close(dx, numeric_grad(loss, x), "x")
    return dx


CONVS = [
    dict(kernel_size=1), dict(kernel_size=2), dict(kernel_size=3, padding=1), dict(kernel_size=4, padding="same"),
    dict(kernel_size=2, padding="same", dilation=3), dict(kernel_size=3, stride=2, padding=2, dilation=2),
    dict(kernel_size=3, stride=3, padding="valid"), dict(kernel_size=5, padding=(4,), stride=(2,)),
    dict(kernel_size=3, groups=2, padding=1), dict(kernel_size=3, out_channels=8, groups=4, padding="same"),
    dict(kernel_size=3, bias=False), dict(kernel_size=3, padding=2, padding_mode="reflect", stride=2),
    dict(kernel_size=4, padding="same", padding_mode="replicate", dilation=2),
    dict(kernel_size=2, padding=3, padding_mode="circular", stride=3),
]


def make_conv(kw, dtype=np.float64, seed=0):
    kw = {"out_channels": 6} | kw
    return rnnkit.Conv1d(4, kw.pop("out_channels"), dtype=dtype, rng=seed, **kw)


@pytest.mark.parametrize("kw", CONVS, ids=repr)
def test_conv1d_gradcheck(kw):
    conv = make_conv(kw)
    x = np.random.default_rng(1).standard_normal((2, 4, 7))
    gradcheck(conv, x)


def test_conv1d_unbatched_gradcheck_and_shape():
    conv = make_conv(dict(kernel_size=4, padding="same"))
    x = np.random.default_rng(2).standard_normal((4, 9))
    y = conv(x)
    assert y.shape == (6, 9)
    np.testing.assert_array_equal(y, conv(x[None])[0])
    assert gradcheck(conv, x).shape == (4, 9)


def test_conv1d_output_lengths_and_same_split():
    """L_out = ⌊(L + p_l + p_r − d(k − 1) − 1)/s⌋ + 1; "same" keeps L and puts the odd pad on the right."""
    x = np.zeros((1, 4, 10))
    for kw, length in [(dict(kernel_size=3), 8), (dict(kernel_size=3, stride=2, padding=1), 5),
                       (dict(kernel_size=4, dilation=2, padding=1), 6), (dict(kernel_size=4, padding="same"), 10),
                       (dict(kernel_size=1, stride=4), 3)]:
        assert make_conv(kw)(x).shape == (1, 6, length), kw
    conv = make_conv(dict(kernel_size=4, padding="same", bias=False))
    assert (conv.geometry.left, conv.geometry.right) == (1, 2)
    # A unit impulse at position 0: with p_l = 1, output t = 0 sees it through kernel tap j = 1.
    conv.weight.data[:] = np.arange(4)
    x[0, 0, 0] = 1.0
    np.testing.assert_array_equal(conv(x)[0, 0, :2], [1.0, 0.0])


def test_conv1d_groups_are_blocks():
    """With groups, output block i reads input block i only: equal to separate convolutions."""
    rng = np.random.default_rng(3)
    conv = make_conv(dict(kernel_size=3, groups=2, padding=1))
    x = rng.standard_normal((2, 4, 7))
    for i in range(2):
        part = rnnkit.Conv1d(2, 3, 3, padding=1, dtype=np.float64)
        part.weight.data[:] = conv.weight.data[3 * i:3 * i + 3]
        part.bias.data[:] = conv.bias.data[3 * i:3 * i + 3]
        np.testing.assert_allclose(conv(x)[:, 3 * i:3 * i + 3], part(x[:, 2 * i:2 * i + 2]), rtol=1e-14, atol=1e-14)


def test_conv1d_init_bounds_and_seed():
    conv = rnnkit.Conv1d(8, 16, 5, groups=2, rng=0)
    bound = 1 / np.sqrt(8 // 2 * 5)
    assert conv.weight.shape == (16, 4, 5) and conv.bias.shape == (16,)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.9 * bound
    assert np.abs(conv.bias.data).max() <= bound
    np.testing.assert_array_equal(conv.weight.data, rnnkit.Conv1d(8, 16, 5, groups=2, rng=0).weight.data)


def test_conv1d_one_product_forward_two_backward(monkeypatch):
    calls = []
    real = rnnkit.conv.matmul
    monkeypatch.setattr(rnnkit.conv, "matmul", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    conv = rnnkit.Conv1d(8, 16, 5, padding="same", rng=0)
    y = conv(np.ones((4, 8, 30), np.float32))
    assert calls == [(4 * 30, 5 * 8)]                       # COLS (N·L_out, k·C_in) times W2ᵀ
    conv.backward(np.ones_like(y))
    assert len(calls) == 3


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_conv1d_engine_and_numpy_agree(monkeypatch, dtype, tol):
    if not rnnkit.engine.enabled():
        pytest.skip("the engine is unavailable (Numba missing or RNNKIT_ENGINE=0)")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 16, 40)).astype(dtype)
    dy = rng.standard_normal((5, 24, 18)).astype(dtype)

    def run(engine: bool):
        monkeypatch.setattr(rnnkit.engine, "enabled", lambda: engine)
        conv = rnnkit.Conv1d(16, 24, 5, stride=2, groups=2, dtype=dtype, rng=0)
        y = conv(x)
        return y, conv.backward(dy), conv.weight.grad.copy(), conv.bias.grad.copy()

    on, off = run(True), run(False)
    for a, b in zip(on, off):
        assert np.max(np.abs(a - b)) <= tol * max(1.0, np.max(np.abs(b)))


BATCH_NORMS = [
    dict(shape=(6, 3)), dict(shape=(4, 3, 5)), dict(shape=(4, 3, 5), affine=False), dict(shape=(4, 3, 5), bias=False),
    dict(shape=(6, 3), eval=True), dict(shape=(4, 3, 5), eval=True), dict(shape=(4, 3, 5), eval=True, affine=False),
    dict(shape=(4, 3, 5), lengths=[5, 2, 1, 4]), dict(shape=(4, 3, 5), lengths=[5, 2, 1, 4], eval=True),
    dict(shape=(4, 3, 5), lengths=[3, 3, 5, 1], affine=False),
    dict(shape=(4, 3, 5), track_running_stats=False, eval=True), dict(shape=(4, 3, 5), momentum=None),
]


@pytest.mark.parametrize("case", BATCH_NORMS, ids=repr)
def test_batch_norm_gradcheck(case):
    case = dict(case)
    shape, lengths, evaluate = case.pop("shape"), case.pop("lengths", None), case.pop("eval", False)
    rng = np.random.default_rng(5)
    bn = rnnkit.BatchNorm1d(3, dtype=np.float64, **case)
    for p in bn.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    if bn.track_running_stats:
        bn.running_mean[:] = rng.standard_normal(3)
        bn.running_var[:] = rng.uniform(0.5, 2.0, 3)
    if evaluate:
        bn.eval()
    x = rng.standard_normal(shape) * 2 + 1
    lens = None if lengths is None else np.array(lengths)
    dx = gradcheck(bn, x, lambda m, a: m(a, lens))
    if lens is not None:
        padded = np.arange(shape[2])[None, :] >= lens[:, None]
        assert np.all(bn(x, lens).transpose(0, 2, 1)[padded] == 0)
        assert np.all(dx.transpose(0, 2, 1)[padded] == 0)


def test_batch_norm_train_normalises_and_tracks():
    rng = np.random.default_rng(6)
    bn = rnnkit.BatchNorm1d(3, momentum=0.5, dtype=np.float64)
    x = rng.standard_normal((50, 3, 4)) * [[[2.0], [3.0], [0.5]]] + [[[1.0], [-2.0], [0.0]]]
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=(0, 2)), 1 - 1e-5 / (x.var(axis=(0, 2)) + 1e-5) , rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=(0, 2)), rtol=1e-13)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=(0, 2), ddof=1), rtol=1e-13)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked == 1
    cumulative = rnnkit.BatchNorm1d(3, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((8, 3)) + k for k in range(3)]
    for b in batches:
        cumulative(b)
    np.testing.assert_allclose(cumulative.running_mean, np.mean([b.mean(0) for b in batches], 0), rtol=1e-13)
    np.testing.assert_allclose(cumulative.running_var, np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-13)
    cumulative.reset_running_stats()
    assert cumulative.num_batches_tracked == 0 and np.all(cumulative.running_var == 1)


def test_batch_norm_masked_equals_valid_positions():
    """Statistics over t < lengths[n] only: the same as the module on the valid positions (M, C)."""
    rng = np.random.default_rng(7)
    x, lens = rng.standard_normal((3, 2, 6)), np.array([6, 2, 4])
    masked, plain = rnnkit.BatchNorm1d(2, dtype=np.float64), rnnkit.BatchNorm1d(2, dtype=np.float64)
    valid = np.arange(6)[None, :] < lens[:, None]                       # (N, L)
    gathered = x.transpose(0, 2, 1)[valid]                              # (M, C)
    np.testing.assert_allclose(masked(x, lens).transpose(0, 2, 1)[valid], plain(gathered), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(masked.running_var, plain.running_var, rtol=1e-14)


def test_batch_norm_padding_may_hold_nan():
    """Padded positions are never read: NaN padding gives the results of zero padding."""
    rng = np.random.default_rng(12)
    x, lens, dy = rng.standard_normal((3, 2, 6)), np.array([6, 2, 4]), rng.standard_normal((3, 2, 6))
    padded = (np.arange(6)[None, :] >= lens[:, None])[:, None, :]
    results = []
    for fill in (0.0, np.nan):
        bn = rnnkit.BatchNorm1d(2, dtype=np.float64)
        y = bn(np.where(padded, fill, x), lens)
        results.append((y, bn.backward(dy), bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var))
    for a, b in zip(*results):
        assert np.all(np.isfinite(b))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kw, shape", [(dict(normalized_shape=4), (3, 4)), (dict(normalized_shape=(2, 3)), (2, 3, 2, 3)),
                                       (dict(normalized_shape=[5], elementwise_affine=False), (2, 2, 5)),
                                       (dict(normalized_shape=5, bias=False), (3, 5)), (dict(normalized_shape=3), (3,))],
                         ids=repr)
def test_layer_norm_gradcheck(kw, shape):
    rng = np.random.default_rng(8)
    ln = rnnkit.LayerNorm(dtype=np.float64, **kw)
    for p in ln.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    gradcheck(ln, rng.standard_normal(shape) * 3 + 1)


def test_layer_norm_normalises_the_trailing_axes():
    x = np.random.default_rng(9).standard_normal((4, 2, 3)) * 5 + 2
    y = rnnkit.LayerNorm((2, 3), dtype=np.float64)(x)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-14)
    np.testing.assert_allclose(y.reshape(4, 6).var(axis=1), 1, rtol=1e-5)
    ln = rnnkit.LayerNorm(3, bias=False)
    assert [n for n, _ in ln.named_parameters()] == ["weight"] and ln.weight.data.dtype == np.float32


def test_relu_gradcheck_and_inplace():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 5))
    x += np.sign(x) * 0.1                                  # away from the kink
    dx = gradcheck(rnnkit.ReLU(dtype=np.float64), x)
    np.testing.assert_array_equal(dx != 0, x > 0)
    relu = rnnkit.ReLU(dtype=np.float64)
    relu(np.zeros(3))
    np.testing.assert_array_equal(relu.backward(np.ones(3)), 0)           # the derivative at 0 is 0
    a = x.copy()
    assert rnnkit.ReLU(inplace=True, dtype=np.float64)(a) is a and np.all(a >= 0)


def test_conv_block_composes():
    """Conv1d → BatchNorm1d (lengths) → ReLU, forward and backward through all three."""
    rng = np.random.default_rng(11)
    conv = rnnkit.Conv1d(3, 4, 3, padding="same", dtype=np.float64, rng=0)
    bn, relu = rnnkit.BatchNorm1d(4, dtype=np.float64), rnnkit.ReLU(dtype=np.float64)
    lens = np.array([5, 3])

    class Block(rnnkit.Module):
        def __call__(self, x):
            return relu(bn(conv(x), lens))

        def backward(self, dy):
            return conv.backward(bn.backward(relu.backward(dy)))

    block = Block(dtype=np.float64)
    for name, m in (("conv", conv), ("bn", bn), ("relu", relu)):
        block.register_module(name, m)
    gradcheck(block, rng.standard_normal((2, 3, 5)))


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: rnnkit.Conv1d(4, 6, 3, padding="full"), "padding must be an integer >= 0, 'valid' or 'same', got str 'full'"),
    (lambda: rnnkit.Conv1d(4, 6, 3, padding=-1), "padding must be an integer >= 0, 'valid' or 'same', got -1"),
    (lambda: rnnkit.Conv1d(4, 6, 3, padding=1.5), "padding must be an integer >= 0, 'valid' or 'same', got float 1.5"),
    (lambda: rnnkit.Conv1d(4, 6, 3, stride=2, padding="same"), r"padding='same' is not supported for strided .* got 2"),
    (lambda: rnnkit.Conv1d(4, 6, 0), "kernel_size must be an integer >= 1, got 0"),
    (lambda: rnnkit.Conv1d(4, 6, 3, groups=3), "in_channels must be divisible by groups=3, got 4"),
    (lambda: rnnkit.Conv1d(4, 6, 3, groups=4), "out_channels must be divisible by groups=4, got 6"),
    (lambda: rnnkit.Conv1d(4, 6, 3, padding_mode="wrap"), r"padding_mode must be one of zeros, reflect.*got 'wrap'"),
    (lambda: rnnkit.BatchNorm1d(3, momentum=2), r"momentum must be a finite number in \[0, 1\] or None, got 2"),
    (lambda: rnnkit.BatchNorm1d(3, eps=0), "eps must be a finite number > 0, got 0"),
    (lambda: rnnkit.LayerNorm([]), "normalized_shape must be an int or a non-empty sequence of ints, got"),
    (lambda: rnnkit.LayerNorm((3, 0)), "normalized_shape must be an integer >= 1, got 0"),
])
def test_constructor_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("module, x, message", [
    (rnnkit.Conv1d(4, 6, 3), np.zeros((2, 5, 7)), re.escape("x must have shape (N, in_channels=4, L) or (4, L) "
                                                            "unbatched, got (2, 5, 7)")),
    (rnnkit.Conv1d(4, 6, 3), np.zeros(4), re.escape("got (4,)")),
    (rnnkit.Conv1d(4, 6, 5, dilation=2, padding=1), np.zeros((2, 4, 6)),
     re.escape("x is too short for the kernel: length 6 padded by (1, 1) is 8, the dilated kernel spans 9")),
    (rnnkit.Conv1d(4, 6, 3, padding=3, padding_mode="reflect"), np.zeros((1, 4, 3)),
     re.escape("padding_mode='reflect' needs padding < the input length: padding (3, 3), x of length 3")),
    (rnnkit.Conv1d(4, 6, 3, padding=4, padding_mode="circular"), np.zeros((1, 4, 3)), "needs padding <= the input length"),
    (rnnkit.Conv1d(4, 6, 3), np.zeros((1, 4, 3), complex), "x must be a real .* got dtype complex128"),
    (rnnkit.BatchNorm1d(3), np.zeros((2, 4, 5)), re.escape("x must have shape (N, num_features=3) or (N, 3, L), "
                                                           "got (2, 4, 5)")),
    (rnnkit.BatchNorm1d(3), np.zeros((1, 3)), re.escape("expected more than 1 value per channel when using batch "
                                                       "statistics (training), got x of shape (1, 3) with 1 valid")),
    (rnnkit.LayerNorm((2, 3)), np.zeros((4, 3, 2)), re.escape("x must have shape (..., 2, 3) (trailing axes = "
                                                               "normalized_shape (2, 3)), got (4, 3, 2)")),
])
def test_input_errors(module, x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        module(x)


@pytest.mark.parametrize("x, lengths, message", [
    (np.zeros((2, 3, 5)), np.array([5, 2, 1]), re.escape("lengths must have shape (2,) (one per sequence), got (3,)")),
    (np.zeros((2, 3, 5)), np.array([6, 2]), re.escape("lengths must lie in [1, T=5], got min 2 and max 6")),
    (np.zeros((2, 3, 5)), np.array([5.0, 2.0]), re.escape("lengths must be an integer array of shape (2,)")),
    (np.zeros((2, 3)), np.array([1, 1]), re.escape("lengths needs x of shape (N, 3, L) (positions to mask), got (2, 3)")),
    (np.zeros((1, 3, 5)), np.array([1]), "more than 1 value per channel .* with 1 valid"),
])
def test_batch_norm_lengths_errors(x, lengths, message):
    with pytest.raises((ValueError, TypeError), match=message):
        rnnkit.BatchNorm1d(3)(x, lengths)


@pytest.mark.parametrize("module, x", [(rnnkit.Conv1d(2, 3, 2), np.zeros((1, 2, 4))), (rnnkit.BatchNorm1d(2), np.ones((3, 2))),
                                       (rnnkit.LayerNorm(2), np.ones((3, 2))), (rnnkit.ReLU(), np.ones((3, 2)))])
def test_backward_errors(module, x):
    name = type(module).__name__
    with pytest.raises(RuntimeError, match=f"{name}.backward: no forward call with gradients enabled"):
        module.backward(np.ones((1,)))
    with rnnkit.no_grad():
        y = module(x)
    with pytest.raises(RuntimeError, match="no forward call with gradients enabled"):
        module.backward(y)
    y = module(x)
    with pytest.raises(ValueError, match=re.escape(f"dout must have shape {y.shape}") + ".*got " + re.escape("(7,)")):
        module.backward(np.ones(7))


# -- buffers ----------------------------------------------------------------------------------------
class Net(rnnkit.Module):
    """Own parameter and buffers, then two children: the state dict lists them in that order."""

    def __init__(self, dtype=np.float64):
        super().__init__(dtype=dtype)
        self.scale = self.register_parameter("scale", np.ones(2))
        self.count = self.register_buffer("count", np.zeros((), np.int64))
        self.scratch = self.register_buffer("scratch", np.zeros(3), persistent=False)
        self.conv = self.register_module("conv", rnnkit.Conv1d(2, 2, 1, dtype=dtype, rng=0))
        self.bn = self.register_module("bn", rnnkit.BatchNorm1d(2, dtype=dtype))


def test_buffers_in_state_dict_in_pytorch_order():
    net = Net()
    assert list(net.state_dict()) == ["scale", "count", "conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                      "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_buffers()] == ["count", "scratch", "bn.running_mean", "bn.running_var",
                                                   "bn.num_batches_tracked"]
    assert [n for n, _ in net.named_parameters()] == ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias"]
    assert len(net.buffers()) == 5 and len(net.parameters()) == 5
    assert net.state_dict()["bn.num_batches_tracked"].dtype == np.int64
    assert net.state_dict()["bn.num_batches_tracked"].shape == ()


def test_buffers_load_copy_and_survive_optimizers(tmp_path):
    net, other = Net(), Net()
    net.bn(np.random.default_rng(0).standard_normal((4, 2, 3)))
    net.bn(np.random.default_rng(1).standard_normal((4, 2, 3)))
    sd = net.state_dict()
    sd["bn.running_mean"][:] = 99                          # a copy: the module is unchanged
    assert np.all(net.bn.running_mean != 99)
    write_tensors(tmp_path / "m.safetensors", net.state_dict(), {})
    loaded, _ = read_tensors(tmp_path / "m.safetensors")
    other.load_state_dict(loaded)
    for (name, a), (_, b) in zip(net.named_buffers(), other.named_buffers()):
        if name != "scratch":
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    assert other.bn.num_batches_tracked == 2 and other.bn.running_mean is other.bn._buffers["running_mean"]
    before = other.bn.running_var.copy()
    for p in other.parameters():
        p.grad[...] = 1.0
    SGD(other.parameters(), lr=0.1).step()                # optimizers see parameters, never buffers
    np.testing.assert_array_equal(other.bn.running_var, before)


def test_buffer_load_errors_list_every_problem_and_change_nothing():
    net = Net()
    sd = net.state_dict()
    del sd["bn.num_batches_tracked"]
    sd["bn.running_var"] = np.ones(5)
    sd["extra"] = np.ones(1)
    with pytest.raises(ValueError, match=re.escape("bn.running_var: expected shape (2,), got (5,)") + ".*"
                       + re.escape("missing keys ['bn.num_batches_tracked']") + ".*" + re.escape("unexpected keys ['extra']")):
        net.load_state_dict(sd)
    assert np.all(net.bn.running_var == 1)
    net.load_state_dict({"bn.running_mean": np.full(2, 3.0)}, strict=False)
    assert np.all(net.bn.running_mean == 3)
    with pytest.raises(ValueError, match="'count': the name is already registered"):
        net.register_buffer("count", np.zeros(1))
    with pytest.raises(ValueError, match="'scale': the name is already registered"):
        net.register_buffer("scale", np.zeros(1))
    with pytest.raises(TypeError, match="buffer 'b' must be an array of real numbers, got dtype <U1"):
        net.register_buffer("b", np.array(["x"]))


# -- docs -------------------------------------------------------------------------------------------
def test_docs_code_blocks_run():
    text = (ROOT / "docs" / "conv_norm.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    scope: dict = {}
    for block in blocks:                              # in order, sharing one namespace, as a reader would
        exec(compile(block, "docs/conv_norm.md", "exec"), scope)
