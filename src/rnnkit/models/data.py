"""Input checking and preparation for the sequence estimators.

Accepted X: an (n, T) array (n univariate sequences of T steps), an (n, T, F) array, or a list of
n arrays of shapes (T_i,) or (T_i, F) with any lengths T_i ≥ 1 (and the same F). Everything is
brought to one padded float64 array (n, T_max, F) with lengths (n,); padded steps are zeros and
are masked everywhere downstream. Each error names the argument and says what was expected and
what was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnkit.errors import InputError


@dataclass(frozen=True)
class Sequences:
    """n sequences padded to a common length: values (n, T_max, F), lengths (n,)."""

    values: np.ndarray
    lengths: np.ndarray
    layout: str                     # "2d", "3d" or "list" (ragged): a 2-D X fixes the length T

    @property
    def n(self) -> int:
        return self.values.shape[0]

    @property
    def features(self) -> int:
        return self.values.shape[2]

    def subset(self, idx: np.ndarray) -> "Sequences":
        lengths = self.lengths[idx]
        top = int(lengths.max()) if len(idx) else 0
        return Sequences(self.values[idx, :top], lengths, self.layout)


def _is_sparse(X) -> bool:
    return hasattr(X, "toarray") and hasattr(X, "nnz")


def _numeric(name: str, a) -> np.ndarray:
    """float64 array; complex and non-numeric input are errors (TypeError from numpy for objects)."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise InputError(f"Complex data not supported: {name} has dtype {a.dtype}; expected real numbers")
    if a.dtype.kind in "US":
        raise InputError(f"{name} must hold numbers, got strings (dtype {a.dtype})")
    return a.astype(np.float64)          # object arrays of numbers convert; anything else raises


def check_finite(name: str, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        kind = "NaN" if np.isnan(a[tuple(bad)]) else "infinity (inf)"
        raise InputError(f"{name} contains {kind} at index {tuple(int(i) for i in bad)}: "
                         "expected finite numbers (fill or drop missing values first)")


def as_sequences(X, name: str = "X") -> Sequences:
    """Check and pad X (see the module docstring)."""
    if X is None:
        raise InputError(f"{name} is None: expected an (n, T) or (n, T, F) array or a list of sequences")
    if _is_sparse(X):
        raise TypeError(f"{name} is a sparse matrix; sparse input is not supported: pass a dense array")
    if isinstance(X, (list, tuple)) and X and not all(np.ndim(x) == 0 for x in X):
        parts = [_numeric(f"{name}[{i}]", x) for i, x in enumerate(X)]
        if len({p.shape for p in parts}) > 1 or any(p.ndim not in (1, 2) for p in parts):
            return _ragged(name, parts)
        X = np.stack(parts)                   # equal lengths: the same as the array (scikit-learn)
    else:
        X = _numeric(name, X)
    layout = "2d" if X.ndim == 2 else "3d"
    if X.ndim not in (2, 3):
        raise InputError(f"{name} must be a 2-D (n, T) or 3-D (n, T, F) array or a list of (T_i,) / "
                         f"(T_i, F) sequences, got {X.ndim}-D shape {X.shape}"
                         + ("; Reshape your data: X[None] (or [X]) for one sequence" if X.ndim == 1 else ""))
    if X.shape[0] == 0:
        raise InputError(f"{name} is empty: found 0 sample(s) (shape={X.shape}) while a minimum of 1 is required")
    if X.shape[1] == 0:
        raise InputError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required: "
                         "each sequence needs at least one time step")
    if X.ndim == 3 and X.shape[2] == 0:
        raise InputError(f"{name} has 0 features per step (shape={X.shape}); expected at least 1")
    check_finite(name, X)
    values = X[:, :, None] if X.ndim == 2 else X
    return Sequences(np.ascontiguousarray(values), np.full(X.shape[0], X.shape[1], np.int64), layout)


