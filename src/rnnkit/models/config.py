"""The estimators' hyperparameters: every default with the measurement or reason behind it.

Two frozen records that check themselves, naming the bad value: :class:`NetParams`, the network
(cell, sizes, pooling, dropout), and :class:`FitSettings`, its training (Adam, clipping, early
stopping, budget). The constructors take these fields as keyword arguments (scikit-learn's
convention: stored as given, checked when ``fit`` builds the records), with the class attributes
below as their defaults. How the defaults were measured: docs/sequence_models.md,
and scripts/tune_seqmodels.py / scripts/tune_forecaster.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from rnnkit.checks import check_choice
from rnnkit.errors import InputError
from rnnkit.layer_flags import LAYER_FLAGS, layer_accepts
from rnnkit.models.network import CELLS
from rnnkit.norm.between import NORMS
from rnnkit.pooling import POOLINGS
from rnnkit.ranges import COUNT, NONNEGATIVE, NONNEGATIVE_INT, POSITIVE, PROBABILITY_BELOW_1, Range

# Frame stacking under frame="auto": sequences are cut into at most this many network steps
# (k = ceil(T_max / 200) consecutive values per step); sequences of 200 steps or fewer are left
# as they are. Test accuracy of one GRU-FCN network, seed 0 (docs/sequence_models.md, "How the
# defaults were chosen"), at most 50 / 100 / 200 steps: ArrowHead 0.754 / 0.840 / 0.869,
# OSULeaf 0.872 / 0.913 / 0.934, ACSF1 0.800 / 0.790 / 0.870; the convolutions need the shape
# at full resolution.
AUTO_FRAME_STEPS = 200
AUTO_FRAME = "auto"

SHARE = PROBABILITY_BELOW_1                              # a held-out share; 0 turns it off
AUTO = "auto"
AUTO_COUNT = Range(int, low=1, also=(AUTO,))             # epochs, n_estimators, frame, window, season


def check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_fields(record, limits: dict[str, Range]) -> None:
    """Check (and normalise: np.int64 → int, ...) the numeric fields of a frozen record in place."""
    for name, r in limits.items():
        object.__setattr__(record, name, r.check(name, getattr(record, name), InputError))


@dataclass(frozen=True)
class NetParams:
    """The network of an estimator (``rnnkit.models.network``), less the sizes the data fix.

    These are the defaults of the recurrent branch and of a record built without conv fields
    (the forecaster's network); the classifier's and regressor's constructors default to
    :data:`FCN_FILTERS` / :data:`FCN_KERNELS` beside it (measured: docs/sequence_models.md,
    "How the defaults were chosen")."""

    cell: str = "gru"                 # GRU 0.688 vs LSTM 0.696 (noise), the GRU ~30% faster per fit
    hidden_size: int = 64             # 32: 0.706, 128: 0.705 and 60% slower; 0: no recurrent branch
    num_layers: int = 1               # 2 layers: 0.688, slower
    bidirectional: bool = False       # 0.715 but 50% slower; max pooling gained more
    pooling: str = "max"              # max 0.768, mean 0.700, attention 0.688, last 0.669
    dropout: float = 0.0              # 0.2: 0.708 vs 0.688 with attention
    conv_filters: tuple = ()          # channels of the conv blocks; (): no convolutional branch
    conv_kernels: tuple = ()          # their kernel sizes, one per block
    norm_between: str = "none"        # "batch" | "layer" after each recurrent layer (Laurent et al.
                                      # 2016; Ba et al. 2016); none: not measured on these sets yet
    layer_norm: bool = False          # layer-normalised cells (the layers' option): not measured yet
    recurrent_dropout: float = 0.0    # dropout of the state entering W_hh: dropout=0.2 already
                                      # regularises the head, and the sets are small
    zoneout: float = 0.0              # zoneout probability on the state: 0 for the same reason

    LIMITS = {"hidden_size": NONNEGATIVE_INT, "num_layers": COUNT, "dropout": PROBABILITY_BELOW_1,
              "recurrent_dropout": PROBABILITY_BELOW_1, "zoneout": PROBABILITY_BELOW_1}

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, sorted(CELLS), InputError)
        check_choice("pooling", self.pooling, list(POOLINGS), InputError)
        _check_fields(self, self.LIMITS)
        object.__setattr__(self, "bidirectional", check_bool("bidirectional", self.bidirectional))
        check_choice("norm_between", self.norm_between, list(NORMS), InputError)
        object.__setattr__(self, "layer_norm", check_bool("layer_norm", self.layer_norm))
        for flag, off in LAYER_FLAGS.items():
            if getattr(self, flag) != off and not layer_accepts(self.cell, flag):
                raise InputError(f"{flag}={getattr(self, flag)!r} needs recurrent layers with the {flag} "
                                 f"option, which this version of rnnkit's {self.cell} layer does not have")
        filters = check_sizes("conv_filters", self.conv_filters)
        kernels = check_sizes("conv_kernels", self.conv_kernels)
        if len(filters) != len(kernels):
            raise InputError(f"conv_kernels must give one kernel size per conv block: conv_filters has "
                             f"{len(filters)} ({filters}), conv_kernels {len(kernels)} ({kernels})")
        if self.hidden_size == 0 and not filters:
            raise InputError("hidden_size is 0 and conv_filters is empty: the network needs a "
                             "recurrent branch (hidden_size >= 1) or a convolutional one")
        object.__setattr__(self, "conv_filters", filters)
        object.__setattr__(self, "conv_kernels", kernels)


def check_sizes(name: str, value) -> tuple[int, ...]:
    """A tuple of ints >= 1 from a tuple or list (a scikit-learn parameter: stored as given)."""
    if not isinstance(value, (tuple, list)):
        raise InputError(f"{name} must be a tuple of ints >= 1 (e.g. (64, 128, 64)) or (), "
                         f"got {type(value).__name__} {value!r}")
    return tuple(COUNT.check(f"{name}[{i}]", v, InputError) for i, v in enumerate(value))


# The classifier's and regressor's network (docs/sequence_models.md, "How the defaults were
# chosen"): FCN's convolutional branch (Wang et al. 2017) at a quarter of its 128-256-128
# channels, beside a small GRU whose pooled features share the head through dropout 0.5 (as
# LSTM-FCN's recurrent branch does): a wide recurrent branch without dropout fits the training set
# first and starves the convolutional one (CBF 0.89 vs 0.98 with 16 units and dropout).
FCN_FILTERS = (32, 64, 32)
FCN_KERNELS = (8, 5, 3)
FCN_HIDDEN = 16
FCN_DROPOUT = 0.5


SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class FitSettings:
    """How ``rnnkit.models.training.fit_network`` trains (and what the estimator holds out).

    The defaults are the classifier's training protocol for small data (docs/sequence_models.md,
    "How the defaults were chosen"): no held-out part that would starve a set of 30-300 sequences,
    a warm-up then a cosine decay of the rate over a number of optimizer steps fixed in advance
    (``epochs="auto"``, :mod:`rnnkit.models.budget`), and an ensemble where one network is cheap.
    Every choice is a function of the data's size only, never of the clock, so a fit is the same on
    a slow and a fast machine (``time_budget`` is the one exception, off by default)."""

    epochs: int | str = AUTO          # "auto": budget.STEPS optimizer steps, capped by budget.WORK
    n_estimators: int | str = AUTO    # networks averaged; "auto": as many as budget.WORK allows, <= 5
    batch_size: int = 16              # FCN's 16; 32 halves the steps of a 50-sequence set
    lr: float = 1e-2                  # Adam's peak rate after warm-up (batch norm tolerates it)
    schedule: str = "cosine"          # "cosine": 10% linear warm-up, cosine to 0; "constant"
    weight_decay: float = 0.0         # L2 on every weight
    clip: float = 1.0                 # global gradient-norm clipping against exploding gradients
    patience: int = 30                # with a validation part: epochs without a lower validation loss
    validation_fraction: float = 0.0  # held out (stratified) for early stopping; 0: none
    time_budget: float | None = None  # seconds of training at most (None: no limit)
    verbose: int = 1                  # 0 silent, 1 progress bar on a terminal, 2 one line per epoch

    LIMITS = {"batch_size": COUNT, "lr": POSITIVE, "weight_decay": NONNEGATIVE,
              "clip": NONNEGATIVE,      # 0: no clipping
              "patience": COUNT, "validation_fraction": SHARE, "verbose": NONNEGATIVE_INT,
              "epochs": AUTO_COUNT, "n_estimators": AUTO_COUNT,
              "time_budget": Range(float, low=0, low_open=True, also=(None,))}

    def __post_init__(self) -> None:
        _check_fields(self, self.LIMITS)
        check_choice("schedule", self.schedule, SCHEDULES, InputError)


def from_params(cls, params: dict):
    """The record ``cls`` from an estimator's parameters (the ones it does not know are ignored)."""
    return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


def check_frame(frame) -> int | None:
    """``frame``: "auto" (None here: decided per fit by :func:`frame_for`) or steps per frame."""
    frame = AUTO_COUNT.check("frame", frame, InputError)
    return None if frame == AUTO_FRAME else frame


def frame_for(frame: int | None, max_length: int) -> int:
    """Steps per frame: the given ``frame``, or under "auto" ⌈T_max / AUTO_FRAME_STEPS⌉."""
    return frame if frame is not None else max(1, -(-max_length // AUTO_FRAME_STEPS))
