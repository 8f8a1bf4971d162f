"""The inputs an exported graph shares with the module's forward: sequences, states, lengths.

Initial states are graph inputs like any other, listed by every runtime (onnxruntime's
``get_inputs()``, Triton, the C++ and web runtimes) and required: a fresh sequence feeds zeros
of the state's shape, a stream feeds the ``h_n`` (, ``c_n``) of its previous call. (A default
value, an overridable initializer, would hide them from ``get_inputs()``, and onnxruntime warns
on every session it opens that it cannot fold such inputs as constants.)
"""

from __future__ import annotations

import numpy as np

from rnnkit.onnx.deps import require_onnx
from rnnkit.onnx.graph import Graph
from rnnkit.onnx.spec import StackSpec

STATE_NAMES = ("h", "c")          # LSTM states (h, c); the others have h only


def sequence_input(g: Graph, spec: StackSpec, batch_first: bool) -> str:
    """The ``input`` graph input, returned time-major (T, B, I) (a Transpose for batch_first:
    onnxruntime rejects the recurrent operators' own batch-major ``layout=1``)."""
    shape = ["batch", "time", spec.input_size] if batch_first else ["time", "batch", spec.input_size]
    x = g.add_input("input", g.elem_type, shape)
    return g.op("Transpose", x, perm=[1, 0, 2], hint="input_time_major") if batch_first else x


def batch_size(g: Graph, x: str, axis: int) -> str:
    """The batch size of value ``x`` (its ``axis``), as an int64 vector of one element."""
    return g.op("Slice", g.op("Shape", x, hint="shape"), g.ints([axis]), g.ints([axis + 1]), hint="batch")


def state_inputs(g: Graph, spec: StackSpec, suffix: str = "0", stacked: bool = True) -> tuple[str, ...]:
    """Graph inputs ``h0`` (and ``c0``): zeros for a fresh sequence.

    stacked: shapes (L·D, B, n), as a layer's states; otherwise (B, n), as a cell's.
    """
    lead = [spec.num_layers * spec.num_directions] if stacked else []
    return tuple(g.add_input(name + suffix, g.elem_type, lead + ["batch", n])
                 for name, n in zip(STATE_NAMES, spec.state_sizes()))


def zero_states(g: Graph, spec: StackSpec, batch: str) -> tuple[str, ...]:
    """Zero initial states (L·D, B, n) each, not graph inputs: for models whose forward starts
    every sequence from zeros (the sequence estimators)."""
    lead = [spec.num_layers * spec.num_directions]
    return tuple(_to_batch(g, g.const(np.zeros(lead + [1, n], g.dtype), f"{name}0_zero"), lead, batch, n, f"{name}0")
                 for name, n in zip(STATE_NAMES, spec.state_sizes()))


def _to_batch(g: Graph, v: str, lead: list[int], batch: str, n: int, name: str) -> str:
    """v (lead..., 1 or B, n) expanded to (lead..., B, n)."""
    shape = g.op("Concat", *(([g.ints(lead)] if lead else []) + [batch, g.ints([n])]), axis=0, hint=f"{name}_shape")
    return g.op("Expand", v, shape, hint=f"{name}_batch")


def lengths_input(g: Graph) -> str:
    """``lengths`` (B,) int64: each sequence's valid steps, in [1, T]."""
    return g.add_input("lengths", require_onnx().TensorProto.INT64, ["batch"])


def state_outputs(g: Graph, spec: StackSpec, finals: tuple, suffix: str = "_n", stacked: bool = True) -> None:
    lead = [spec.num_layers * spec.num_directions] if stacked else []
    for name, value, n in zip(STATE_NAMES, finals, spec.state_sizes()):
        g.add_output(value, name + suffix, g.elem_type, lead + ["batch", n])
