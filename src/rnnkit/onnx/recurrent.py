"""A recurrent stack as ONNX operators, with rnnkit's semantics (time-major values throughout).

Each layer is ONNX's own ``LSTM`` / ``GRU`` / ``RNN`` operator, which takes both directions of a
layer at once, with its own gate orders (each kind's ``onnx_gates``, :mod:`rnnkit.kinds`)::

    PyTorch / rnnkit   LSTM i, f, g, o      GRU r, z, n
    ONNX               LSTM i, o, f, c      GRU z, r, h      P = [w_ci, w_co, w_cf]

W (D, G·H, I), R (D, G·H, H) and B (D, 2·G·H) = [b_ih; b_hh] are the reordered weights. What a
kind's options say, the operator says in its own attributes and inputs (the LSTM's peepholes P,
the GRU's ``linear_before_reset``: 1 for PyTorch's reset-after form, 0 for Cho's, the RNN's
``activations``): each kind's :class:`OnnxForm` translates both ways. The operator's Y is
(T, D, B, H); the next layer reads (T, B, D·H): a Transpose and a Reshape between layers.

Where the operator does not fit, a layer is composed from standard operators instead: the input
projection for all steps as one MatMul, then one ``Scan`` per direction whose body is the cell's
step, the spec's equations (:func:`_scan_layer`). That is the path of LSTM layers with a
projection (``proj_size``: ONNX's LSTM has none), of layer-normalised cells (``layer_norm``:
opset 17's ``LayerNormalization`` on the two products and the LSTM's cell state) and of float64
modules (onnxruntime's LSTM, GRU and RNN kernels are float32 only; its MatMul, Sigmoid, Tanh and Scan run float64).

Lengths (``sequence_lens``) follow PyTorch's packed sequences in both implementations: outputs
past a sequence's length are zero, its final state is the one at its last valid step, and the
reverse direction starts at that step (onnxruntime's operators do all three; the tests check it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnkit.kernels.base import Weights
from rnnkit.kinds import KINDS, NONLINEARITIES, CellKind
from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.errors import ExportValueError
from rnnkit.onnx.graph import Graph, dim, matmul_t, step_mask
from rnnkit.onnx.spec import StackSpec


def to_onnx_order(a: np.ndarray, kind: CellKind) -> np.ndarray:
    """PyTorch's stacked gate blocks (rows) in ONNX's order."""
    blocks = np.split(a, kind.num_gates, axis=0)
    return np.concatenate([blocks[k] for k in kind.order(kind.onnx_gates)], axis=0)


def from_onnx_order(a: np.ndarray, kind: CellKind) -> np.ndarray:
    """ONNX's stacked gate blocks (rows) in PyTorch's order: the inverse of :func:`to_onnx_order`."""
    order = kind.order(kind.onnx_gates)
    blocks = np.split(a, kind.num_gates, axis=0)
    return np.concatenate([blocks[order.index(k)] for k in range(kind.num_gates)], axis=0)


def peephole_order(kind: CellKind) -> list[str]:
    """The gates of ONNX's P input, in its gate order: [w_ci, w_co, w_cf] for ONNX's i, o, f."""
    return [g for g in kind.onnx_gates if g in kind.sigmoid_gates]


@dataclass(frozen=True)
class OnnxForm:
    """One kind in ONNX: what its options are in the operator, both ways, and its Scan step."""

    activations: tuple[tuple[str, ...], ...]           # the operator's activations rnnkit computes (a direction's)
    operator: Callable[[StackSpec, list[dict], int], tuple[list, dict]]  # -> (inputs after the states, attributes)
    options: Callable[[dict, dict], dict]              # (node attributes, weights W, R, B, P) -> the kind's options
    step: Callable                                     # (body, spec, w, state, xp) -> new state (see _step_body)


FORMS: dict[str, OnnxForm] = {}


def onnx_form(name: str, **parts) -> Callable[[Callable], Callable]:
    """Register the ONNX form of the kind ``name``, whose step function this decorates."""
    def decorate(step: Callable) -> Callable:
        FORMS[KINDS[name].name] = OnnxForm(step=step, **parts)
        return step
    return decorate


def needs_scan(spec: StackSpec, dtype) -> bool:
    """Whether layers are composed from standard operators rather than ONNX's recurrent ones:
    options the operator does not compute (the LSTM's projection), or float64."""
    return not spec.kind.operator_computes(spec.options) or np.dtype(dtype) != np.float32


def stack(g: Graph, spec: StackSpec, x: str, states: tuple[str, ...], lengths: str | None):
    """x (T, B, I), states (L·D, B, n) each, lengths (B,) int64 or None.

    Returns (output (T, B, D·H_out), final states (L·D, B, n) each). Dropout between layers is
    the identity: an exported graph is for inference.
    """
    D = spec.num_directions
    finals: list[list[str]] = [[] for _ in states]
    for k in range(spec.num_layers):
        s0 = tuple(g.op("Slice", s, g.ints([k * D]), g.ints([(k + 1) * D]), g.ints([0]), hint=f"s0_l{k}")
                   for s in states)                                                    # (D, B, n)
        layer = _scan_layer if needs_scan(spec, g.dtype) else _operator_layer
        x, fin = layer(g, spec, k, x, s0, lengths)
        for out, f in zip(finals, fin):
            out.append(f)
    return x, tuple(f[0] if len(f) == 1 else g.op("Concat", *f, axis=0, hint="state_n") for f in finals)


def _operator_layer(g: Graph, spec: StackSpec, k: int, x: str, s0: tuple, lengths: str | None):
    """One layer, both directions, as ONNX's LSTM / GRU / RNN operator."""
    kind, D, H = spec.kind, spec.num_directions, spec.hidden_size
    cells = [spec.cell_params(k, d) for d in range(D)]
    W = g.const(np.stack([to_onnx_order(c["weight_ih"], kind) for c in cells]), f"W_l{k}")
    R = g.const(np.stack([to_onnx_order(c["weight_hh"], kind) for c in cells]), f"R_l{k}")
    B = "" if not spec.bias else g.const(np.stack([
        np.concatenate([to_onnx_order(c["bias_ih"], kind), to_onnx_order(c["bias_hh"], kind)]) for c in cells
    ]), f"B_l{k}")
    seq = "" if lengths is None else g.op("Cast", lengths, to=6, hint="lengths_int32")   # ONNX wants int32
    extra, attrs = FORMS[kind.name].operator(spec, cells, k)
    inputs = [x, W, R, B, seq, *s0, *(g.const(a, f"{name}_l{k}") for name, a in extra)]
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward", **attrs}
    outs = g.op(kind.title, *inputs, outputs=1 + len(kind.states), hint=f"{kind.name}_l{k}", **attrs)
    y = g.op("Transpose", outs[0], perm=[0, 2, 1, 3], hint=f"y_l{k}")                  # (T, B, D, H)
    y = g.op("Reshape", y, g.ints([0, 0, -1]), hint=f"out_l{k}")                       # (T, B, D·H)
    return y, tuple(outs[1:])


def _scan_layer(g: Graph, spec: StackSpec, k: int, x: str, s0: tuple, lengths: str | None):
    """One layer from standard operators: a Scan per direction, outputs side by side."""
    D = spec.num_directions
    mask = None
    if lengths is not None:                                     # (T, B, 1) bool: step t valid for b
        valid = step_mask(g, dim(g, x, 0, "steps"), lengths)
        mask = g.op("Unsqueeze", valid, g.ints([2]), hint="mask")
    ys, finals = [], [[] for _ in s0]
    for d in range(D):
        first = tuple(g.op("Gather", s, g.ints(d), axis=0) for s in s0)              # (B, n)
        tag = f"l{k}" + ("_reverse" if d else "")
        y, fin = _scan_direction(g, spec, spec.cell_params(k, d), x, first, mask, lengths, d == 1, tag)
        ys.append(y)
        for out, f in zip(finals, fin):
            out.append(g.op("Unsqueeze", f, g.ints([0])))                          # (1, B, n)
    y = ys[0] if D == 1 else g.op("Concat", *ys, axis=-1, hint=f"out_l{k}")
    return y, tuple(f[0] if D == 1 else g.op("Concat", *f, axis=0) for f in finals)


def _scan_direction(g: Graph, spec: StackSpec, w: dict, x: str, s0: tuple, mask: str | None,
                    lengths: str | None, reverse: bool, tag: str):
    """One direction: the input projection for all steps at once (one MatMul), then a Scan over
    time of the recurrent step. With lengths, the reverse direction reads each sequence backwards
    within its own length (ReverseSequence), as rnnkit's stack does; without, Scan runs backwards.
    """
    xp = matmul_t(g, x, w["weight_ih"], f"xw_{tag}")                                  # (T, B, G·H)
    if spec.options.get("layer_norm"):
        xp = layer_norm(g, xp, w["ln_weight_ih"], f"ln_ih_{tag}")
    if spec.bias:
        xp = g.op("Add", xp, g.const(_input_side_bias(spec, w), f"b_{tag}"))
    flip = reverse and lengths is not None
    if flip:
        xp = g.op("ReverseSequence", xp, lengths, batch_axis=1, time_axis=0)
    body = _step_body(g, spec, w, masked=mask is not None, tag=tag)
    direction = [int(reverse and not flip)]
    scan_in = [xp] + ([mask] if mask is not None else [])
    outs = g.op("Scan", *s0, *scan_in, outputs=len(s0) + 1, hint=f"scan_{tag}", body=body,
                num_scan_inputs=len(scan_in), scan_input_directions=direction * len(scan_in),
                scan_output_directions=direction)
    y = outs[-1]                                                                      # (T, B, H_out)
    if flip:
        y = g.op("ReverseSequence", y, lengths, batch_axis=1, time_axis=0)
    return y, tuple(outs[:-1])


def _input_side_bias(spec: StackSpec, w: dict) -> np.ndarray:
    """b_ih plus the part of b_hh that adds to the pre-activation outside any product, folded into
    the input projection: what the cell's kernel adds there (all of b_hh, except the reset-after
    GRU's b_hn, which r multiplies)."""
    kernel = spec.kind.kernel(spec.hidden_size, spec.options)
    return kernel.input_side_bias(Weights(w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"]))


def layer_norm(g: Graph, v: str, gain: np.ndarray, hint: str, shift: np.ndarray | None = None) -> str:
    """LN(v; γ, β) over the last axis (the spec's layer-normalised cells): opset 17's
    LayerNormalization, ε = 1e-5; no shift is a shift of zeros."""
    if g.opset < 17:
        raise ExportValueError("opset", f"rnnkit.onnx: a layer_norm=True cell is exported with LayerNormalization, "
                                        f"which needs opset >= 17; got opset {g.opset}")
    beta = np.zeros_like(gain) if shift is None else shift
    stash = 11 if np.dtype(g.dtype) == np.float64 else 1      # the statistics in the module's dtype (default: float32)
    return g.op("LayerNormalization", v, g.const(gain, f"{hint}_gain"), g.const(beta, f"{hint}_shift"), axis=-1,
                epsilon=1e-5, stash_type=stash, hint=hint)


def _recurrent_product(b: Graph, spec: StackSpec, w: dict, h: str) -> str:
    """h W_hhᵀ, layer-normalised with γ_hh under layer_norm=True."""
    hw = matmul_t(b, h, w["weight_hh"], "hw")
    return layer_norm(b, hw, w["ln_weight_hh"], "ln_hh") if spec.options.get("layer_norm") else hw


def _step_body(g: Graph, spec: StackSpec, w: dict, masked: bool, tag: str):
    """The Scan body: state(s) and one step's projected input (and mask) in; new state(s) and the
    step's output out. With a mask, a padded step carries the state unchanged and outputs zero.
    Zoneout (``zoneout=p``) is its eval-mode expectation, each new state part blended with the
    previous one: s_t = s̃_t + p·(s_{t-1} − s̃_t); recurrent dropout is the identity in eval mode."""
    onnx = require_onnx()
    b = g.subgraph(f"{spec.kind.name}_step_{tag}")
    names = spec.kind.states
    state = tuple(b.add_input(n, b.elem_type, None) for n in names)                  # (B, n) each
    xp = b.add_input("xp", b.elem_type, None)                                        # (B, G·H)
    m = b.add_input("m", onnx.TensorProto.BOOL, None) if masked else None            # (B, 1)
    new = FORMS[spec.kind.name].step(b, spec, w, state, xp)
    p = spec.options.get("zoneout", 0.0)
    if p:
        keep = b.const(np.array(p), "zoneout")
        new = tuple(b.op("Add", n, b.op("Mul", keep, b.op("Sub", s, n)), hint=f"{name}_zoned")
                    for n, s, name in zip(new, state, names))
    y = new[0]
    if masked:
        new = tuple(b.op("Where", m, n, s) for n, s in zip(new, state))
        y = b.op("Where", m, y, b.const(np.zeros((), g.dtype), "zero"))
    for name, value in zip(names, new):
        b.add_output(value, name + "_next", b.elem_type, None)
    b.add_output(y, "y", b.elem_type, None)
    return b.to_graph()


def _lstm_operator(spec: StackSpec, cells: list[dict], k: int) -> tuple[list, dict]:
    """The peepholes as the input P (D, 3H), in ONNX's order."""
    if not spec.options["peephole"]:
        return [], {}
    order = peephole_order(spec.kind)
    return [("P", np.stack([np.concatenate([c[f"weight_c{gate}"] for gate in order]) for c in cells]))], {}


def _lstm_options(attrs: dict, w: dict) -> dict:
    return {"peephole": "P" in w}


@onnx_form("lstm", activations=(("Sigmoid", "Tanh", "Tanh"),), operator=_lstm_operator,
           options=_lstm_options)
def _lstm_step(b: Graph, spec: StackSpec, w: dict, state: tuple, xp: str) -> tuple:
    """a = xp + h W_hhᵀ;  i = σ(a_i + w_ci ⊙ c);  f = σ(a_f + w_cf ⊙ c);  ĝ = tanh(a_g);
    c' = f ⊙ c + i ⊙ ĝ;  o = σ(a_o + w_co ⊙ c');  h' = o ⊙ tanh(c')  [then h' W_hrᵀ]."""
    h, c = state
    H = spec.hidden_size
    a = b.op("Add", xp, _recurrent_product(b, spec, w, h), hint="a")
    a_i, a_f, a_g, a_o = b.op("Split", a, b.ints([H] * 4), axis=1, outputs=4, hint="a")
    if spec.options["peephole"]:
        a_i = b.op("Add", a_i, b.op("Mul", c, b.const(w["weight_ci"], "w_ci")))
        a_f = b.op("Add", a_f, b.op("Mul", c, b.const(w["weight_cf"], "w_cf")))
    i, f, gg = b.op("Sigmoid", a_i, hint="i"), b.op("Sigmoid", a_f, hint="f"), b.op("Tanh", a_g, hint="g")
    c_new = b.op("Add", b.op("Mul", f, c), b.op("Mul", i, gg), hint="c_new")
    if spec.options["peephole"]:
        a_o = b.op("Add", a_o, b.op("Mul", c_new, b.const(w["weight_co"], "w_co")))
    c_out = layer_norm(b, c_new, w["ln_weight_c"], "ln_c", w["ln_bias_c"]) if spec.options.get("layer_norm") else c_new
    h_new = b.op("Mul", b.op("Sigmoid", a_o, hint="o"), b.op("Tanh", c_out), hint="m")
    if spec.proj_size:
        h_new = matmul_t(b, h_new, w["weight_hr"], "h_new")                           # (B, P)
    return h_new, c_new


@onnx_form("gru", activations=(("Sigmoid", "Tanh"),),
           operator=lambda spec, cells, k: ([], {"linear_before_reset": int(spec.options["reset_after"])}),
           options=lambda attrs, w: {"reset_after": bool(attrs.get("linear_before_reset", 0))})
def _gru_step(b: Graph, spec: StackSpec, w: dict, state: tuple, xp: str) -> tuple:
    """r = σ(xp_r + h W_hrᵀ);  z = σ(xp_z + h W_hzᵀ);
    n = tanh(xp_n + r ⊙ (h W_hnᵀ + b_hn))  (reset-after)  or  tanh(xp_n + (r ⊙ h) W_hnᵀ)  (Cho);
    h' = (1 − z) ⊙ n + z ⊙ h."""
    (h,) = state
    H = spec.hidden_size
    x_r, x_z, x_n = b.op("Split", xp, b.ints([H] * 3), axis=1, outputs=3, hint="xp")
    w_rz, w_n = w["weight_hh"][: 2 * H], w["weight_hh"][2 * H:]
    if spec.options.get("layer_norm"):                 # LN over all 3H of the product, then split
        hw_r, hw_z, hn = b.op("Split", _recurrent_product(b, spec, w, h), b.ints([H] * 3), axis=1, outputs=3,
                              hint="hw")
    else:
        hw_r, hw_z = b.op("Split", matmul_t(b, h, w_rz, "hw_rz"), b.ints([H, H]), axis=1, outputs=2, hint="hw")
    r = b.op("Sigmoid", b.op("Add", x_r, hw_r), hint="r")
    z = b.op("Sigmoid", b.op("Add", x_z, hw_z), hint="z")
    if spec.options["reset_after"]:
        hn = hn if spec.options.get("layer_norm") else matmul_t(b, h, w_n, "hw_n")
        if spec.bias:
            hn = b.op("Add", hn, b.const(w["bias_hh"][2 * H:], "b_hn"))
        n = b.op("Tanh", b.op("Add", x_n, b.op("Mul", r, hn)), hint="n")
    else:
        n = b.op("Tanh", b.op("Add", x_n, matmul_t(b, b.op("Mul", r, h), w_n, "rh_w")), hint="n")
    one_minus_z = b.op("Sub", b.const(np.ones((), b.dtype), "one"), z)
    return (b.op("Add", b.op("Mul", one_minus_z, n), b.op("Mul", z, h), hint="h_new"),)


def _rnn_activations(options: dict) -> tuple[str, ...]:
    """φ as ONNX names it: ("Tanh",) or ("Relu",)."""
    return (options["nonlinearity"].capitalize(),)


def _rnn_options(attrs: dict, w: dict) -> dict:
    acts = [a.lower() for a in attrs.get("activations", [])]
    return {"nonlinearity": acts[0] if acts and acts[0] in NONLINEARITIES else "tanh"}


@onnx_form("rnn", activations=tuple((n.capitalize(),) for n in NONLINEARITIES), options=_rnn_options,
           operator=lambda spec, cells, k: ([], {"activations": list(_rnn_activations(spec.options))
                                                 * spec.num_directions}))
def _rnn_step(b: Graph, spec: StackSpec, w: dict, state: tuple, xp: str) -> tuple:
    """h' = φ(xp + h W_hhᵀ), φ = tanh or relu."""
    (h,) = state
    a = b.op("Add", xp, _recurrent_product(b, spec, w, h), hint="a")
    return (b.op(_rnn_activations(spec.options)[0], a, hint="h_new"),)