def _ragged(name: str, parts: list[np.ndarray]) -> Sequences:
    for i, p in enumerate(parts):
        if p.ndim not in (1, 2):
            raise InputError(f"{name}[{i}] must be a (T,) or (T, F) sequence, got shape {p.shape}")
        if p.shape[0] == 0:
            raise InputError(f"{name}[{i}] is empty: every sequence needs at least one time step")
        check_finite(f"{name}[{i}]", p)
    feats = [1 if p.ndim == 1 else p.shape[1] for p in parts]
    if len(set(feats)) > 1:
        first = feats[0]
        bad = next(i for i, f in enumerate(feats) if f != first)
        raise InputError(f"{name}: every sequence must have the same number of features per step; "
                         f"{name}[0] has {first}, {name}[{bad}] has {feats[bad]} (shape {parts[bad].shape})")
    if feats[0] == 0:
        raise InputError(f"{name} has 0 features per step; expected at least 1")
    lengths = np.array([p.shape[0] for p in parts], np.int64)
    values = np.zeros((len(parts), int(lengths.max()), feats[0]))
    for i, p in enumerate(parts):
        values[i, :len(p)] = p.reshape(len(p), -1)
    return Sequences(values, lengths, "list")


# -- standardisation -----------------------------------------------------------------------------

def spread_or_one(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The divisor that standardises values of this ``std`` and ``mean`` (per feature): the std,
    or 1 where it is zero or rounding noise (below 1e-12 of max(1, |mean|)), so that a constant
    feature maps to zeros instead of dividing by ~0."""
    return np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)


SEQUENCE_NORMALIZATIONS = ("auto", "global", "sequence")      # the classifier's and regressor's
# normalize="auto" standardises per sequence when the sequences' own spreads (their standard
# deviations, per feature) differ by more than this many orders of magnitude between the 10th and
# the 90th percentile: global standardisation would leave the quiet tenth at under 1% of the unit
# scale, where the network cannot tell them apart. Measured (one GRU-FCN network, seed 0): PLAID
# (5.1 orders) 0.29 global, 0.83 per sequence; the other development sets span at most 1.75
# orders, and per-sequence scaling lost on JapaneseVowels (0.98 → 0.78, 0.5 orders), whose
# levels carry the class, and on UnitTest (0.91-0.95 → 0.86).
SPREAD_DECADES = 2.0


def sequence_moments(seq: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """(m, s): each sequence's mean and standard deviation per feature over its valid steps, (n, F)."""
    mask = (np.arange(seq.values.shape[1])[None, :] < seq.lengths[:, None])[:, :, None]   # (n, T, 1)
    count = seq.lengths[:, None].astype(np.float64)
    m = np.where(mask, seq.values, 0.0).sum(axis=1) / count
    s = np.sqrt(np.where(mask, (seq.values - m[:, None, :]) ** 2, 0.0).sum(axis=1) / count)
    return m, s


def spread_decades(seq: Sequences) -> float:
    """log10 of P90 / P10 of the sequences' spreads, the largest over the features."""
    _, s = sequence_moments(seq)
    low, high = np.percentile(s, 10, axis=0), np.percentile(s, 90, axis=0)
    return float(np.max(np.log10(np.maximum(high, 1e-300) / np.maximum(low, 1e-300))))


@dataclass(frozen=True)
class Scaler:
    r"""Standardisation, learned in ``fit``:

        "global"     z_t = (x_t − μ) / σ                       μ, σ per feature over every valid step
        "sequence"   z_t = (x_t − m_i) / s_i,  ℓ = (log s_i − μ_ℓ) / σ_ℓ     F → 2F features:
                     each sequence i on its own mean and spread, and beside each feature its
                     log-spread ℓ (constant over the sequence), standardised over the training set

    Padded steps are 0. A constant feature (or sequence) divides by 1 instead of ~0.
    """

    mean: np.ndarray                # (F,) μ
    scale: np.ndarray               # (F,) σ, 1 where a feature is constant
    mode: str = "global"
    log_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))     # (F,) μ_ℓ ("sequence")
    log_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))    # (F,) σ_ℓ ("sequence")

    @classmethod
    def fit(cls, seq: Sequences, mode: str = "global") -> "Scaler":
        mask = np.arange(seq.values.shape[1])[None, :] < seq.lengths[:, None]   # (n, T)
        rows = seq.values[mask]                                                  # (Σ T_i, F)
        mean = rows.mean(axis=0)
        scaler = cls(mean, spread_or_one(rows.std(axis=0), mean))
        if mode == "global":
            return scaler
        log_s = scaler.log_spread(sequence_moments(seq)[1])                     # (n, F)
        log_mean = log_s.mean(axis=0)
        return cls(scaler.mean, scaler.scale, "sequence", log_mean, spread_or_one(log_s.std(axis=0), log_mean))

    @property
    def features_out(self) -> int:
        return len(self.mean) * (2 if self.mode == "sequence" else 1)

    def log_spread(self, s: np.ndarray) -> np.ndarray:
        """log s, with s floored at 1e-12 of the feature's scale (a constant sequence)."""
        return np.log(np.maximum(s, 1e-12 * self.scale))

    def transform(self, seq: Sequences) -> Sequences:
        mask = (np.arange(seq.values.shape[1])[None, :] < seq.lengths[:, None])[:, :, None]
        if self.mode == "global":
            z = (seq.values - self.mean) / self.scale
        else:
            m, s = sequence_moments(seq)                                         # (n, F)
            z = (seq.values - m[:, None, :]) / spread_or_one(s, m)[:, None, :]
            ell = (self.log_spread(s) - self.log_mean) / self.log_scale          # (n, F)
            z = np.concatenate([z, np.broadcast_to(ell[:, None, :], z.shape)], axis=2)
        return Sequences(np.where(mask, z, 0.0), seq.lengths, seq.layout)


