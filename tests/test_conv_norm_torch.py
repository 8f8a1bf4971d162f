"""Conv1d, BatchNorm1d, LayerNorm and ReLU against PyTorch 2.13, and their exchange with it.

Forward, dx and every parameter gradient in float64 and float32; for BatchNorm1d also the running
statistics and num_batches_tracked after every one of several training steps, then eval mode; the
masked BatchNorm1d against PyTorch's on the gathered valid positions; state dict keys and order.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
import rnnkit.torch as rt
from helpers import rel_err
from test_conv_norm import CONVS, Net, make_conv

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

DTYPES = [(np.float64, torch.float64, 1e-12), (np.float32, torch.float32, 2e-5)]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """torch's CPU kernels on tiny inputs: on this shared 2-core machine its thread pool turned a
    0.2 ms batch-norm step into 140 ms."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
DTYPE_IDS = ["f64", "f32"]


def load_into_torch(ours, theirs) -> None:
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})


def run_torch(t, x: np.ndarray, w: np.ndarray, *args):
    """(output, dx) of torch module t for loss Σ w ⊙ t(x); parameter grads stay on t."""
    xt = torch.tensor(x, requires_grad=True)
    y = t(xt, *args)
    (y * torch.from_numpy(w)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


def assert_parity(ours, theirs, y, t_y, dx, t_dx, tol, where=""):
    assert rel_err(y, t_y) < tol, f"{where} output"
    assert rel_err(dx, t_dx) < tol, f"{where} dx"
    t_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(t_params)
    for name, p in ours.named_parameters():
        assert rel_err(p.grad, t_params[name].grad.numpy()) < tol, f"{where} {name}.grad"


@pytest.mark.parametrize("dtype, tdtype, tol", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kw", CONVS + [dict(kernel_size=8, padding="same", out_channels=16),
                                        dict(kernel_size=6, padding="same", dilation=2, groups=4, out_channels=4)],
                         ids=repr)
def test_conv1d_matches_torch(kw, dtype, tdtype, tol):
    ours = make_conv(kw, dtype, seed=3)
    t_kw = {"out_channels": 6} | kw
    theirs = torch.nn.Conv1d(4, t_kw.pop("out_channels"), dtype=tdtype, **t_kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_into_torch(ours, theirs)
    rng = np.random.default_rng(0)
    for shape in [(3, 4, 11), (4, 13)]:                        # batched and unbatched
        x = rng.standard_normal(shape).astype(dtype)
        ours.zero_grad()
        theirs.zero_grad()
        y = ours(x)
        w = rng.standard_normal(y.shape).astype(dtype)
        t_y, t_dx = run_torch(theirs, x, w)
        assert_parity(ours, theirs, y, t_y, ours.backward(w), t_dx, tol, f"{shape}")


BN_OPTIONS = [dict(), dict(momentum=None), dict(momentum=0.3, affine=False), dict(bias=False),
              dict(track_running_stats=False), dict(eps=1e-3, momentum=None, affine=False)]


def batches(rng, shape, steps, dtype):
    scale, shift = rng.uniform(0.5, 3, (1, shape[1]) + (1,) * (len(shape) - 2)), rng.standard_normal(shape[1])
    shift = shift.reshape((1, shape[1]) + (1,) * (len(shape) - 2))
    return [(rng.standard_normal(shape) * scale + shift).astype(dtype) for _ in range(steps)]


def assert_same_buffers(ours, theirs, tol, where):
    t_buffers = dict(theirs.named_buffers())
    assert [n for n, _ in ours.named_buffers()] == list(t_buffers)
    for name, b in ours.named_buffers():
        if b.dtype.kind == "i":
            assert b.dtype == np.int64 and b.shape == () and int(b) == int(t_buffers[name]), f"{where} {name}"
        else:
            assert rel_err(b, t_buffers[name].numpy()) < tol, f"{where} {name}"


@pytest.mark.parametrize("dtype, tdtype, tol", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 7)], ids=["2d", "3d"])
@pytest.mark.parametrize("options", BN_OPTIONS, ids=repr)
def test_batch_norm_matches_torch_over_training_steps_then_eval(options, shape, dtype, tdtype, tol):
    rng = np.random.default_rng(1)
    ours = rnnkit.BatchNorm1d(3, dtype=dtype, **options)
    theirs = torch.nn.BatchNorm1d(3, dtype=tdtype, **options)
    for p in ours.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    load_into_torch(ours, theirs)
    for step, x in enumerate(batches(rng, shape, 4, dtype)):
        ours.zero_grad()
        theirs.zero_grad()
        y = ours(x)
        w = rng.standard_normal(y.shape).astype(dtype)
        t_y, t_dx = run_torch(theirs, x, w)
        assert_parity(ours, theirs, y, t_y, ours.backward(w), t_dx, tol, f"train step {step}")
        assert_same_buffers(ours, theirs, tol, f"train step {step}")
    ours.eval()
    theirs.eval()
    x = batches(rng, shape, 1, dtype)[0]
    ours.zero_grad()
    theirs.zero_grad()
    y = ours(x)
    w = rng.standard_normal(y.shape).astype(dtype)
    t_y, t_dx = run_torch(theirs, x, w)
    assert_parity(ours, theirs, y, t_y, ours.backward(w), t_dx, tol, "eval")
    assert_same_buffers(ours, theirs, tol, "eval")


