"""scikit-learn, if installed: the estimators inherit its base classes; if not, small stand-ins.

With scikit-learn the estimators are true scikit-learn estimators (``BaseEstimator`` gives
``get_params``/``set_params``, ``clone``, the tag protocol ``__sklearn_tags__`` and the HTML repr;
the mixins give ``score`` and the estimator type). Without it the stand-ins give the same
``get_params``/``set_params``/``score`` behaviour, so fitting, predicting and saving work either
way; only what needs scikit-learn itself (``clone``, ``Pipeline``, ``GridSearchCV``) needs it.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

try:                                                     # scikit-learn is an optional extra
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import DataConversionWarning
    from sklearn.exceptions import NotFittedError as _SklearnNotFitted
    HAVE_SKLEARN = True
except ImportError:                                      # pragma: no cover - exercised without sklearn
    HAVE_SKLEARN = False

    class _SklearnNotFitted(ValueError, AttributeError):
        pass

    class DataConversionWarning(UserWarning):
        pass

    class BaseEstimator:
        """get_params / set_params / repr from the constructor's signature, as scikit-learn's."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep: bool = True) -> dict:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                                     f"Valid parameters are: {valid!r}.")
                setattr(self, key, value)
            return self

        def __repr__(self) -> str:
            defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
            changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
            return f"{type(self).__name__}({', '.join(changed)})"

    class ClassifierMixin:
        _estimator_type = "classifier"

        def score(self, X, y) -> float:
            """Mean accuracy of ``predict(X)`` against ``y``."""
            return float(np.mean(self.predict(X) == np.asarray(y)))

    class RegressorMixin:
        _estimator_type = "regressor"

        def score(self, X, y) -> float:
            """Coefficient of determination R² (averaged uniformly over outputs)."""
            return r2_score(np.asarray(y, dtype=np.float64), self.predict(X))


class NotFittedError(_SklearnNotFitted):
    """A method that needs a fitted model was called before ``fit`` (or ``load``)."""


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)², per output, averaged uniformly (scikit-learn's default)."""
    y2, p2 = y.reshape(len(y), -1), np.asarray(pred, np.float64).reshape(len(y), -1)
    ss_res = ((y2 - p2) ** 2).sum(axis=0)
    ss_tot = ((y2 - y2.mean(axis=0)) ** 2).sum(axis=0)
    ok = ss_tot > 0
    scores = np.where(ok, 1 - ss_res / np.where(ok, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
    return float(scores.mean())


def column_vector_warning(name: str) -> None:
    warnings.warn(f"A column-vector y was passed when a 1d array was expected; {name} reads it as "
                  "shape (n_samples,)", DataConversionWarning, stacklevel=4)


def sklearn_tags(base_tags, *, multi_output: bool = False, target_required: bool = True):
    """Our tags on top of the base classes' (only called by scikit-learn, so it is importable)."""
    base_tags.input_tags.three_d_array = True            # (n, T, F) arrays and lists of sequences
    base_tags.input_tags.two_d_array = True              # (n, T): n univariate sequences
    base_tags.target_tags.multi_output = multi_output
    base_tags.target_tags.required = target_required
    base_tags.non_deterministic = False                  # a fixed random_state fixes every result
    return base_tags
