"""What a numeric setting accepts, stated once as data: rnnkit's one vocabulary of ranges.

A :class:`Range` is an integer or a finite number between optional bounds, and optionally a few
values besides (None, "auto"). The same object checks an argument of a layer or an estimator
(:meth:`Range.check`), a key of a run's config.json (:meth:`Range.problem`) and an option on the
command line (as an argparse ``type=``, so that a bad number is refused before any work starts),
and it alone words the message: the argument, what it accepts, what it got::

    COUNT.check("hidden_size", 0)                     # ValueError: hidden_size must be an
                                                      # integer >= 1, got 0
    parser.add_argument("--lr", type=POSITIVE)        # rnnkit train: error: argument --lr:
                                                      # must be a finite number > 0, got 'nan'
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    kind: type = float              # int, or float (always finite: nan and ±inf are refused)
    low: float | None = None        # None: unbounded below
    high: float | None = None       # None: unbounded above
    low_open: bool = False          # True: ``low`` itself is excluded
    high_open: bool = False         # True: ``high`` itself is excluded
    also: tuple = ()                # values accepted as they are besides the numbers: None, "auto"

    def describe(self) -> str:
        """'an integer >= 1', 'a finite number in [0, 1)', "an integer >= 0, 'valid' or 'same'", ..."""
        parts = [self._numbers(), *(repr(v) for v in self.also)]
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"

    def _numbers(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None:
            return (f"{what} in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        return what

    def _extra(self, value) -> bool:
        """Whether ``value`` is one of :attr:`also` (None by identity, strings by equality)."""
        return any(value is v or (isinstance(value, str) and value == v) for v in self.also)

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def _right_type(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        return self.kind is not int or isinstance(value, numbers.Integral)

    def problem(self, name: str, value) -> str | None:
        """Why ``value`` is not acceptable for ``name`` (naming the range and the value), or None."""
        if self._extra(value):
            return None
        if not self._right_type(value):
            return f"{name} {self._refusal(f'{type(value).__name__} {value!r}')}"
        if not self.contains(value):
            return f"{name} {self._refusal(repr(value))}"
        return None

    def _refusal(self, got: str) -> str:
        return f"must be {self.describe()}, got {got}"

    def check(self, name: str, value, error: type[Exception] | None = None):
        """``value`` as ``kind`` if acceptable (one of :attr:`also` as it is); else ``error`` if
        given (the estimators' InputError), otherwise TypeError (wrong type) or ValueError (out of
        range), with :meth:`problem`'s message."""
        problem = self.problem(name, value)
        if problem is not None:
            raise (error or (ValueError if self._right_type(value) else TypeError))(problem)
        return value if self._extra(value) else self.kind(value)

    def __call__(self, text: str):
        """argparse ``type=``: the option's text as a number in range (or one of :attr:`also` that
        is a string), or an ArgumentTypeError (argparse names the option)."""
        if self._extra(text):
            return text
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(self._refusal(repr(text)))
        return value


# The ranges most options use.
COUNT = Range(int, low=1)                       # sizes, steps, lengths
NONNEGATIVE_INT = Range(int, low=0)             # 0 meaning "none" or "off"
SEED = Range(int, low=0)                        # NumPy seeds are non-negative integers
POSITIVE = Range(float, low=0, low_open=True)   # learning rates, times
NONNEGATIVE = Range(float, low=0)               # 0 meaning "off"
FINITE = Range(float)                           # any finite number
PROBABILITY_BELOW_1 = Range(float, low=0, high=1, high_open=True)     # dropout
FRACTION = Range(float, low=0, high=1, low_open=True, high_open=True)  # held-out share
THREAD_COUNT = Range(int, low=1, also=(None,))  # set_num_threads: None goes back to the environment
