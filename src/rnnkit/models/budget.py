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

from rnnkit.kinds import KINDS
from rnnkit.models.network import NetConfig

STEPS = 1500            # optimizer steps of a default fit (400 epochs of 4 batches;
                        # docs/sequence_models.md)
MIN_EPOCHS = 30         # a large set still sees every sequence this often
MAX_EPOCHS = 1500       # a tiny set (one batch per epoch) stops here
# Measured on the 2-core machine (AMD EPYC, AVX2, one engine thread, nothing else running): a
# training step of the default GRU-FCN took 2.3 ms plus 0.084 ms per million multiply-adds
# (12 GMAC/s), from UnitTest's 3.3 ms (12.6 M) to ACSF1's 15.2 ms (154 M); so
WORK = 5.0e11           # a default fit, all members: ~42 s here (500 x 500 steps: one network, ~20 s)
STEP_OVERHEAD = 2.8e7   # a step's fixed cost: 2.3 ms at 12 GMAC/s
MAX_MEMBERS = 5         # InceptionTime's ensemble size
WARMUP = 0.1            # the share of the steps the rate rises over (schedule="cosine")


def step_macs(cfg: NetConfig) -> int:
    """Multiply-adds of one forward pass per sequence step (batch element × time step)."""
    macs, channels = 0, cfg.input_size
    for c, k in zip(cfg.conv_filters, cfg.conv_kernels):
        macs += channels * c * k
        channels = c
    if cfg.recurrent:
        gates = KINDS[cfg.cell].num_gates
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
