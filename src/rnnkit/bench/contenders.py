"""The contenders of one benchmark point, each run in a process of its own.

:mod:`rnnkit.bench.worker` builds one contender for one point in a fresh process and times it. Every contender gets the same weights (an rnnkit layer's, seeded), the same
input and output gradient, and the same number of threads. A peer that is not installed, or that
lacks the configuration (PyTorch has no peephole LSTM), reports ``skipped`` with the reason.

- ``rnnkit``: the layer's forward + ``backward(dout)``; inference under ``no_grad``.
- ``torch``: ``torch.nn.LSTM/GRU/RNN`` forward + ``out.backward(dout)``; inference under no_grad.
  For a layer-normalised LSTM, which torch.nn lacks, what PyTorch users write instead: the spec's
  equations with ``torch.nn.LayerNorm`` in a Python loop over the steps (:func:`torch_ln_lstm_fns`).
- ``onnxruntime``: inference of the ONNX graph of the same layer (:func:`rnnkit.onnx.to_model`).
- Low precision (``Point.precision``): rnnkit's bfloat16 is the same layer under
  ``rnnkit.autocast()`` (its products in bfloat16, :mod:`rnnkit.precision`), its int8 the layer
  of ``rnnkit.quantize_dynamic`` (inference); PyTorch's bfloat16 is its own layer under
  ``torch.autocast("cpu", torch.bfloat16)`` (training: the forward under autocast, float32 master
  weights), its int8 is ``torch.ao.quantization.quantize_dynamic`` (inference); onnxruntime's
  int8 is its ``quantize_dynamic`` of the same graph (per-channel int8 weights, DynamicQuantizeLSTM
  for the LSTM); onnxruntime's CPU provider has no bfloat16 recurrent operator.
- ``floor``: only the matrix products of the step (see :mod:`rnnkit.bench.points`) on rnnkit's
  full-width micro-kernel, into preallocated outputs: what the step would cost if everything else
  were free.

:func:`peak_gflops` measures the machine: one large float32 product by rnnkit's kernel, by NumPy's
BLAS and by PyTorch's, each in its own process; the best of them is the peak each point's GFLOP/s
is compared with.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from rnnkit.bench.points import Point
from rnnkit.kinds import KINDS, layer_class


class Skipped(Exception):
    """The contender cannot run this point; the message says why."""


def import_torch():
    """torch, with the benchmark's thread count set, or Skipped if it is not installed."""
    try:
        import torch
    except ImportError as exc:
        raise Skipped("torch is not installed (pip install 'rnnkit[bench]')") from exc
    torch.set_num_threads(int(os.environ.get("RNNKIT_BENCH_THREADS", "2")))
    return torch


def _layer(point: Point):
    return layer_class(point.cell)(point.I, point.H, point.layers, bidirectional=point.bidirectional, rng=0,
                                   **point.options())


def bench_data(point: Point) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    dirs = 2 if point.bidirectional else 1
    x = rng.standard_normal((point.T, point.B, point.I)).astype(np.float32)
    dout = rng.standard_normal((point.T, point.B, dirs * point.H)).astype(np.float32)
    return x, dout


def rnnkit_fns(point: Point, x: np.ndarray, dout: np.ndarray):
    import rnnkit
    from rnnkit.precision import bfloat16_usable, int8_usable
    if point.precision == "bfloat16" and not bfloat16_usable():
        raise Skipped("this CPU has no bfloat16 unit (AVX512_BF16 or AMX)")
    if point.precision == "int8":
        if not int8_usable():
            raise Skipped("this CPU has no VNNI")
        layer = rnnkit.quantize_dynamic(_layer(point))

        def quantized_infer():
            layer(x)
        return None, quantized_infer
    layer = _layer(point)
    precision = rnnkit.autocast(enabled=point.precision == "bfloat16")

    def train():
        with precision:
            layer(x)
            layer.backward(dout)

    def infer():
        with rnnkit.no_grad(), precision:
            layer(x)
    return train, infer


