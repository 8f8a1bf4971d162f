"""Learning-rate schedules as pure functions of the step number (so resuming needs only the step).

Every schedule has an optional linear warm-up: for step < warmup the rate rises linearly from
lr/warmup to lr; afterwards the schedule's own shape applies to the steps after warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """kind: "constant" | "step" | "cosine"."""

    kind: str = "constant"
    warmup: int = 0               # warm-up steps; 0 = none
    step_size: int = 1000         # "step": multiply by gamma every step_size steps
    gamma: float = 0.5
    total: int = 0                # "cosine": steps from the end of warm-up to the minimum
    min_factor: float = 0.0       # "cosine": lr at the end, as a fraction of lr

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "cosine"):
            raise ValueError(f"schedule kind must be 'constant', 'step' or 'cosine', got {self.kind!r}")
        if self.kind == "cosine" and self.total < 1:
            raise ValueError(f"a cosine schedule needs total >= 1 steps, got {self.total}")

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate for update number ``step`` (0-based)."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        s = step - self.warmup
        if self.kind == "step":
            return self.gamma ** (s // self.step_size)
        if self.kind == "cosine":
            progress = min(s / self.total, 1.0)
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0
