"""RNNClassifier: sequence classification with the scikit-learn interface."""

from __future__ import annotations

import numpy as np

from rnnkit.losses import log_softmax, softmax, softmax_cross_entropy
from rnnkit.models._sklearn import ClassifierMixin
from rnnkit.models.base import SequenceEstimator
from rnnkit.models.data import as_sequences
from rnnkit.models.targets import class_labels


class RNNClassifier(ClassifierMixin, SequenceEstimator):
    """A recurrent network classifying whole sequences: RNN → pooling → linear → softmax.

    ``fit(X, y)``: X is an (n, T) array of univariate sequences, an (n, T, F) array, or a list of
    (T_i,) / (T_i, F) arrays of any lengths; y holds n labels of any type (ints, strings, ...).
    Inputs are standardised per feature with statistics learned in ``fit``; long sequences are
    cut into at most 50 frames of k stacked steps (``frame="auto"``); a stratified
    ``validation_fraction`` is held out and training stops when its loss has not improved for
    ``patience`` epochs, keeping the best weights.

    Parameters
    ----------
    cell : "gru", "lstm" or "rnn".      hidden_size, num_layers, bidirectional: the recurrent stack.
    pooling : "attention", "last", "mean" or "max" (see ``rnnkit.pooling``).
    dropout : before the output layer (and between recurrent layers).
    frame : "auto" or int k, steps stacked per recurrent step.
    epochs, batch_size, lr, weight_decay, clip, patience : training (Adam, gradient-norm clipping).
    validation_fraction : held out for early stopping; 0 trains all ``epochs`` on everything.
    time_budget : seconds of training at most, or None.
    verbose : 0 silent, 1 progress bar (on a terminal), 2 also one line per epoch.
    random_state : None, int, RandomState or Generator: initialisation, split and shuffling.

    Attributes
    ----------
    classes_ : the sorted distinct labels.        n_channels_ : features per step F.
    n_features_in_ : T, only when fitted on a 2-D array (whose length it then fixes).
    scaler_, frame_, net_ : the standardisation, steps per frame and the trained network.
    history_ : losses per epoch, best epoch, why training stopped.   n_epochs_ : epochs run.
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
