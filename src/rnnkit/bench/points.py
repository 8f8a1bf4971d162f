"""What the benchmark measures: the grid of layer shapes and the matrix-product work of each.

A point is one layer configuration run on a (T, B, I) float32 input. Its *GEMM work* is the count
of multiply-adds (×2 = flops) in the matrix products a training or inference step cannot avoid —
the input projection, the T recurrent products and, for training, their backward and the weight
gradients — the same count for every contender, so flops/time compares like with like.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rnnkit.kinds import GATED_FIRST, KINDS

# (T, B, I, H) of the table: two overhead-bound sizes, three GEMM-bound ones.
SIZES = [(100, 1, 32, 32), (100, 8, 64, 64), (50, 32, 128, 256), (50, 64, 256, 512), (25, 64, 512, 1024)]
STREAM_SIZES = [32, 128, 512]                # hidden sizes of the single-step streaming latency
# float32, or a low precision each contender offers in its own way: bfloat16 (products in bf16,
# float32 accumulation; PyTorch under torch.autocast("cpu")), int8 (weights quantised per output
# channel, activations per call: PyTorch's quantize_dynamic, onnxruntime's DynamicQuantizeLSTM),
# inference only.
PRECISIONS = ("float32", "bfloat16", "int8")
LOW_PRECISION_SIZES = SIZES[2:]              # the GEMM-bound sizes: where fewer bits can pay
LOW_PRECISION_CELLS = ("lstm", "gru")        # the cells both peers quantise


@dataclass(frozen=True)
class Point:
    cell: str                # a kind's name: "lstm", "gru" or "rnn" (rnnkit.kinds)
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    bidirectional: bool = False
    peephole: bool = False
    layer_norm: bool = False
    precision: str = "float32"   # one of PRECISIONS

    @property
    def name(self) -> str:
        extra = (f" {self.layers}-layer" if self.layers > 1 else "") + (" bidir" if self.bidirectional else "") \
            + (" peephole" if self.peephole else "") + (" layer_norm" if self.layer_norm else "") \
            + (f" {self.precision}" if self.precision != "float32" else "")
        return f"{self.cell}{extra} T={self.T} B={self.B} I={self.I} H={self.H}"

    @property
    def overhead_bound(self) -> bool:
        return self.B * self.H <= 8 * 64

    def to_json(self) -> dict:
        return asdict(self)

    def options(self) -> dict:
        """The layer's options beyond its sizes (the peephole, layer_norm)."""
        return {name: True for name in ("peephole", "layer_norm") if getattr(self, name)}

    def cells(self) -> list[tuple[int, int]]:
        """(input size, hidden size) of every cell (layer × direction) in the stack."""
        dirs = 2 if self.bidirectional else 1
        return [(self.I if layer == 0 else dirs * self.H, self.H)
                for layer in range(self.layers) for _ in range(dirs)]

    def gemm_flops(self, train: bool) -> float:
        """Flops of the unavoidable matrix products of one inference or training step."""
        G, rows, total = KINDS[self.cell].num_gates, self.T * self.B, 0.0
        for i, h in self.cells():
            forward = rows * G * h * (i + h)                     # X W_ihᵀ and the T products h W_hhᵀ
            total += forward * (3 if train else 1)               # backward: dX, dh, dW_ih, dW_hh
        return 2.0 * total


@dataclass(frozen=True)
class StreamPoint:
    """One cell step on a batch of one (I = H): the latency of running a model on a live stream."""

    cell: str
    H: int

    @property
    def name(self) -> str:
        return f"{self.cell} step B=1 H={self.H}"

    def to_json(self) -> dict:
        return asdict(self)


def grid(quick: bool = False) -> list[Point]:
    """The full grid (cells × the five sizes, plus a bidirectional and a peephole LSTM, and the
    layer-normalised LSTM at the two sizes of its target) or a quick one."""
    if quick:
        return [Point("lstm", *SIZES[0]), Point("gru", *SIZES[1]), Point("lstm", 10, 8, 64, 128, layers=2,
                                                                           bidirectional=True)]
    points = [Point(cell, *size) for cell in GATED_FIRST for size in SIZES]
    mid = SIZES[2]
    return points + [Point("lstm", *mid, layers=2, bidirectional=True), Point("lstm", *mid, peephole=True)] \
        + [Point("lstm", *size, layer_norm=True) for size in SIZES[2:4]]


def low_precision_grid(precisions: tuple[str, ...], quick: bool = False) -> list[Point]:
    """The points of each low precision asked for: the gated cells at the GEMM-bound sizes (the
    first of them with ``quick``). Each has a float32 twin in :func:`grid` to be compared with."""
    sizes = LOW_PRECISION_SIZES[:1] if quick else LOW_PRECISION_SIZES
    cells = LOW_PRECISION_CELLS[:1] if quick else LOW_PRECISION_CELLS
    return [Point(cell, *size, precision=p) for p in precisions if p != "float32" for cell in cells for size in sizes]


def stream_grid(quick: bool = False) -> list[StreamPoint]:
    if quick:
        return [StreamPoint("lstm", 32)]
    return [StreamPoint(cell, h) for cell in GATED_FIRST if KINDS[cell].sigmoid_gates for h in STREAM_SIZES]
