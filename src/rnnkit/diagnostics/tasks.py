"""Long-range memory tasks: the benchmarks the LSTM was introduced with.

- **Adding problem** (Hochreiter & Schmidhuber 1997): each step carries a value in U(0, 1) and a
  marker; exactly two steps are marked, one in each half of the sequence. The target is the sum of
  the two marked values, read from the last output. Always answering 1 scores
  MSE = Var(u1 + u2) = 1/6 ≈ 0.167; a model must remember values seen up to T steps earlier.
- **Copy memory** (Arjovsky et al. 2016, after Hochreiter & Schmidhuber): S symbols from an
  alphabet of K, then T blanks, a delimiter, and S more blanks, during which the model must repeat
  the S symbols. The baseline — blanks, then a uniform guess over K — has cross-entropy
  S·ln K / (T + 2S) nats per position.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from rnnkit.diagnostics.gradflow import Flow, InitOptions, make_layer, measure
from rnnkit.linear import Linear
from rnnkit.losses import softmax_cross_entropy
from rnnkit.module import Module
from rnnkit.optim import Adam, clip_grad_norm_

TASKS = ("adding", "copy")
COPY_SYMBOLS, COPY_ALPHABET = 10, 8


def adding_batch(rng: np.random.Generator, T: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, 2) = [value, marker]; y (B, 1) the sum of the two marked values."""
    values = rng.random((T, B))
    first = rng.integers(0, max(T // 2, 1), size=B)
    second = rng.integers(T // 2, T, size=B)
    second = np.where(second == first, (first + 1) % T, second)
    markers = np.zeros((T, B))
    markers[first, np.arange(B)] = markers[second, np.arange(B)] = 1.0
    y = values[first, np.arange(B)] + values[second, np.arange(B)]
    return np.stack([values, markers], axis=-1), y[:, None]


def copy_batch(rng: np.random.Generator, T: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    """x (T+2S, B, K+2) one-hot (0 blank, 1..K symbols, K+1 delimiter); y (T+2S, B) targets."""
    S, K = COPY_SYMBOLS, COPY_ALPHABET
    symbols = rng.integers(1, K + 1, size=(S, B))
    inp = np.zeros((T + 2 * S, B), dtype=np.int64)
    inp[:S] = symbols
    inp[S + T - 1] = K + 1
    target = np.zeros_like(inp)
    target[S + T:] = symbols
    return np.eye(K + 2)[inp], target


def baseline(task: str, T: int) -> float:
    if task == "adding":
        return 1.0 / 6.0
    return COPY_SYMBOLS * math.log(COPY_ALPHABET) / (T + 2 * COPY_SYMBOLS)


class TaskModel(Module):
    """A recurrent layer and a linear read-out: of the last step (adding) or of every step (copy)."""

    def __init__(self, task: str, cell: str, hidden: int, rng: np.random.Generator,
                 init: InitOptions = InitOptions()) -> None:
        super().__init__(dtype=np.float32)
        self.task = task
        in_size, out_size = (2, 1) if task == "adding" else (COPY_ALPHABET + 2, COPY_ALPHABET + 1)
        layer = make_layer(cell, in_size, hidden, init, rng, dtype=np.float32)
        self.rnn = self.register_module("rnn", layer)
        self.head = self.register_module("head", Linear(hidden, out_size, rng=rng))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, _ = self.rnn(x)
        return self.head(h[-1] if self.task == "adding" else h)

    def backward(self, dy: np.ndarray, steps: int) -> None:
        dh = self.head.backward(dy)
        if self.task == "adding":                         # only the last output was read
            full = np.zeros((steps,) + dh.shape, dh.dtype)
            full[-1] = dh
            dh = full
        self.rnn.backward(dh)


def loss_and_grad(task: str, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    if task == "adding":
        err = out - y
        return float(np.mean(err ** 2)), (2.0 / err.size) * err
    return softmax_cross_entropy(out, y)


@dataclass(frozen=True)
class TaskResult:
    task: str
    cell: str
    seq_len: int
    steps: int
    test_metric: float            # MSE (adding) or cross-entropy in nats per position (copy)
    baseline: float
    curve: list[tuple[int, float]]
    seconds: float
    copy_accuracy: float | None   # copy: fraction of the S symbols recalled exactly
    flow_before: Flow             # gradient flow of the final-step loss, at initialisation
    flow_after: Flow              # ... and after training

    @property
    def solved(self) -> bool:
        """Below a tenth of the trivial baseline (a common threshold in the literature)."""
        return self.test_metric < 0.1 * self.baseline


def evaluate(model: TaskModel, task: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    from rnnkit.grad_mode import no_grad
    with no_grad():
        out = model(x)
    loss, _ = loss_and_grad(task, out, y)
    if task == "adding":
        return loss, None
    recalled = out[-COPY_SYMBOLS:].argmax(axis=-1) == y[-COPY_SYMBOLS:]
    return loss, float(recalled.mean())


def final_step_flow(model: TaskModel, task: str, x: np.ndarray, y: np.ndarray, cell: str) -> Flow:
    """||dL/dh_t|| for every t, L being the task loss at the last step only (on these sequences)."""
    W, b = model.head.weight.data, model.head.bias.data

    def loss_gradient(h_last: np.ndarray) -> np.ndarray:
        out = h_last @ W.T + b
        if task == "adding":
            return (2.0 / out.size) * (out - y) @ W
        _, dz = softmax_cross_entropy(out, y[-1])
        return dz @ W

    return measure(model.rnn, x, loss_gradient, cell, jacobian=False)


def run_task(task: str, seq_len: int, cell: str, hidden: int, steps: int, lr: float, batch: int,
             seed: int, eval_every: int = 100, test_size: int = 1000, log=None,
             init: InitOptions = InitOptions()) -> TaskResult:
    rng = np.random.default_rng(seed)
    make = adding_batch if task == "adding" else copy_batch
    x_test, y_test = make(np.random.default_rng(seed + 10_000), seq_len, test_size)
    model = TaskModel(task, cell, hidden, rng, init)
    probe = (x_test[:, :16], y_test[:16] if task == "adding" else y_test[:, :16])
    before = final_step_flow(model, task, *probe, cell)
    params = model.parameters()
    opt = Adam(params, lr=lr)
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        x, y = make(rng, seq_len, batch)
        out = model(x)
        loss, dy = loss_and_grad(task, out, y)
        model.zero_grad()
        model.backward(dy.astype(np.float32), x.shape[0])
        clip_grad_norm_(params, 1.0)
        opt.step()
        if step % eval_every == 0 or step == steps:
            metric, _ = evaluate(model, task, x_test, y_test)
            curve.append((step, metric))
            if log:
                log(f"step {step:5d}  train {loss:.4f}  test {metric:.4f}  (baseline {baseline(task, seq_len):.4f})")
    seconds = time.perf_counter() - start
    metric, acc = evaluate(model, task, x_test, y_test)
    return TaskResult(task, cell, seq_len, steps, metric, baseline(task, seq_len), curve, seconds, acc,
                      before, final_step_flow(model, task, *probe, cell))
