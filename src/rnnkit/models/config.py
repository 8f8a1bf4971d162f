"""The estimators' hyperparameters: every default with the measurement or reason behind it.

The constructors take these as keyword arguments (scikit-learn's convention: stored as given,
checked when ``fit`` runs); ``FitConfig.from_params`` checks them, naming the bad one.
How the defaults were measured: README, "Sequence models", and bench/seqmodels.py.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from rnnkit.models.network import CELLS
from rnnkit.pooling import POOLINGS
from rnnkit.models.errors import InputError

# Frame stacking under frame="auto": sequences are cut into at most this many recurrent steps
# (k = ceil(T_max / 50) consecutive values per step): 25 steps 0.688, 50 0.688, 100 0.685 mean
# accuracy, and fits 2-3x faster than 100; sequences of 50 steps or fewer are left as they are.
AUTO_FRAME_STEPS = 50


@dataclass(frozen=True)
class Defaults:
    # Mean test accuracy over 6 development sets x 2 seeds (scripts/tune_seqmodels.py, README):
    cell: str = "gru"                 # GRU 0.688 vs LSTM 0.696 (noise), the GRU ~30% faster per fit
    hidden_size: int = 64             # 32: 0.706, 128: 0.705 and 60% slower: no size wins clearly
    num_layers: int = 1               # 2 layers: 0.688, slower
    bidirectional: bool = False       # 0.715 but 50% slower; max pooling gained more
    pooling: str = "max"              # max 0.768, mean 0.700, attention 0.688, last 0.669
    dropout: float = 0.0              # 0.2: 0.708 vs 0.688 with attention; early stopping suffices
    frame: object = "auto"            # see AUTO_FRAME_STEPS; an int k stacks k steps per frame
    epochs: int = 300                 # an upper bound: early stopping ends most fits far sooner
    batch_size: int = 32              # 16: 0.759 vs 0.768 (max pooling), and slower
    lr: float = 3e-3                  # Adam; 1e-3: 0.700, 1e-2: 0.719 (vs 0.688, attention); 1e-2
                                      # with max pooling 0.731 vs 0.768
    weight_decay: float = 0.0         # L2 on every weight; not needed with early stopping
    clip: float = 1.0                 # global gradient-norm clipping against exploding gradients
    patience: int = 30                # epochs without a lower validation loss; 60: 0.775 vs 0.768
    validation_fraction: float = 0.2  # held out (stratified) for early stopping; 0.1: 0.693 vs 0.688
    time_budget: float | None = None  # seconds of training at most (None: no limit)
    verbose: int = 1                  # 0 silent, 1 progress bar on a terminal, 2 one line per epoch


D = Defaults()


def _int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise InputError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _real(name: str, v, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise InputError(f"{name} must be a finite number, got {v!r}")
    if v < lo or (lo_open and v == lo) or v >= hi:
        left = "(" if lo_open else "["
        raise InputError(f"{name} must lie in {left}{lo}, {hi}), got {v!r}")
    return float(v)


@dataclass(frozen=True)
class FitConfig:
    """The checked hyperparameters of one ``fit`` call."""

    cell: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    pooling: str
    dropout: float
    frame: int | None                # None: auto
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    clip: float
    patience: int
    validation_fraction: float
    time_budget: float | None
    verbose: int

    @classmethod
    def from_params(cls, p: dict) -> "FitConfig":
        if p["cell"] not in CELLS:
            raise InputError(f"cell must be one of {sorted(CELLS)}, got {p['cell']!r}")
        if p["pooling"] not in POOLINGS:
            raise InputError(f"pooling must be one of {list(POOLINGS)}, got {p['pooling']!r}")
        frame = p["frame"]
        if not (frame == "auto" and isinstance(frame, str)):
            frame = _int("frame", frame, 1)
        budget = p["time_budget"]
        if budget is not None:
            budget = _real("time_budget", budget, 0.0, lo_open=True)
        return cls(
            cell=p["cell"], hidden_size=_int("hidden_size", p["hidden_size"], 1),
            num_layers=_int("num_layers", p["num_layers"], 1), bidirectional=bool(p["bidirectional"]),
            pooling=p["pooling"], dropout=_real("dropout", p["dropout"], 0.0, 1.0),
            frame=None if frame == "auto" else frame, epochs=_int("epochs", p["epochs"], 1),
            batch_size=_int("batch_size", p["batch_size"], 1), lr=_real("lr", p["lr"], 0.0, lo_open=True),
            weight_decay=_real("weight_decay", p["weight_decay"], 0.0), clip=_real("clip", p["clip"], 0.0),
            patience=_int("patience", p["patience"], 1),
            validation_fraction=_real("validation_fraction", p["validation_fraction"], 0.0, 1.0),
            time_budget=budget, verbose=_int("verbose", p["verbose"], 0))

    def frame_for(self, max_length: int) -> int:
        """Steps per frame: the given ``frame``, or under "auto" ⌈T_max / AUTO_FRAME_STEPS⌉."""
        return self.frame if self.frame is not None else max(1, -(-max_length // AUTO_FRAME_STEPS))
