"""The ONNX pieces and exporters of Conv1d, BatchNorm1d, LayerNorm and ReLU, run in onnxruntime
against rnnkit's own forward (eval mode), in float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from rnnkit.onnx import conv_norm as pieces
from rnnkit.onnx.graph import Graph
from rnnkit.onnx.interface import lengths_input
from test_conv_norm import CONVS, make_conv

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = {np.float32: 1e-5, np.float64: 1e-12}     # max abs error relative to max(1, |rnnkit|), as test_onnx
DTYPES = [np.float32, np.float64]


def assert_close(got, expected, dtype):
    assert got.shape == expected.shape and got.dtype == expected.dtype
    err = float(np.max(np.abs(got - expected)) / max(1.0, np.max(np.abs(expected))))
    assert err <= TOL[dtype], f"error {err:.3g}"


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node if n.op_type != "Identity"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kw", CONVS, ids=repr)
def test_conv1d_export(kw, dtype):
    conv = make_conv(kw, dtype, seed=2)
    model = rnnkit.onnx.to_model(conv)
    assert ("Conv" in ops(model)) == (dtype == np.float32)        # float64: MatMul per kernel offset
    sess = rnnkit.onnx.session(model, threads=1)
    rng = np.random.default_rng(0)
    for shape in [(2, 4, 7), (3, 4, 12)]:                           # batch and length are dynamic
        x = rng.standard_normal(shape).astype(dtype)
        with rnnkit.no_grad():
            expected = conv(x)
        assert_close(sess.run(None, {"input": x})[0], expected, dtype)


def trained_batch_norm(dtype, **options):
    rng = np.random.default_rng(1)
    bn = rnnkit.BatchNorm1d(3, dtype=dtype, **options)
    for p in bn.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    for _ in range(3):
        bn(rng.standard_normal((5, 3, 4)) * 2 + 1)
    return bn.eval()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("options", [dict(), dict(affine=False), dict(bias=False, eps=1e-3)], ids=repr)
def test_batch_norm_export_with_and_without_lengths(options, dtype):
    bn = trained_batch_norm(dtype, **options)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 6)).astype(dtype)
    lengths = np.array([6, 1, 3, 6])
    for with_lengths in (False, True):
        model = rnnkit.onnx.to_model(bn, lengths=with_lengths)
        assert "BatchNormalization" in ops(model)
        sess = rnnkit.onnx.session(model, threads=1)
        feeds = {"input": x} | ({"lengths": lengths} if with_lengths else {})
        with rnnkit.no_grad():
            expected = bn(x, lengths if with_lengths else None)
        assert_close(sess.run(None, feeds)[0], expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kw, shape", [(dict(normalized_shape=5), (3, 2, 5)), (dict(normalized_shape=(2, 3)), (4, 1, 2, 3)),
                                       (dict(normalized_shape=5, elementwise_affine=False), (2, 3, 5)),
                                       (dict(normalized_shape=5, bias=False), (2, 3, 5))], ids=repr)
def test_layer_norm_export(kw, shape, dtype):
    rng = np.random.default_rng(3)
    ln = rnnkit.LayerNorm(dtype=dtype, **kw)
    for p in ln.parameters():
        p.data[:] = rng.standard_normal(p.shape)
    model = rnnkit.onnx.to_model(ln)
    assert ops(model) == ["LayerNormalization"]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    with rnnkit.no_grad():
        expected = ln(x)
    assert_close(rnnkit.onnx.session(model, threads=1).run(None, {"input": x})[0], expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv_block_composed_from_pieces(dtype):
    """Conv1d → BatchNorm1d (lengths) → ReLU → Conv1d, composed on one Graph as an exporter would."""
    conv1 = rnnkit.Conv1d(3, 8, 5, padding="same", dtype=dtype, rng=0)
    conv2 = rnnkit.Conv1d(8, 4, 3, padding="same", padding_mode="replicate", dtype=dtype, rng=1)
    bn, relu = rnnkit.BatchNorm1d(8, dtype=dtype), rnnkit.ReLU(dtype=dtype)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 11)).astype(dtype)
    lengths = np.array([11, 4, 7, 1, 11])
    bn(conv1(x), lengths)
    bn.eval()
    g = Graph(dtype, opset=19)
    inp = g.add_input("input", g.elem_type, ["batch", 3, "length"])
    h = pieces.relu(g, pieces.batch_norm(g, bn, pieces.conv1d(g, conv1, inp), lengths_input(g)))
    g.add_output(pieces.conv1d(g, conv2, h), "output", g.elem_type, ["batch", 4, "length"])
    model = g.to_model()
    onnx.checker.check_model(model, full_check=True)
    with rnnkit.no_grad():
        expected = conv2(relu(bn(conv1(x), lengths)))
    assert_close(rnnkit.onnx.session(model, threads=1).run(None, {"input": x, "lengths": lengths})[0], expected, dtype)


def test_export_errors():
    with pytest.raises(ValueError, match="track_running_stats=False normalises with each batch's own statistics"):
        rnnkit.onnx.to_model(rnnkit.BatchNorm1d(3, track_running_stats=False))
    with pytest.raises(ValueError, match="LayerNormalization, which needs opset >= 17; got opset 16") as info:
        rnnkit.onnx.to_model(rnnkit.LayerNorm(3), opset=16)
    assert info.value.argument == "opset"
    with pytest.raises(ValueError, match="padding_mode='circular'.* opset >= 19; got opset 18"):
        rnnkit.onnx.to_model(rnnkit.Conv1d(2, 2, 3, padding=1, padding_mode="circular"), opset=18)
    with pytest.raises(ValueError, match="a Conv1d takes no lengths") as info:
        rnnkit.onnx.to_model(rnnkit.Conv1d(2, 2, 3), lengths=True)
    assert info.value.argument == "lengths"
    with pytest.raises(TypeError, match="cannot export a ReLU"):
        rnnkit.onnx.to_model(rnnkit.ReLU())


def test_older_opsets_export_conv_and_batch_norm():
    """Opset 14 (the oldest export takes) holds Conv, Pad (reflect, edge) and BatchNormalization."""
    conv = rnnkit.Conv1d(2, 3, 3, padding=1, padding_mode="reflect", rng=0)
    x = np.random.default_rng(5).standard_normal((2, 2, 6)).astype(np.float32)
    with rnnkit.no_grad():
        expected = conv(x)
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(conv, opset=14), threads=1)
    assert_close(sess.run(None, {"input": x})[0], expected, np.float32)
    bn = trained_batch_norm(np.float32)
    x = np.random.default_rng(6).standard_normal((2, 3, 6)).astype(np.float32)
    with rnnkit.no_grad():
        expected = bn(x)
    sess = rnnkit.onnx.session(rnnkit.onnx.to_model(bn, opset=14), threads=1)
    assert_close(sess.run(None, {"input": x})[0], expected, np.float32)
