"""What a training run tells its user as it goes: the progress bar's line and the overfitting caution.

The bar reads ``| 01:02<01:58, step 640, 1.967 bits/char, 36,900 chars/s`` (one loss, one unit).
A run overfits when its validation stops improving while training goes on: after
:data:`OVERFIT_EVALUATIONS` validations in a row above the best one, the latest more than
:data:`OVERFIT_MARGIN` above it, :func:`overfitting` says so, with the figures and what to do.
"""

from __future__ import annotations

from typing import NamedTuple

# tqdm puts ", " before the postfix itself: nothing between {remaining} and {postfix}.
BAR_FORMAT = "{l_bar}{bar}| {elapsed}<{remaining}{postfix}"

OVERFIT_EVALUATIONS = 3      # validations above the best before a run is said to overfit: one or
                             # two can be the noise of the last updates; three at the default
                             # --eval-every 300 are about three minutes without progress
OVERFIT_MARGIN = 0.01        # and the latest must exceed the best by 1%: a plateau a hair above
                             # the best (1.701 against 1.700) is a run that has converged, not one
                             # that memorises its text (2.243 against 2.184 is 2.7%)


def bar_postfix(step: int, bits_per_char: float, chars_per_s: float) -> str:
    return f"step {step}, {bits_per_char:.3f} bits/char, {chars_per_s:,.0f} chars/s"


class Validation(NamedTuple):
    step: int
    bits_per_char: float


def overfitting(history: list[Validation], n: int = OVERFIT_EVALUATIONS,
                margin: float = OVERFIT_MARGIN) -> tuple[Validation, Validation] | None:
    """(best, latest) if the last ``n`` validations all came after the best one and the latest is
    more than ``margin`` (relative) above it; else None."""
    if not history:
        return None
    best = min(range(len(history)), key=lambda i: history[i].bits_per_char)    # the first of equals
    latest = history[-1]
    if len(history) - 1 - best >= n and latest.bits_per_char > history[best].bits_per_char * (1 + margin):
        return history[best], latest
    return None


def overfitting_message(best: Validation, latest: Validation, training_bits: float, n: int) -> str:
    return (f"validation has not improved for {n} evaluations ({latest.bits_per_char:.3f} bits/char at "
            f"step {latest.step} against the best {best.bits_per_char:.3f} at step {best.step}) while the "
            f"training loss fell to {training_bits:.3f} bits/char: the model is overfitting (learning its "
            f"training text by heart). best.safetensors keeps the weights of step {best.step}, which "
            "generate, eval, inspect and export use; for a better model give more text, --dropout 0.2 "
            "or more, or a smaller --hidden")
