"""How long the estimators train by default, decided from the data's size alone.

A default fit runs ``STEPS`` optimizer steps (at least ``MIN_EPOCHS`` epochs, at most
``MAX_EPOCHS``), and never more multiply-adds than ``WORK`` (the cap wins): a set of 50 sequences gets ~400 epochs, a set of 500 long
sequences the epochs that ``WORK`` pays for. What is left of ``WORK`` buys more members of the
ensemble (up to ``MAX_MEMBERS``): small sets, where one network is cheap and the seed-to-seed
spread is largest, are averaged over several networks, as InceptionTime averages five.

Nothing here reads the clock, so the same data and ``random_state`` train the same networks on
every machine; the cost is counted, not timed: a network's multiply-adds per sequence step
(:func:`step_macs`) times three (forward, and the two products of backward) times the steps of
an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnkit.models.network import NetConfig

STEPS = 1500            # optimizer steps of a default fit (README: 400 epochs of 4 batches)
MIN_EPOCHS = 30         # a large set still sees every sequence this often
MAX_EPOCHS = 1500       # a tiny set (one batch per epoch) stops here
WORK = 3.0e11           # multiply-adds of a default fit, all members: ~60 s here (README)
STEP_OVERHEAD = 4.0e7   # a step's fixed cost in multiply-adds: ~4 ms a step here (README)
MAX_MEMBERS = 5         # InceptionTime's ensemble size
WARMUP = 0.1            # the share of the steps the rate rises over (schedule="cosine")


def step_macs(cfg: NetConfig) -> int:
    """Multiply-adds of one forward pass per sequence step (batch element × time step)."""
    macs, channels = 0, cfg.input_size
    for c, k in zip(cfg.conv_filters, cfg.conv_kernels):
        macs += channels * c * k
        channels = c
    if cfg.recurrent:
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[cfg.cell]
        D, width = (2 if cfg.bidirectional else 1), cfg.input_size
        for _ in range(cfg.num_layers):
            macs += D * gates * cfg.hidden_size * (width + cfg.hidden_size)
            width = D * cfg.hidden_size
    return macs


@dataclass(frozen=True)
class Plan:
    epochs: int                 # per member
    members: int
    steps: int                  # optimizer steps per member (for the schedule)


def plan(n_train: int, total_steps: int, cfg: NetConfig, batch_size: int, epochs, members) -> Plan:
    """The epochs and ensemble size of a fit: ``epochs`` / ``members`` as given, or "auto".

    ``total_steps``: the sequence steps of one epoch (Σ of the training sequences' lengths,
    after frame stacking)."""
    batches = math.ceil(n_train / batch_size)
    epoch_cost = 3 * total_steps * max(step_macs(cfg), 1) + STEP_OVERHEAD * batches
    if epochs == "auto":
        wanted = max(MIN_EPOCHS, math.ceil(STEPS / batches))
        affordable = max(1, int(WORK // epoch_cost))
        epochs = min(wanted, affordable, MAX_EPOCHS)
    if members == "auto":
        members = int(min(MAX_MEMBERS, max(1, WORK // (epoch_cost * epochs))))
    return Plan(int(epochs), int(members), int(epochs) * batches)