@pytest.mark.parametrize("dtype, tdtype, tol", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("options", [dict(), dict(momentum=None), dict(affine=False)], ids=repr)
def test_masked_batch_norm_is_torch_on_the_valid_positions(options, dtype, tdtype, tol):
    """Output, dx, gradients and running statistics equal PyTorch's module on the valid positions
    gathered into (M, C); padded outputs and their dx are exactly 0."""
    rng = np.random.default_rng(2)
    ours = rnnkit.BatchNorm1d(3, dtype=dtype, **options)
    theirs = torch.nn.BatchNorm1d(3, dtype=tdtype, **options)
    for p in ours.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    load_into_torch(ours, theirs)
    N, L = 4, 9
    for step, x in enumerate(batches(rng, (N, 3, L), 4, dtype) + [None]):
        if x is None:                                        # then eval mode, still with lengths
            ours.eval()
            theirs.eval()
            x = batches(rng, (N, 3, L), 1, dtype)[0]
        lengths = rng.integers(1, L + 1, N)
        lengths[step % N] = 1 if step else L
        valid = np.arange(L)[None, :] < lengths[:, None]     # (N, L)
        ours.zero_grad()
        theirs.zero_grad()
        y = ours(x, lengths)
        w = rng.standard_normal(y.shape).astype(dtype)
        dx = ours.backward(w)
        t_y, t_dx = run_torch(theirs, x.transpose(0, 2, 1)[valid], w.transpose(0, 2, 1)[valid])    # (M, C)
        assert_parity(ours, theirs, y.transpose(0, 2, 1)[valid], t_y, dx.transpose(0, 2, 1)[valid], t_dx, tol,
                      f"step {step}")
        assert np.all(y.transpose(0, 2, 1)[~valid] == 0) and np.all(dx.transpose(0, 2, 1)[~valid] == 0)
        assert_same_buffers(ours, theirs, tol, f"step {step}")


@pytest.mark.parametrize("dtype, tdtype, tol", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kw, shape", [(dict(normalized_shape=6), (5, 6)), (dict(normalized_shape=(3, 4)), (2, 5, 3, 4)),
                                       (dict(normalized_shape=[6], elementwise_affine=False), (4, 2, 6)),
                                       (dict(normalized_shape=6, bias=False, eps=1e-3), (7, 2, 6))], ids=repr)
def test_layer_norm_matches_torch(kw, shape, dtype, tdtype, tol):
    rng = np.random.default_rng(3)
    ours = rnnkit.LayerNorm(dtype=dtype, **kw)
    theirs = torch.nn.LayerNorm(dtype=tdtype, **kw)
    for p in ours.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    load_into_torch(ours, theirs)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    y = ours(x)
    w = rng.standard_normal(y.shape).astype(dtype)
    t_y, t_dx = run_torch(theirs, x, w)
    assert_parity(ours, theirs, y, t_y, ours.backward(w), t_dx, tol)


