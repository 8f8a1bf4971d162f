"""Sequence models with the scikit-learn interface: classification, regression, forecasting.

    from rnnkit.models import RNNClassifier, RNNRegressor, RNNForecaster, cross_validate

They work without scikit-learn installed; with it (``pip install "rnnkit[sklearn]"``) they are
scikit-learn estimators (``clone``, ``Pipeline``, ``GridSearchCV``, ``check_estimator``).
The estimators are imported on first use, so that the command line (which imports
``rnnkit.models.commands``) does not pay for importing scikit-learn on every start.
"""

from __future__ import annotations

import importlib

_WHERE = {"RNNClassifier": "classifier", "RNNRegressor": "regressor", "RNNForecaster": "forecaster"}

__all__ = sorted(_WHERE)                  # the estimators (persist.load_estimator reads this list)
_FUNCTIONS = {"cross_validate": "backtest", "estimate_season": "season"}


def __getattr__(name: str):
    if name in _WHERE or name in _FUNCTIONS:
        where = _WHERE.get(name) or _FUNCTIONS[name]
        return getattr(importlib.import_module(f"rnnkit.models.{where}"), name)
    raise AttributeError(f"module 'rnnkit.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__ + list(_FUNCTIONS))
