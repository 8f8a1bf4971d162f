"""Fits for tests/test_determinism.py, run in a fresh process: prints one JSON object of SHA-256
hashes (fitted weights, predictions, language-model weights after a few steps, a few layers'
outputs and gradients, in float32 and in low precision) and of how often the engine shared work between threads, so that the test
can tell the settings it ran with (compile cache, RNNKIT_NUM_THREADS, the CPU Numba compiles for)
apart from the results.

    python tests/determinism_fits.py WORKDIR [--layers-only]

The sizes are chosen so that, on two threads, the engine really splits work: each step of one
recurrence between the threads (language model GRU: 64 rows x 384 gate columns x 128 units, >=
MIN_SHARED_STEP), the two directions of a bidirectional layer side by side (``layers``), and the
weight-gradient products (>= MIN_SHARED_MACS); the test checks that they did. The estimators
run the engine on one thread whatever RNNKIT_NUM_THREADS says (rnnkit.models.training.one_thread);
their fits are here for the compile cache and for run-after-run equality.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

import rnnkit
import rnnkit.engine.gemm
import rnnkit.engine.layer
from rnnkit.lm.config import TrainConfig
from rnnkit.lm.train import Trainer
from rnnkit.models import RNNClassifier, RNNForecaster
from rnnkit.precision import PrecisionWarning

LAUNCHES: Counter = Counter()


def counting(launch, kind: str):
    """``launch`` that also counts the calls that ran on more than one thread."""
    import numba

    def wrapped(jobs, workers):
        if min(workers, numba.config.NUMBA_NUM_THREADS) > 1:
            LAUNCHES[kind if len(jobs) == 1 else "pair"] += 1
        return launch(jobs, workers)
    return wrapped


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def state_digest(module) -> str:
    state = module.state_dict()
    return digest(*(state[k] for k in sorted(state)))


def classifier_data():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    freq = rng.choice([0.1, 0.17], size=80)
    X = np.sin(freq[:, None] * t + rng.uniform(0, 6, (80, 1))) + 0.3 * rng.standard_normal((80, 60))
    return X, (freq > 0.12).astype(int)


def series():
    rng = np.random.default_rng(1)
    t = np.arange(400)
    return 10 * np.sin(2 * np.pi * t / 12) + 0.05 * t + rng.standard_normal(400)


def fit_classifier():
    X, y = classifier_data()
    clf = RNNClassifier(bidirectional=True, epochs=3, n_estimators=2, random_state=0, verbose=0).fit(X, y)
    return {"weights": state_digest(clf.net_), "proba": digest(clf.predict_proba(X))}


def fit_forecaster():
    fc = RNNForecaster(cell="lstm", epochs=2, random_state=0, verbose=0).fit(series())
    return {"weights": state_digest(fc.net_), "forecast": digest(fc.predict(6))}


def train_lm(workdir: Path, steps: int = 3):
    rng = np.random.default_rng(2)
    words = ["def", "return", "self", "(", ")", ":", "\n", "    ", "x", "=", "+", "1", "for", "in"]
    text = workdir / "text.txt"
    text.write_text(" ".join(rng.choice(words, size=20000)), encoding="utf-8")
    cfg = TrainConfig(paths=(str(text),), hidden=128, embed=32, batch_size=64, seq_len=32,
                      max_steps=steps, time_budget=0, out=str(workdir / "lm"))
    trainer = Trainer(cfg, log=lambda msg: None)
    losses = [trainer.train_step().loss for _ in range(steps)]
    return {"weights": state_digest(trainer.model), "losses": digest(np.array(losses))}


def layers():
    """Forward with lengths, backward, and one streaming step (under no_grad) of a GRU and a
    peephole LSTM in float32: the engine's arithmetic without NumPy's, whose vectorised exp and
    log the fits above use and which NumPy chooses by CPU on its own."""
    rng = np.random.default_rng(3)
    out = {}
    layers = (rnnkit.GRU(24, 96, rng=0), rnnkit.LSTM(24, 96, peephole=True, rng=0),
              rnnkit.GRU(24, 96, bidirectional=True, rng=0))                  # the directions side by side
    for layer in layers:
        x = rng.standard_normal((20, 16, 24)).astype(np.float32)
        y, _ = layer(x, lengths=rng.integers(8, 21, size=16))
        dx, _ = layer.backward(np.cos(y))
        with rnnkit.no_grad():
            step, _ = layer(x[:1])
        out[type(layer).__name__ + ("-bidirectional" if layer.bidirectional else "")] = digest(y, dx, step, *(p.grad for p in layer.parameters()))
    return out


def low_precision():
    """An LSTM's training call under rnnkit.autocast and its int8 copy's inference (float32 where
    the CPU lacks the units: the hashes then compare the float32 arithmetic)."""
    rng = np.random.default_rng(4)
    lstm = rnnkit.LSTM(24, 96, rng=0)
    x = rng.standard_normal((20, 16, 24)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        with rnnkit.autocast():
            y, _ = lstm(x)
            dx, _ = lstm.backward(np.cos(y))
        q, _ = rnnkit.quantize_dynamic(lstm)(x)
    return {"autocast": digest(y, dx, *(p.grad for p in lstm.parameters())), "int8": digest(q)}


def main(workdir: Path, layers_only: bool) -> None:
    rnnkit.engine.layer.launch = counting(rnnkit.engine.layer.launch, "recurrence")
    rnnkit.engine.gemm.launch = counting(rnnkit.engine.gemm.launch, "gemm")
    result = {"layers": layers()}
    if not layers_only:
        result |= {"classifier": fit_classifier(), "classifier_again": fit_classifier(),
                   "forecaster": fit_forecaster(), "lm": train_lm(workdir), "low_precision": low_precision()}
    print(json.dumps(result | {"shared_launches": dict(LAUNCHES)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--layers-only" in sys.argv[2:])
