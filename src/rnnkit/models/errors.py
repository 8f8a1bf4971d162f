"""The estimators' errors: the user's to fix, so the command line words them in one line.

Both derive from :class:`rnnkit.errors.UserError` (a ``ValueError``): a Python caller catches them
as ``ValueError`` — what scikit-learn's conventions and ``check_estimator`` expect — and
``rnnkit classify`` / ``rnnkit forecast`` print them as ``rnnkit CMD: error: ...`` with exit code
2, while any other exception inside ``fit`` or ``predict`` stays a bug with its traceback.
"""

from __future__ import annotations

from rnnkit.errors import UserError


class InputError(UserError):
    """Bad input to an estimator — X, y, a history, extra series or a hyperparameter; the
    message names the argument, what was expected and what was found."""


class DataError(UserError):
    """A data file, or the name of a bundled data set, that cannot be used; the message names the
    file (and line) or the name, and says what was expected and what was found."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss was not finite from the first epoch on: no weights worth keeping (also a
    ``FloatingPointError``, what NumPy raises for invalid arithmetic when asked to)."""


def check_choice(name: str, value, options) -> None:
    """InputError naming ``name`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise InputError(f"{name} must be one of {options}, got {value!r}")