@pytest.mark.parametrize("dtype, tdtype, tol", DTYPES, ids=DTYPE_IDS)
def test_relu_matches_torch(dtype, tdtype, tol):
    x = np.random.default_rng(4).standard_normal((3, 4, 5)).astype(dtype)
    x[0, 0, :3] = 0                                           # the derivative at 0
    w = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    relu = rnnkit.ReLU(dtype=dtype)
    t_y, t_dx = run_torch(torch.nn.ReLU(), x, w)
    np.testing.assert_array_equal(relu(x), t_y)
    np.testing.assert_array_equal(relu.backward(w), t_dx)


def test_nested_state_dict_order_is_torchs():
    """Per module: parameters, then (persistent) buffers, then children — as torch.nn.Module."""

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
            self.register_buffer("count", torch.zeros((), dtype=torch.int64))
            self.register_buffer("scratch", torch.zeros(3, dtype=torch.float64), persistent=False)
            self.conv = torch.nn.Conv1d(2, 2, 1, dtype=torch.float64)
            self.bn = torch.nn.BatchNorm1d(2, dtype=torch.float64)

    ours, theirs = Net(), TorchNet()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    theirs.bn(torch.randn(5, 2, 3, dtype=torch.float64))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert ours.bn.num_batches_tracked == 1
    np.testing.assert_array_equal(ours.bn.running_var, theirs.bn.running_var.numpy())


@pytest.mark.parametrize("make, shape", [
    (lambda: rnnkit.Conv1d(3, 4, 3, padding="same", rng=0), (4, 3, 9)),
    (lambda: rnnkit.Conv1d(4, 8, 2, stride=2, padding=1, dilation=2, groups=4, bias=False, padding_mode="reflect",
                           dtype=np.float64, rng=0), (4, 4, 9)),
    (lambda: rnnkit.BatchNorm1d(3, momentum=None), (4, 3, 6)),
    (lambda: rnnkit.BatchNorm1d(3, affine=False, eps=1e-3, dtype=np.float64), (5, 3)),
    (lambda: rnnkit.BatchNorm1d(3, track_running_stats=False, bias=False), (4, 3, 6)),
    (lambda: rnnkit.LayerNorm((2, 3), dtype=np.float64), (4, 5, 2, 3)),
    (lambda: rnnkit.LayerNorm(3, bias=False), (4, 3)),
], ids=["conv", "conv-options", "bn", "bn-no-affine", "bn-no-stats", "ln", "ln-no-bias"])
def test_exchange_both_ways(make, shape):
    ours = make()
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(ours.dtype)
    for p in ours.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    if isinstance(ours, rnnkit.BatchNorm1d):
        ours(x)
        ours(x * 2 + 1)                                      # running statistics away from their start
        ours.eval()
    theirs = rt.to_torch(ours)
    assert type(theirs) is getattr(torch.nn, type(ours).__name__) and theirs.training == ours.training
    assert list(theirs.state_dict()) == list(ours.state_dict())
    with torch.no_grad():
        t_y = theirs(torch.from_numpy(x)).numpy()
    with rnnkit.no_grad():
        y = ours(x)
    assert t_y.dtype == y.dtype and rel_err(y, t_y) < (1e-12 if y.dtype == np.float64 else 1e-5)
    back = rt.from_torch(theirs)
    assert repr(back) == repr(ours) and back.dtype == ours.dtype and back.training == ours.training
    assert list(back.state_dict()) == list(ours.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), back.state_dict().values()):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype, name


def test_exchange_errors():
    with pytest.raises(TypeError, match="float32 or float64; this Conv1d has parameters of dtype"):
        rt.from_torch(torch.nn.Conv1d(2, 3, 1, dtype=torch.float16))
    with pytest.raises(TypeError, match="cannot convert a ReLU; supported: .*Conv1d, BatchNorm1d, LayerNorm"):
        rt.to_torch(rnnkit.ReLU())