def choose_normalization(normalize: str, seq: Sequences) -> str:
    """normalize="auto": "sequence" if the spreads span more than SPREAD_DECADES, else "global"."""
    if normalize != "auto":
        return normalize
    return "sequence" if spread_decades(seq) > SPREAD_DECADES else "global"


def stack_frames(seq: Sequences, k: int) -> Sequences:
    """Frame stacking: every k consecutive steps become one step of k·F features.

    (n, T, F) → (n, ⌈T/k⌉, k·F); a sequence of length L gets ⌈L/k⌉ steps, its last frame padded
    with zeros (the standardised mean). k = 1 returns the input.
    """
    if k == 1:
        return seq
    n, T, F = seq.values.shape
    steps = -(-T // k)
    padded = np.zeros((n, steps * k, F))
    padded[:, :T] = seq.values
    return Sequences(padded.reshape(n, steps, k * F), -(-seq.lengths // k), seq.layout)


# -- batches -------------------------------------------------------------------------------------

def bucket_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled mini-batches of similar lengths (a pool of 50 batches is sorted by length, cut into
    batches, and the batches shuffled), so padding costs little; equal lengths: plain shuffling.
    A last batch of one sequence joins the one before it (batch normalisation's statistics)."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:      # batch statistics need two sequences
        batches[-2:] = [np.concatenate(batches[-2:])]
    return [batches[i] for i in rng.permutation(len(batches))]


def ordered_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches for inference: sorted by length (least padding); callers put results back in place."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def time_major(seq: Sequences, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T_batch, B, F) padded to the batch's longest sequence, and its lengths (B,)."""
    lengths = seq.lengths[idx]
    top = int(lengths.max())
    return np.ascontiguousarray(seq.values[idx, :top].transpose(1, 0, 2)), lengths


# -- splits --------------------------------------------------------------------------------------

def validation_split(n: int, fraction: float, rng: np.random.Generator,
                     groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``fraction`` of the samples, stratified by ``groups``
    (class codes) when given, never taking a class's last training sample. Empty validation when
    ``fraction`` is 0 or the data are too few (fewer than 2 samples would be left to train)."""
    if fraction <= 0 or n < 4:
        return np.arange(n), np.arange(0)
    groups = np.zeros(n, np.int64) if groups is None else groups
    val = []
    for g in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == g))
        take = min(int(round(fraction * len(members))), len(members) - 1)
        val.append(members[:take])
    val = np.concatenate(val) if val else np.arange(0)
    if len(val) == 0:                                     # tiny classes: one sample of the largest
        counts = np.bincount(groups)
        big = np.flatnonzero(groups == np.argmax(counts))
        val = rng.permutation(big)[:1] if counts.max() > 1 else val
    train = np.setdiff1d(np.arange(n), val)
    return train, np.sort(val)
