"""Shared test fixtures: a layer configuration, its random inputs, a weighted-sum loss, and the
engine on a given number of threads."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.engine
from rnnkit.engine import schedule

CLASSES = {"rnn": rnnkit.RNN, "gru": rnnkit.GRU, "lstm": rnnkit.LSTM}


@dataclass(frozen=True)
class Case:
    mode: str                   # "rnn" | "gru" | "lstm"
    T: int = 4
    B: int = 3
    I: int = 3
    H: int = 4
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    unbatched: bool = False
    proj_size: int = 0
    peephole: bool = False
    reset_after: bool = True
    nonlinearity: str = "tanh"
    bias: bool = True
    lengths: bool = False
    init_state: bool = False
    dropout: float = 0.0        # the layer is put in eval mode unless a test says otherwise
    layer_norm: bool = False

    def with_(self, **kw) -> "Case":
        return replace(self, **kw)

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def h_out(self) -> int:
        return self.proj_size or self.H

    def layer_kwargs(self) -> dict:
        kw = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                  dropout=self.dropout, bidirectional=self.bidirectional)
        if self.mode == "lstm":
            kw.update(proj_size=self.proj_size, peephole=self.peephole)
        elif self.mode == "gru":
            kw.update(reset_after=self.reset_after)
        else:
            kw.update(nonlinearity=self.nonlinearity)
        if self.layer_norm:
            kw.update(layer_norm=True)
        return kw

    def make(self, dtype=np.float64, seed=0):
        layer = CLASSES[self.mode](self.I, self.H, dtype=dtype, rng=seed, **self.layer_kwargs())
        return layer.eval() if self.dropout else layer

    def state_sizes(self) -> tuple[int, ...]:
        return (self.h_out, self.H) if self.mode == "lstm" else (self.H,)

    def state_shapes(self) -> list[tuple[int, ...]]:
        L = self.num_layers * self.D
        return [(L, n) if self.unbatched else (L, self.B, n) for n in self.state_sizes()]

    def zero_state(self):
        return from_tuple(self, tuple(np.zeros(s) for s in self.state_shapes()))

    def inputs(self, rng: np.random.Generator):
        """(x, state or None, lengths or None) in the user's layout, float64."""
        if self.unbatched:
            x = rng.standard_normal((self.T, self.I))
        else:
            x = rng.standard_normal((self.B, self.T, self.I) if self.batch_first else (self.T, self.B, self.I))
        states = tuple(rng.standard_normal(s) for s in self.state_shapes())
        state = from_tuple(self, states) if self.init_state else None
        lengths = None
        if self.lengths and not self.unbatched:
            lengths = rng.integers(1, self.T + 1, size=self.B)
            lengths[rng.integers(self.B)] = self.T
        return x, state, lengths


def as_tuple(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def from_tuple(case: Case, parts: tuple):
    return parts if case.mode == "lstm" else parts[0]


def loss_weights(rng: np.random.Generator, out: np.ndarray, state) -> tuple[np.ndarray, tuple]:
    """Random weights for loss = Σ W_out ⊙ out + Σ W_state ⊙ final state."""
    return rng.standard_normal(out.shape), tuple(rng.standard_normal(s.shape) for s in as_tuple(state))


def weighted_loss(out, state, w_out, w_state) -> float:
    return float(np.sum(out * w_out) + sum(np.sum(s * w) for s, w in zip(as_tuple(state), w_state)))


def rel_err(a, b) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) if b.size else 0.0


@contextmanager
def engine_threads(n: int):
    """The engine on ``n`` threads, sharing even tiny steps (its size thresholds lowered to 0)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rnnkit.engine, "MIN_SHARED_STEP", 0)
        mp.setattr(rnnkit.engine, "MIN_PARALLEL_CALL", 0)
        schedule.set_num_threads(n)
        try:
            yield n
        finally:
            schedule.set_num_threads(None)


def doc_block(page: str, marker: str) -> str:
    """The python block that follows ``<!-- tested: marker -->`` in ``page`` (README.md or
    docs/NAME.md): a block its own test runs and checks (tests/test_docs.py runs the others)."""
    text = (Path(__file__).resolve().parents[1] / page).read_text(encoding="utf-8")
    match = re.search(re.escape(f"<!-- tested: {marker} -->") + r"\s*```python\n(.*?)```", text, re.S)
    assert match, f"{page} has no python block after the marker {marker!r}"
    return match.group(1)


def chromium(tmp_path):
    """A headless Debian chromium driven by selenium (scripts/install-browser.sh installs both);
    skipped where they are missing, but not under CI, which must test pages in a real browser."""
    import os
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (binary and driver_path):
        if os.environ.get("CI"):
            pytest.fail("CI must test the page in a browser: chromium and chromedriver are not installed")
        pytest.skip("chromium / chromedriver not installed (see scripts/install-browser.sh)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)