def torch_fns(point: Point, x: np.ndarray, dout: np.ndarray):
    if point.peephole:
        raise Skipped("PyTorch has no peephole LSTM")
    if point.layer_norm:
        return torch_ln_lstm_fns(point, x, dout)
    torch = import_torch()
    cls = getattr(torch.nn, KINDS[point.cell].title)
    layer = cls(point.I, point.H, point.layers, bidirectional=point.bidirectional)
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in _layer(point).state_dict().items()})
    tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)
    if point.precision == "int8":
        return None, _torch_int8_infer(torch, layer, tx)
    if point.precision == "bfloat16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # oneDNN refuses a bfloat16 LSTM here ("could not create a primitive descriptor") and
        # would emulate the other layers' products: nothing a bfloat16 row could compare
        raise Skipped("this CPU has no bfloat16 unit (PyTorch's oneDNN has no bfloat16 primitive on it)")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if point.precision == "bfloat16" \
        else contextlib.nullcontext

    def train():
        with autocast():
            out, _ = layer(tx)
        out.float().backward(tdout)

    def infer():
        with torch.no_grad(), autocast():
            layer(tx)
    return train, infer


def _torch_int8_infer(torch, layer, tx):
    """Inference of ``layer`` dynamically quantised (int8 weights per output channel). PyTorch
    swaps the sub-modules of a module, never the module itself: hence the one-module container."""
    import warnings
    with warnings.catch_warnings():                  # torch.ao.quantization's deprecation notice
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(layer), {type(layer)}, dtype=torch.qint8)
    quantised = model[0]
    if type(quantised) is type(layer):
        raise Skipped(f"torch {torch.__version__}'s quantize_dynamic has no int8 {type(layer).__name__}")

    def infer():
        with torch.no_grad():
            quantised(tx)
    return infer


def torch_ln_lstm_fns(point: Point, x: np.ndarray, dout: np.ndarray):
    """The layer-normalised LSTM as PyTorch users write it: ``LayerNorm`` modules around the two
    products and the cell state, a Python loop over the steps (the input product for all steps at
    once), autograd for backward; the same weights as rnnkit's layer."""
    if point.cell != "lstm" or point.layers != 1 or point.bidirectional:
        raise Skipped("the PyTorch loop is written for one layer-normalised LSTM layer, one direction")
    torch = import_torch()
    H = point.H
    sd = {k.removesuffix("_l0"): torch.from_numpy(v).requires_grad_() for k, v in _layer(point).state_dict().items()}
    ln_ih, ln_hh, ln_c = torch.nn.LayerNorm(4 * H, bias=False), torch.nn.LayerNorm(4 * H, bias=False), \
        torch.nn.LayerNorm(H)
    tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)

    def forward():
        h = c = torch.zeros(point.B, H)
        ax = ln_ih(tx @ sd["weight_ih"].T) + sd["bias_ih"] + sd["bias_hh"]               # (T, B, 4H)
        outs = []
        for t in range(point.T):
            a = ax[t] + ln_hh(h @ sd["weight_hh"].T)
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(ln_c(c))
            outs.append(h)
        return torch.stack(outs)

    def train():
        forward().backward(tdout)

    def infer():
        with torch.no_grad():
            forward()
    return train, infer


def onnxruntime_fns(point: Point, x: np.ndarray, dout: np.ndarray):
    if point.precision == "bfloat16":
        raise Skipped("onnxruntime's CPU provider has no bfloat16 recurrent operators")
    try:
        from rnnkit.onnx import session, to_model, zero_state_feeds
        model = to_model(_layer(point))
        if point.precision == "int8":
            model = _ort_int8(model)
        sess = session(model, int(os.environ["RNNKIT_BENCH_THREADS"]))
    except ImportError as exc:
        raise Skipped("onnx/onnxruntime are not installed (pip install 'rnnkit[bench]')") from exc
    feeds = {"input": x, **zero_state_feeds(sess, x.shape[1])}         # x (T, B, I): fresh states
    return None, lambda: sess.run(None, feeds)


