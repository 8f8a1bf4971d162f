"""The training loop shared by the estimators: mini-batches of similar lengths, Adam with a
warm-up and cosine-decayed rate, gradient clipping, optional early stopping on a validation part
with the best weights restored, a time budget and a progress bar.

One epoch: for each batch, z = net(x, lengths); (loss, dz) = loss_fn(z, y); backward; clip the
global gradient norm; an Adam step at the scheduled rate. A loss function is one of
``rnnkit.losses``: ``loss_fn(z, y, grad=True) -> (loss, dz or None)``. With a validation part,
after each epoch its loss decides: a new best is remembered (a copy of the weights);
``patience`` epochs without one end training; the best weights are put back at the end. Without
one, training runs every planned epoch and keeps the last weights (the rate has decayed to 0).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import ThreadpoolController
from tqdm import tqdm

import rnnkit
import rnnkit.backend
from rnnkit.errors import TrainingDiverged
from rnnkit.models.budget import WARMUP
from rnnkit.models.config import FitSettings
from rnnkit.models.data import Sequences, bucket_batches, ordered_batches, time_major
from rnnkit.models.network import SequenceNet
from rnnkit.optim import Adam, clip_grad_norm_
from rnnkit.optim.schedules import Schedule

LossFn = Callable[..., tuple[float, np.ndarray | None]]     # (z, y, *, grad=True)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()          # created after NumPy has loaded its BLAS


@contextlib.contextmanager
def one_thread():
    """Context: BLAS and the engine on one thread, restored on exit. These networks multiply
    small matrices (16 sequences × 200 steps by 160 × 64, a GRU step of 16 × 16 by 16 × 48),
    where a second thread costs more than it saves: OpenBLAS's made a training step 3-10x slower
    on the 2-core machine (docs/sequence_models.md), and the engine's, whose threads meet at
    every product, made 30 GRU-FCN epochs on GunPoint 2.5 s on one thread and 11.7 s on two
    while other processes shared the cores (a scikit-learn grid search with n_jobs does that)."""
    backend = rnnkit.backend.current()          # the reference computes on the calling thread already
    before = backend.num_threads()
    backend.set_num_threads(1)
    try:
        with _blas().limit(limits=1, user_api="blas"):
            yield
    finally:
        backend.set_num_threads(before)


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0                  # 1-based epoch whose weights were kept
    stop_reason: str = "epochs"          # "epochs" | "early stopping" | "time budget"
    seconds: float = 0.0


def fit_network(net: SequenceNet, loss_fn: LossFn, train: Sequences, y_train: np.ndarray,
                val: Sequences | None, y_val: np.ndarray | None, s: FitSettings, epochs: int,
                rng: np.random.Generator, desc: str) -> History:
    """Train ``net`` for ``epochs`` (fewer if early stopping or the time budget ends it)."""
    train = as_dtype(train, net.dtype)                  # once, not per batch
    val = as_dtype(val, net.dtype) if val is not None else None
    with one_thread():
        return _fit(net, loss_fn, train, y_train, val, y_val, s, epochs, rng, desc)


def as_dtype(data: Sequences, dtype) -> Sequences:
    """``data`` with its values in ``dtype`` (the network's: float32 while training)."""
    return replace(data, values=data.values.astype(dtype, copy=False))


def schedule_for(s: FitSettings, total_steps: int) -> Schedule:
    """The rate's shape over the planned steps: a linear warm-up over WARMUP of them, then a
    cosine decay to 0 (``schedule="cosine"``), or ``lr`` throughout ("constant")."""
    if s.schedule == "constant":
        return Schedule("constant")
    warmup = max(1, int(WARMUP * total_steps))
    return Schedule("cosine", warmup=warmup, total=max(1, total_steps - warmup))


@dataclass
class _Best:
    """The weights worth keeping so far and what decides (the monitored loss)."""

    loss: float = math.inf
    state: dict | None = None
    epoch: int = 0
    stale: int = 0


def _fit(net, loss_fn, train, y_train, val, y_val, s: FitSettings, epochs: int, rng, desc) -> History:
    opt = Adam(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    batches = math.ceil(train.n / s.batch_size)
    schedule, step = schedule_for(s, epochs * batches), 0
    hist, best = History(), _Best()
    start = time.perf_counter()
    bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False, dynamic_ncols=True,
               disable=True if s.verbose <= 0 else None)
    for epoch in range(1, epochs + 1):
        net.train()
        losses, out_of_time = [], False
        for idx in bucket_batches(train.lengths, s.batch_size, rng):
            opt.lr = s.lr * schedule.factor(step)
            losses.append(_step(net, opt, loss_fn, train, y_train, idx, s.clip))
            step += 1
            if s.time_budget is not None and time.perf_counter() - start > s.time_budget:
                out_of_time = True
                break
        hist.train_loss.append(float(np.mean(losses)))
        if not math.isfinite(hist.train_loss[-1]):
            hist.stop_reason = "non-finite loss"
            break
        if val is not None:
            hist.val_loss.append(evaluate(net, loss_fn, val, y_val, s.batch_size))
            if _improved(best, hist.val_loss[-1], epoch, net):
                hist.best_epoch = epoch
        _report(bar, s, epoch, hist)
        if out_of_time:
            hist.stop_reason = "time budget"
            break
        if val is not None and best.stale >= s.patience:
            hist.stop_reason = "early stopping"
            break
    bar.close()
    hist.seconds = time.perf_counter() - start
    return _finish(net, hist, best, val is not None, desc)


def _improved(best: _Best, loss: float, epoch: int, net) -> bool:
    if loss < best.loss:
        best.loss, best.state, best.epoch, best.stale = loss, net.state_dict(), epoch, 0
        return True
    best.stale += 1
    return False


def _finish(net, hist: History, best: _Best, validated: bool, desc: str) -> History:
    """Put back the weights to keep: the best validated epoch's, else the last epoch's (which
    must have a finite loss)."""
    if validated and best.state is not None:
        net.load_state_dict(best.state)
    elif validated or not hist.train_loss or not math.isfinite(hist.train_loss[-1]):
        raise TrainingDiverged(f"{desc}: training diverged (loss {hist.train_loss[-1]}); "
                               "lower lr or raise clip")
    else:
        hist.best_epoch = len(hist.train_loss)
    net.eval()
    return hist


def _step(net: SequenceNet, opt: Adam, loss_fn: LossFn, data: Sequences, y: np.ndarray,
          idx: np.ndarray, clip: float) -> float:
    x, lengths = time_major(data, idx)                # (T, B, F), already in net.dtype
    z = net(x, lengths)
    loss, dz = loss_fn(z, y[idx])
    net.zero_grad()
    net.backward(dz)
    if clip > 0:
        clip_grad_norm_(net.parameters(), clip)
    opt.step()
    return loss


def _report(bar: tqdm, s: FitSettings, epoch: int, hist: History) -> None:
    text = f"loss {hist.train_loss[-1]:.4f}" + (f" val {hist.val_loss[-1]:.4f}" if hist.val_loss else "")
    bar.update(1)
    bar.set_postfix_str(text, refresh=False)
    if s.verbose >= 2:
        tqdm.write(f"epoch {epoch}: {text}")


def evaluate(net: SequenceNet, loss_fn: LossFn, data: Sequences, y: np.ndarray, batch_size: int) -> float:
    """Mean loss over the samples of ``data`` (inference mode, no gradients computed)."""
    z = predict_network(net, data, batch_size)
    return loss_fn(z, y, grad=False)[0]


# Sequences per batch in prediction: large enough that Python's per-batch cost vanishes, small
# enough that a long batch's activations stay modest; a setting of inference, not of training.
PREDICT_BATCH = 256


def predict_network(net: SequenceNet, data: Sequences, batch_size: int) -> np.ndarray:
    """Network outputs (n, K) in the order of ``data``, computed in batches of similar lengths."""
    net.eval()
    out = np.empty((data.n, net.cfg.output_size), net.dtype)
    with rnnkit.no_grad(), one_thread():
        for idx in ordered_batches(data.lengths, batch_size):
            x, lengths = time_major(data, idx)
            out[idx] = net(x.astype(net.dtype, copy=False), lengths)
    return out
