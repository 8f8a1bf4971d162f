"""RNNClassifier: sequence classification with the scikit-learn interface."""

from __future__ import annotations

import numpy as np

from rnnkit.losses import log_softmax, softmax, softmax_cross_entropy
from rnnkit.models._sklearn import ClassifierMixin
from rnnkit.models.base import SequenceEstimator
from rnnkit.models.data import as_sequences
from rnnkit.models.targets import class_labels


class RNNClassifier(ClassifierMixin, SequenceEstimator):
    """A recurrent network beside a convolutional one classifying whole sequences (GRU-FCN).

    ``fit(X, y)``: X is an (n, T) array of univariate sequences, an (n, T, F) array, or a list of
    (T_i,) / (T_i, F) arrays of any lengths; y holds n labels of any type (ints, strings, ...).
    Inputs are standardised per feature with statistics learned in ``fit`` (``normalize="auto"``:
    over all the training steps, or each sequence on its own mean and spread when the sequences'
    spreads differ by more than two orders of magnitude; see ``rnnkit.models.data.Scaler``); long sequences are
    cut into at most 200 frames of k stacked steps (``frame="auto"``). The network
    (``rnnkit.models.network``) reads each sequence twice — a GRU whose outputs are max-pooled,
    and three convolution blocks (Conv1d → BatchNorm1d → ReLU) averaged over time — and a linear
    head classifies the two together through dropout. Training (``rnnkit.models.training``)
    runs a fixed number of Adam steps with a warm-up and a cosine-decayed rate, on all the
    training data (``validation_fraction=0``: no early stopping), and ``n_estimators="auto"``
    trains as many networks as the work budget allows (at most 5) and averages their logits;
    both are decided by the data's size (``rnnkit.models.budget``), never by the clock.

    Parameters
    ----------
    cell : "gru", "lstm" or "rnn".      hidden_size (0: no recurrent branch), num_layers,
    bidirectional : the recurrent branch.   pooling : "attention", "last", "mean" or "max".
    conv_filters, conv_kernels : the convolution blocks' channels and kernel sizes (() and ():
        the recurrent network alone).
    dropout : before the head (and between recurrent layers).
    norm_between : "none", "batch" or "layer": a normalisation after each recurrent layer, before
        the next and before the pooling (``rnnkit.norm.between``).
    layer_norm, recurrent_dropout, zoneout : the recurrent layers' own options, passed to them
        when set (False / 0.0: the plain cells).
    normalize : "auto", "global" or "sequence" (see above).
    frame : "auto" or int k, steps stacked per network step.
    epochs : "auto" or an int.  n_estimators : "auto" or an int, networks averaged.
    batch_size, lr (the peak rate), schedule ("cosine" or "constant"), weight_decay, clip :
        training (Adam, gradient-norm clipping).
    validation_fraction, patience : a held-out share for early stopping (0: none, the default).
    time_budget : seconds of training at most (all networks), or None; the one setting that
        makes a fit depend on the machine's speed.
    verbose : 0 silent, 1 progress bar (on a terminal), 2 also one line per epoch.
    random_state : None, int, RandomState or Generator: initialisation, split and shuffling.

    Attributes
    ----------
    classes_ : the sorted distinct labels.        n_channels_ : features per step F.
    n_features_in_ : T, only when fitted on a 2-D array (whose length it then fixes).
    scaler_, frame_ : the standardisation (``scaler_.mode``: "global" or "sequence") and steps per frame.
    net_ : the trained networks (``NetEnsemble``; ``len(net_)`` of them).
    history_ : per network, the losses per epoch and why training stopped.
    n_epochs_ : epochs run (the most of any network).
    """

    def fit(self, X, y):
        seq = as_sequences(X)
        classes, codes = class_labels(y, seq.n, type(self).__name__)
        self._fit_sequences(seq, codes, len(classes), softmax_cross_entropy, groups=codes)
        self.classes_ = classes
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, K), columns in the order of ``classes_``."""
        return softmax(self._outputs(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities (n, K), log softmax of the network's outputs."""
        return log_softmax(self._outputs(X))

    def predict(self, X) -> np.ndarray:
        """The most probable label of each sequence."""
        z = self._outputs(X)                           # checks fitted first
        return self.classes_[np.argmax(z, axis=1)]

    def _extra_meta(self) -> dict:
        from rnnkit.models.persist import encode_labels
        return {"classes": encode_labels(self.classes_)}

    def _restore(self, header, arrays) -> None:
        from rnnkit.models.persist import decode_labels
        super()._restore(header, arrays)
        self.classes_ = decode_labels(header["classes"])