def _ort_int8(model):
    """onnxruntime's dynamic quantisation of ``model``: int8 weights per output channel (the
    LSTM becomes a DynamicQuantizeLSTM), activations quantised per call."""
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-int8-") as tmp:
        source, target = os.path.join(tmp, "float32.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(model, source)
        root, level = logging.getLogger(), logging.getLogger().level
        root.setLevel(logging.ERROR)             # its advice to pre-process a graph it handles as it is
        try:
            quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        quantised = onnx.load(target)
    before, after = ({n.op_type for n in m.graph.node} for m in (model, quantised))
    if after == before:
        raise Skipped(f"onnxruntime's quantize_dynamic quantises none of {', '.join(sorted(before))}")
    return quantised


def floor_fns(point: Point, x: np.ndarray, dout: np.ndarray):
    """The step's matrix products alone, each into a preallocated output, on rnnkit's full-width
    micro-kernel: the recurrent weights packed once per call, then one product per step."""
    if point.precision != "float32":
        raise Skipped("the GEMM floor is that of the float32 products")
    from rnnkit.engine.gemm import gemm, gemm_packed, pack
    rng, G, T, B = np.random.default_rng(2), KINDS[point.cell].num_gates, point.T, point.B

    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def e(*shape):
        return np.empty(shape, np.float32)
    cells = [{"w_ih": a(G * h, i), "w_hh": a(G * h, h), "x": a(T * B, i), "h": a(T, B, h), "da": a(T, B, G * h),
              "gates": e(T, B, G * h), "dh": e(T, B, h), "dw_ih": e(G * h, i), "dw_hh": e(G * h, h), "dx": e(T * B, i)}
             for i, h in point.cells()]

    def infer():
        for c in cells:
            gemm(c["x"], c["w_ih"], c["gates"].reshape(T * B, -1), trans_b=True)
            w_hh_t = pack(c["w_hh"], trans_b=True)
            for t in range(T):
                gemm_packed(c["h"][t], w_hh_t, c["gates"][t])

    def train():
        infer()
        for c in cells:
            w_hh = pack(c["w_hh"])
            for t in range(T):
                gemm_packed(c["da"][t], w_hh, c["dh"][t])
            da = c["da"].reshape(T * B, -1)
            gemm(da, c["h"].reshape(T * B, -1), c["dw_hh"], trans_a=True)
            gemm(da, c["x"], c["dw_ih"], trans_a=True)
            gemm(da, c["w_ih"], c["dx"])
    return train, infer


PEAK_SHAPE = (3200, 512, 2048)       # M, K, N: large enough that every library runs at its peak


def peak_gflops(contender: str) -> float:
    """float32 GFLOP/s of one large product, (M × K)·(K × N), by ``contender``'s own GEMM."""
    from rnnkit.bench.measure import median_time
    m, k, n = PEAK_SHAPE
    rng = np.random.default_rng(3)
    A, Bm = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    C = np.empty((m, n), np.float32)
    if contender == "rnnkit":
        from rnnkit.engine.gemm import gemm

        def run():
            gemm(A, Bm, C)
    elif contender == "numpy":
        def run():
            np.matmul(A, Bm, out=C)
    elif contender == "torch":
        torch = import_torch()
        ta, tb, tc = torch.from_numpy(A), torch.from_numpy(Bm), torch.from_numpy(C)

        def run():
            torch.mm(ta, tb, out=tc)
    else:
        raise Skipped(f"{contender} has no GEMM to time")
    return 2.0 * m * k * n / median_time(run, 1.0) / 1e9


CONTENDERS = {"rnnkit": rnnkit_fns, "torch": torch_fns, "onnxruntime": onnxruntime_fns, "floor": floor_fns}
