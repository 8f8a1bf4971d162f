"""The estimators' errors, under the import path they had; they live in :mod:`rnnkit.errors`."""

from rnnkit.errors import DataError, InputError, TrainingDiverged

__all__ = ["DataError", "InputError", "TrainingDiverged"]
