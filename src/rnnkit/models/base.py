"""What the estimators share: ``RecurrentEstimator`` (all three: the fitted check, saving and
loading) and ``SequenceEstimator`` (the classifier and the regressor: parameters, input checks,
fitting, prediction).

Fitting: check X (padding ragged lists), learn the per-feature standardisation, stack frames,
split off a validation part, build the network and train it (``rnnkit.models.training``).
Learned attributes end in ``_`` (scikit-learn's convention); the constructor stores its
arguments and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np

from rnnkit.checks import check_choice, make_rng
from rnnkit.errors import InputError
from rnnkit.models._sklearn import BaseEstimator, NotFittedError, sklearn_tags
from rnnkit.models.budget import plan
from rnnkit.models.config import (
    AUTO_FRAME, FCN_DROPOUT, FCN_FILTERS, FCN_HIDDEN, FCN_KERNELS, FitSettings, NetParams, check_frame, frame_for, from_params,
)
from rnnkit.models.data import (
    SEQUENCE_NORMALIZATIONS, Scaler, Sequences, as_sequences, choose_normalization, stack_frames,
    validation_split,
)
from rnnkit.models.ensemble import NetEnsemble
from rnnkit.models.network import NetConfig, SequenceNet
from rnnkit.models.training import PREDICT_BATCH, History, LossFn, fit_network, predict_network

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

    def _fitted(self, nets: list[SequenceNet], histories: list[History]) -> None:
        """Keep the trained networks (in float64, see ``with_dtype``) and their histories."""
        self.net_ = NetEnsemble(nets).with_dtype(np.float64)
        self.history_ = histories
        self.n_epochs_ = max(len(h.train_loss) for h in histories)

    def _train_networks(self, cfg: NetConfig, settings: FitSettings, train: Sequences, y_train,
                        val: Sequences | None, y_val, loss_fn: LossFn, rng) -> None:
        """Plan the fit (:mod:`rnnkit.models.budget`), train each member of the ensemble in turn
        from the one generator, and keep them; a time budget covers all members."""
        p = plan(train.n, int(train.lengths.sum()), cfg, settings.batch_size, settings.epochs,
                 settings.n_estimators)
        deadline = None if settings.time_budget is None else time.perf_counter() + settings.time_budget
        nets, histories = [], []
        for m in range(p.members):
            if deadline is not None:
                left = deadline - time.perf_counter()
                if m and left <= 0:
                    break
                settings = replace(settings, time_budget=max(left, 1e-3))
            net = self._new_network(cfg, rng)
            desc = type(self).__name__ + (f" {m + 1}/{p.members}" if p.members > 1 else "")
            histories.append(fit_network(net, loss_fn, train, y_train, val, y_val, settings, p.epochs, rng, desc))
            nets.append(net)
        self._fitted(nets, histories)

    def _new_network(self, cfg: NetConfig, rng) -> SequenceNet:
        """An untrained network of ``cfg`` in float32 (training's precision), from ``rng``."""
        return SequenceNet(cfg, dtype=np.float32, rng=rng)

    def save(self, path) -> None:
        """Write the fitted model to ``path`` (safetensors; hyperparameters and labels as JSON)."""
        from rnnkit.models.persist import save_model
        self._check_fitted()
        meta = {"history": [asdict(h) for h in self.history_]} | self._meta()
        save_model(path, type(self).__name__, self.get_params(deep=False), self.net_, self._arrays(), meta)

    @classmethod
    def load(cls, path):
        """The estimator saved at ``path`` by ``cls.save``, ready to predict."""
        from rnnkit.models.persist import ModelFileError, load_model, params_from_json
        header, weights, arrays = load_model(path, cls.__name__)
        try:
            params = params_from_json(header["params"])
            est = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
            net = NetEnsemble.build(NetConfig(**header["net"]), int(header["members"]), np.float64)
            net.load_state_dict(weights)
            est.history_ = [History(**h) for h in header["history"]]
            est._restore(header, arrays)
        except ModelFileError as exc:                  # _restore's own refusal, worded already
            raise ModelFileError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: damaged {cls.__name__} file ({type(exc).__name__}: {exc})") from None
        est.net_ = net.eval()
        est.n_epochs_ = max(len(h.train_loss) for h in est.history_)
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

    def __init__(self, cell=N.cell, hidden_size=FCN_HIDDEN, num_layers=N.num_layers,
                 bidirectional=N.bidirectional, pooling=N.pooling, dropout=FCN_DROPOUT,
                 conv_filters=FCN_FILTERS, conv_kernels=FCN_KERNELS, norm_between=N.norm_between,
                 layer_norm=N.layer_norm, recurrent_dropout=N.recurrent_dropout, zoneout=N.zoneout,
                 normalize="auto", frame=AUTO_FRAME,
                 epochs=S.epochs, n_estimators=S.n_estimators, batch_size=S.batch_size, lr=S.lr,
                 schedule=S.schedule, weight_decay=S.weight_decay, clip=S.clip, patience=S.patience,
                 validation_fraction=S.validation_fraction, time_budget=S.time_budget,
                 verbose=S.verbose, random_state=None):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.conv_filters = conv_filters
        self.conv_kernels = conv_kernels
        self.norm_between = norm_between
        self.layer_norm = layer_norm
        self.recurrent_dropout = recurrent_dropout
        self.zoneout = zoneout
        self.normalize = normalize
        self.frame = frame
        self.epochs = epochs
        self.n_estimators = n_estimators
        self.schedule = schedule
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
        check_choice("normalize", self.normalize, SEQUENCE_NORMALIZATIONS, InputError)
        self.scaler_ = Scaler.fit(seq, choose_normalization(self.normalize, seq))
        self.frame_ = frame_for(frame, int(seq.lengths.max()))
        data = stack_frames(self.scaler_.transform(seq), self.frame_)
        train, val = validation_split(seq.n, settings.validation_fraction, rng, groups)
        cfg = NetConfig(data.features, output_size, **asdict(net_params))
        has_val = len(val) > 0
        self._train_networks(cfg, settings, data.subset(train), targets[train],
                             data.subset(val) if has_val else None, targets[val] if has_val else None,
                             loss_fn, rng)
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
        sc = self.scaler_
        return {"scaler.mean": sc.mean, "scaler.scale": sc.scale, "scaler.log_mean": sc.log_mean,
                "scaler.log_scale": sc.log_scale} | self._extra_arrays()

    def _meta(self) -> dict:
        return {"frame": self.frame_, "n_channels": self.n_channels_, "normalize": self.scaler_.mode,
                "n_features_in": getattr(self, "n_features_in_", None)} | self._extra_meta()

    def _restore(self, header: dict, arrays: dict) -> None:
        self.scaler_ = Scaler(arrays["scaler.mean"], arrays["scaler.scale"], header.get("normalize", "global"),
                              *(arrays[k] for k in ("scaler.log_mean", "scaler.log_scale") if k in arrays))
        self.frame_ = int(header["frame"])
        self.n_channels_ = int(header["n_channels"])
        if header["n_features_in"] is not None:        # older files also hold "layout" (X's layout
            self.n_features_in_ = int(header["n_features_in"])  # at fit), which nothing reads

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _extra_meta(self) -> dict:
        return {}
