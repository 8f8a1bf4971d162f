"""What the estimators share: ``RecurrentEstimator`` (all three: the fitted check, saving and
loading) and ``SequenceEstimator`` (the classifier and the regressor: parameters, input checks,
fitting, prediction).

Fitting: check X (padding ragged lists), learn the per-feature standardisation, stack frames,
split off a validation part, build the network and train it (``rnnkit.models.training``).
Learned attributes end in ``_`` (scikit-learn's convention); the constructor stores its
arguments and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from rnnkit.checks import make_rng
from rnnkit.models._sklearn import BaseEstimator, NotFittedError, sklearn_tags
from rnnkit.models.config import AUTO_FRAME, FitSettings, NetParams, check_frame, frame_for, from_params
from rnnkit.models.data import Scaler, Sequences, as_sequences, stack_frames, validation_split
from rnnkit.models.network import NetConfig, SequenceNet, with_dtype
from rnnkit.models.training import PREDICT_BATCH, History, LossFn, fit_network, predict_network
from rnnkit.models.errors import InputError

N, S = NetParams, FitSettings                       # the defaults of the constructors' parameters


def seed_from(random_state) -> np.random.Generator:
    """A Generator from random_state: None (fresh entropy), an int, a numpy RandomState or Generator."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2 ** 31 - 1))
    try:
        return make_rng(random_state)
    except TypeError:
        raise InputError(f"random_state must be None, an int, a numpy RandomState or Generator, "
                         f"got {type(random_state).__name__} {random_state!r}") from None


class RecurrentEstimator(BaseEstimator):
    """What every estimator shares: the fitted check, and saving and loading (``persist``).

    A subclass gives ``_arrays()`` and ``_meta()`` (its learned state beyond the network and the
    history) and ``_restore(header, arrays)`` (the inverse)."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")

    def _fitted(self, net: SequenceNet, history: History) -> None:
        """Keep the trained network (in float64, see ``with_dtype``) and its history."""
        self.net_ = with_dtype(net, np.float64)
        self.history_ = history
        self.n_epochs_ = len(history.train_loss)

    def save(self, path) -> None:
        """Write the fitted model to ``path`` (safetensors; hyperparameters and labels as JSON)."""
        from rnnkit.models.persist import save_model
        self._check_fitted()
        meta = {"history": asdict(self.history_)} | self._meta()
        save_model(path, type(self).__name__, self.get_params(deep=False), self.net_, self._arrays(), meta)

    @classmethod
    def load(cls, path):
        """The estimator saved at ``path`` by ``cls.save``, ready to predict."""
        from rnnkit.models.persist import ModelFileError, load_model
        header, weights, arrays = load_model(path, cls.__name__)
        try:
            est = cls(**{k: v for k, v in header["params"].items() if k in cls._get_param_names()})
            net = SequenceNet(NetConfig(**header["net"]), rng=0)
            net.load_state_dict(weights)
            est.history_ = History(**header["history"])
            est._restore(header, arrays)
        except ModelFileError as exc:                  # _restore's own refusal, worded already
            raise ModelFileError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: damaged {cls.__name__} file ({type(exc).__name__}: {exc})") from None
        est.net_ = net.eval()
        est.n_epochs_ = len(est.history_.train_loss)
        return est

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _meta(self) -> dict:
        raise NotImplementedError

    def _restore(self, header: dict, arrays: dict) -> None:
        raise NotImplementedError


class SequenceEstimator(RecurrentEstimator):
    """Base of RNNClassifier and RNNRegressor (see their docstrings for the parameters)."""

    _multi_output = False

    def __init__(self, cell=N.cell, hidden_size=N.hidden_size, num_layers=N.num_layers,
                 bidirectional=N.bidirectional, pooling=N.pooling, dropout=N.dropout, frame=AUTO_FRAME,
                 epochs=S.epochs, batch_size=S.batch_size, lr=S.lr, weight_decay=S.weight_decay,
                 clip=S.clip, patience=S.patience, validation_fraction=S.validation_fraction,
                 time_budget=S.time_budget, verbose=S.verbose, random_state=None):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.frame = frame
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.time_budget = time_budget
        self.verbose = verbose
        self.random_state = random_state

    def __sklearn_tags__(self):
        return sklearn_tags(super().__sklearn_tags__(), multi_output=self._multi_output)

    # -- fitting --------------------------------------------------------------------------------
    def _fit_sequences(self, seq: Sequences, targets: np.ndarray, output_size: int, loss_fn: LossFn,
                       groups: np.ndarray | None = None) -> None:
        params = self.get_params(deep=False)
        net_params, settings = from_params(NetParams, params), from_params(FitSettings, params)
        frame = check_frame(self.frame)
        rng = seed_from(self.random_state)
        self.scaler_ = Scaler.fit(seq)
        self.frame_ = frame_for(frame, int(seq.lengths.max()))
        data = stack_frames(self.scaler_.transform(seq), self.frame_)
        train, val = validation_split(seq.n, settings.validation_fraction, rng, groups)
        net = SequenceNet(NetConfig(data.features, output_size, **asdict(net_params)), dtype=np.float32, rng=rng)
        has_val = len(val) > 0
        history = fit_network(
            net, loss_fn, data.subset(train), targets[train], data.subset(val) if has_val else None,
            targets[val] if has_val else None, settings, rng, type(self).__name__)
        self._fitted(net, history)
        self.n_channels_ = seq.features
        if seq.layout == "2d":
            self.n_features_in_ = seq.values.shape[1]
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_

    # -- prediction -----------------------------------------------------------------------------
    def _input(self, X) -> Sequences:
        self._check_fitted()
        seq = as_sequences(X)
        if seq.features != self.n_channels_:
            raise InputError(f"X has {seq.features} feature(s) per step, but {type(self).__name__} "
                             f"was fitted with {self.n_channels_}")
        expected = getattr(self, "n_features_in_", None)
        if seq.layout == "2d" and expected is not None and seq.values.shape[1] != expected:
            raise InputError(f"X has {seq.values.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {expected} features as input (a 2-D X is n sequences of T "
                             "steps, fixed at fit; give sequences of other lengths as a list)")
        return seq

    def _outputs(self, X) -> np.ndarray:
        """Network outputs (n, K) for X, in float64."""
        seq = self._input(X)                           # checks fitted first
        data = stack_frames(self.scaler_.transform(seq), self.frame_)
        return predict_network(self.net_, data, PREDICT_BATCH).astype(np.float64)

    # -- saving (RecurrentEstimator.save / load) -----------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {"scaler.mean": self.scaler_.mean, "scaler.scale": self.scaler_.scale} | self._extra_arrays()

    def _meta(self) -> dict:
        return {"frame": self.frame_, "n_channels": self.n_channels_,
                "n_features_in": getattr(self, "n_features_in_", None)} | self._extra_meta()

    def _restore(self, header: dict, arrays: dict) -> None:
        self.scaler_ = Scaler(arrays["scaler.mean"], arrays["scaler.scale"])
        self.frame_ = int(header["frame"])
        self.n_channels_ = int(header["n_channels"])
        if header["n_features_in"] is not None:        # older files also hold "layout" (X's layout
            self.n_features_in_ = int(header["n_features_in"])  # at fit), which nothing reads

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _extra_meta(self) -> dict:
        return {}
