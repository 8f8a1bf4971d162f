"""The training loop shared by the estimators: mini-batches of similar lengths, Adam, gradient
clipping, early stopping on a validation part with the best weights restored, a time budget and
a progress bar.

One epoch: for each batch, z = net(x, lengths); (loss, dz) = loss_fn(z, y); backward; clip the
global gradient norm; an Adam step. A loss function is one of ``rnnkit.losses``:
``loss_fn(z, y, grad=True) -> (loss, dz or None)``. After each epoch the validation loss decides: a new best is
remembered (a copy of the weights); ``patience`` epochs without one end training; the best
weights are put back at the end.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import ThreadpoolController
from tqdm import tqdm

import rnnkit
from rnnkit.models.config import FitSettings
from rnnkit.models.data import Sequences, bucket_batches, ordered_batches, time_major
from rnnkit.models.errors import TrainingDiverged
from rnnkit.models.network import SequenceNet
from rnnkit.optim import Adam, clip_grad_norm_

LossFn = Callable[..., tuple[float, np.ndarray | None]]     # (z, y, *, grad=True)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()          # created after NumPy has loaded its BLAS


def one_blas_thread():
    """Context: BLAS on one thread. These networks multiply small matrices (e.g. 16 x 64 by
    64 x 192 per step), where OpenBLAS's second thread made a training step 3-10x slower on the
    2-core machine (README, "Sequence models"); the setting is restored on exit."""
    return _blas().limit(limits=1, user_api="blas")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0                  # 1-based epoch whose weights were kept
    stop_reason: str = "epochs"          # "epochs" | "early stopping" | "time budget"
    seconds: float = 0.0


def fit_network(net: SequenceNet, loss_fn: LossFn, train: Sequences, y_train: np.ndarray,
                val: Sequences | None, y_val: np.ndarray | None, s: FitSettings,
                rng: np.random.Generator, desc: str) -> History:
    """Train ``net``; the best epoch is the one with the lowest validation loss (the lowest
    training loss without a validation part). Keeping the epoch with the fewest validation
    errors instead was measured worse for classification (README)."""
    train = as_dtype(train, net.dtype)                  # once, not per batch
    val = as_dtype(val, net.dtype) if val is not None else None
    with one_blas_thread():
        return _fit(net, loss_fn, train, y_train, val, y_val, s, rng, desc)


def as_dtype(data: Sequences, dtype) -> Sequences:
    """``data`` with its values in ``dtype`` (the network's: float32 while training)."""
    return replace(data, values=data.values.astype(dtype, copy=False))


def _fit(net, loss_fn, train, y_train, val, y_val, s: FitSettings, rng, desc) -> History:
    opt = Adam(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    hist, best, best_loss, stale = History(), None, math.inf, 0
    start = time.perf_counter()
    bar = tqdm(total=s.epochs, desc=desc, unit="epoch", leave=False, dynamic_ncols=True,
               disable=True if s.verbose <= 0 else None)
    for epoch in range(1, s.epochs + 1):
        net.train()
        losses, out_of_time = [], False
        for idx in bucket_batches(train.lengths, s.batch_size, rng):
            losses.append(_step(net, opt, loss_fn, train, y_train, idx, s.clip))
            if s.time_budget is not None and time.perf_counter() - start > s.time_budget:
                out_of_time = True
                break
        hist.train_loss.append(float(np.mean(losses)))
        monitored = hist.train_loss[-1]
        if val is not None:
            monitored = evaluate(net, loss_fn, val, y_val, s.batch_size)
            hist.val_loss.append(monitored)
        if not math.isfinite(hist.train_loss[-1]):
            hist.stop_reason = "non-finite loss"
            break
        if monitored < best_loss:
            best_loss, best, stale, hist.best_epoch = monitored, net.state_dict(), 0, epoch
        else:
            stale += 1
        _report(bar, s, epoch, hist)
        if out_of_time:
            hist.stop_reason = "time budget"
            break
        if val is not None and stale >= s.patience:
            hist.stop_reason = "early stopping"
            break
    bar.close()
    if best is None:
        raise TrainingDiverged(f"{desc}: training diverged (loss {hist.train_loss[-1]}); "
                                 "lower lr or raise clip")
    net.load_state_dict(best)
    net.eval()
    hist.seconds = time.perf_counter() - start
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
    with rnnkit.no_grad(), one_blas_thread():
        for idx in ordered_batches(data.lengths, batch_size):
            x, lengths = time_major(data, idx)
            out[idx] = net(x.astype(net.dtype, copy=False), lengths)
    return out
