"""Adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs"): the exact
log-probability of a class among many, at a fraction of the full softmax's cost, as PyTorch's
``nn.AdaptiveLogSoftmaxWithLoss`` (same arguments, parameter names, initialisation and results).

The classes, sorted by decreasing frequency (class 0 the most frequent), are cut at
c_0 < c_1 < … < c_K = V. The head scores the c_0 frequent classes and one entry per tail cluster;
cluster k (k = 1..K) scores its classes [c_{k−1}, c_k) from a projection of width
d_k = ⌊d / div^k⌋, computed only on the rows whose target lies in it:

    z_h = x W_hᵀ (+ b_h)                   (N, c_0 + K)               head
    u_k = x P_kᵀ,  z_k = u_k O_kᵀ          (N_k, d_k), (N_k, c_k − c_{k−1})   cluster k
    log p(y | x) = log softmax(z_h)[y]                                 if y < c_0
                 = log softmax(z_h)[c_0 + k − 1] + log softmax(z_k)[y − c_{k−1}]
                                                                       if c_{k−1} <= y < c_k

so Σ_y p(y | x) = 1 exactly over the V classes. Backward, with g = ∂J/∂log p(y|x) per row
(−1/N for the mean loss) and j the head column of the row's target (y, or c_0 + k − 1):

    dz_h = g (onehot(j) − softmax(z_h)),     dz_k = g (onehot(y − c_{k−1}) − softmax(z_k))
    dW_h = dz_hᵀ x,  db_h = Σ dz_h,  dO_k = dz_kᵀ u_k,  du_k = dz_k O_k,  dP_k = du_kᵀ x_k
    dx = dz_h W_h  (+ du_k P_k on cluster k's rows)

Parameters: ``head.weight`` (c_0 + K, d) [``head.bias``], ``tail.{k-1}.0.weight`` (d_k, d),
``tail.{k-1}.1.weight`` (c_k − c_{k−1}, d_k).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rnnkit.checks import as_float_array, make_rng
from rnnkit.engine import matmul
from rnnkit.grad_mode import is_grad_enabled
from rnnkit.linear import Linear
from rnnkit.module import Module
from rnnkit.ranges import COUNT, POSITIVE, Range


class ASMoutput(NamedTuple):
    """What :meth:`AdaptiveLogSoftmaxWithLoss.forward` returns, as PyTorch's ``_ASMoutput``."""
    output: np.ndarray          # (N,) log-probability of each row's target
    loss: float                 # mean of −output


class ClusterCache(NamedTuple):
    """One tail cluster's part of a forward pass (the rows whose target lies in it)."""
    rows: np.ndarray            # (N_k,) row indices
    x: np.ndarray               # (N_k, d) their inputs
    u: np.ndarray               # (N_k, d_k) projections
    p: np.ndarray               # (N_k, s_k) softmax(z_k)
    target: np.ndarray          # (N_k,) targets relative to the cluster's first class


class AdaptiveCache(NamedTuple):
    x: np.ndarray               # (N, d)
    p_head: np.ndarray          # (N, c_0 + K) softmax(z_h)
    column: np.ndarray          # (N,) head column j of each row
    clusters: tuple[ClusterCache | None, ...]   # None: no row of this batch in the cluster


def _log_softmax_at(z: np.ndarray, target: np.ndarray, keep: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(log softmax(z)[row, target[row]] (N,), softmax(z) or None), computed in place in z."""
    rows = np.arange(len(target))
    z -= z.max(axis=1, keepdims=True)
    at = z[rows, target].copy()
    np.exp(z, out=z)
    total = z.sum(axis=1, keepdims=True)
    at -= np.log(total[:, 0])
    if not keep:
        return at, None
    z /= total
    return at, z


def adaptive_forward(x: np.ndarray, target: np.ndarray, head_weight: np.ndarray, head_bias: np.ndarray | None,
                     tails: Sequence[tuple[np.ndarray, np.ndarray]], cutoffs: Sequence[int],
                     keep: bool = True) -> tuple[np.ndarray, AdaptiveCache | None]:
    """log p(target | x) (N,) for x (N, d) and integer targets (N,); ``cutoffs`` = [c_0, …, c_K = V];
    ``tails`` = [(P_k, O_k)]. With ``keep`` also the cache for :func:`adaptive_backward`."""
    shortlist = cutoffs[0]
    column = np.where(target < shortlist, target, 0)                       # (N,) head column j
    z_h = matmul(x, head_weight, trans_b=True)                             # (N, c_0 + K)
    if head_bias is not None:
        z_h += head_bias
    clusters: list[ClusterCache | None] = []
    parts = []
    for k, (P, O) in enumerate(tails):
        lo, hi = cutoffs[k], cutoffs[k + 1]
        rows = np.flatnonzero((target >= lo) & (target < hi))
        if rows.size == 0:
            clusters.append(None)
            continue
        column[rows] = shortlist + k
        xk = x[rows]                                                       # (N_k, d)
        u = matmul(xk, P, trans_b=True)                                    # (N_k, d_k)
        z_k = matmul(u, O, trans_b=True)                                   # (N_k, s_k)
        rel = target[rows] - lo
        at, p = _log_softmax_at(z_k, rel, keep)
        parts.append((rows, at))
        clusters.append(ClusterCache(rows, xk, u, p, rel) if keep else None)
    output, p_head = _log_softmax_at(z_h, column, keep)
    for rows, at in parts:
        output[rows] += at
    return output, (AdaptiveCache(x, p_head, column, tuple(clusters)) if keep else None)


def _dz(g: np.ndarray, p: np.ndarray, target: np.ndarray) -> np.ndarray:
    """g (onehot(target) − p), row by row, in place in p."""
    p[np.arange(len(target)), target] -= 1.0
    p *= -g[:, None]
    return p


def adaptive_backward(d_output: np.ndarray, cache: AdaptiveCache, head_weight: np.ndarray,
                      tails: Sequence[tuple[np.ndarray, np.ndarray]]):
    """(dx (N, d), dW_h, db_h, [(dP_k, dO_k) or None]) from g = d_output (N,) = ∂J/∂output.
    Consumes the cache (its probabilities are overwritten)."""
    g = np.asarray(d_output, cache.x.dtype)
    dz_h = _dz(g, cache.p_head, cache.column)                              # (N, c_0 + K)
    dW_h = matmul(dz_h, cache.x, trans_a=True)                             # (c_0 + K, d)
    db_h = dz_h.sum(axis=0)
    dx = matmul(dz_h, head_weight)                                         # (N, d)
    grads = []
    for (P, O), c in zip(tails, cache.clusters):
        if c is None:
            grads.append(None)
            continue
        dz_k = _dz(g[c.rows], c.p, c.target)                               # (N_k, s_k)
        dO = matmul(dz_k, c.u, trans_a=True)                               # (s_k, d_k)
        du = matmul(dz_k, O)                                               # (N_k, d_k)
        dP = matmul(du, c.x, trans_a=True)                                 # (d_k, d)
        dx[c.rows] += matmul(du, P)
        grads.append((dP, dO))
    return dx, dW_h, db_h, grads


def adaptive_log_prob(x: np.ndarray, head_weight: np.ndarray, head_bias: np.ndarray | None,
                      tails: Sequence[tuple[np.ndarray, np.ndarray]], cutoffs: Sequence[int]) -> np.ndarray:
    """log p(y | x) for every class y: (N, V), each row's exponentials summing to 1."""
    shortlist = cutoffs[0]
    z_h = matmul(x, head_weight, trans_b=True)
    if head_bias is not None:
        z_h += head_bias
    lp_h = _log_softmax(z_h)                                               # (N, c_0 + K)
    out = np.empty((x.shape[0], cutoffs[-1]), lp_h.dtype)
    out[:, :shortlist] = lp_h[:, :shortlist]
    for k, (P, O) in enumerate(tails):
        z_k = matmul(matmul(x, P, trans_b=True), O, trans_b=True)          # (N, s_k)
        out[:, cutoffs[k]: cutoffs[k + 1]] = _log_softmax(z_k) + lp_h[:, shortlist + k: shortlist + k + 1]
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


N_CLASSES = Range(int, low=2)       # a shortlist and at least one class in a cluster


def check_cutoffs(cutoffs, n_classes: int) -> list[int]:
    """PyTorch's rule: unique positive integers, increasing, each at most n_classes − 1."""
    values = list(cutoffs) if isinstance(cutoffs, (list, tuple)) else None
    if (not values or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in values)
            or values != sorted(set(values)) or values[0] <= 0 or values[-1] > n_classes - 1):
        raise ValueError("cutoffs should be a sequence of unique, positive integers sorted in an increasing "
                         f"order, where each value is between 1 and n_classes-1 = {n_classes - 1}; got {cutoffs!r}")
    return [int(c) for c in values]


class AdaptiveLogSoftmaxWithLoss(Module):
    """PyTorch's ``nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=4.0,
    head_bias=False)``: ``forward(input, target)`` → (output, loss), ``log_prob``, ``predict``;
    and :meth:`backward`, the gradient of the last forward call. See the module's equations."""

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int], div_value: float = 4.0,
                 head_bias: bool = False, *, dtype=np.float32, rng=None) -> None:
        super().__init__(dtype=dtype)
        self.in_features = COUNT.check("in_features", in_features)
        self.n_classes = N_CLASSES.check("n_classes", n_classes)
        self.div_value = POSITIVE.check("div_value", div_value, ValueError)
        self.cutoffs = check_cutoffs(cutoffs, n_classes) + [n_classes]
        self.head_bias = bool(head_bias)
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        rng = make_rng(rng)
        self.head = self.register_module("head", Linear(in_features, self.head_size, bias=head_bias,
                                                        dtype=dtype, rng=rng))
        self.tail = self.register_module("tail", Module(dtype=dtype))
        for k in range(self.n_clusters):
            hsz = int(in_features // (self.div_value ** (k + 1)))
            if hsz < 1:
                raise ValueError(f"tail cluster {k + 1} would have a projection of width "
                                 f"⌊{in_features} / {self.div_value:g}^{k + 1}⌋ = 0; lower div_value or use "
                                 "fewer cutoffs")
            pair = self.tail.register_module(str(k), Module(dtype=dtype))
            pair.register_module("0", Linear(in_features, hsz, bias=False, dtype=dtype, rng=rng))
            pair.register_module("1", Linear(hsz, self.cutoffs[k + 1] - self.cutoffs[k], bias=False,
                                             dtype=dtype, rng=rng))
        self._cache: AdaptiveCache | None = None

    def _tails(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(m._modules["0"].weight.data, m._modules["1"].weight.data) for m in self.tail._modules.values()]

    def _bias(self) -> np.ndarray | None:
        return self.head.bias.data if self.head.bias is not None else None

    def _input(self, x) -> np.ndarray:
        x = as_float_array("input", x, self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"AdaptiveLogSoftmaxWithLoss: input must have shape (N, in_features={self.in_features}), "
                             f"got {x.shape}")
        return np.ascontiguousarray(x)

    def __call__(self, input, target) -> ASMoutput:
        return self.forward(input, target)

    def forward(self, input, target) -> ASMoutput:
        """input (N, in_features) and integer targets (N,) in [0, n_classes) — or (in_features,)
        and a scalar target — → (log-probability of each target, mean negative log-likelihood)."""
        target = np.asarray(target)
        batched = target.ndim == 1
        x = self._input(input if batched else np.asarray(input)[None])
        if target.ndim > 1:
            raise ValueError(f"target must have shape (N,) or (), got {target.shape}")
        t = target.reshape(-1)
        if t.dtype.kind not in "iu":
            raise TypeError(f"target must be integers, got dtype {t.dtype}")
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"input and target must have the same size in the batch dimension, got "
                             f"{x.shape[0]} and {t.shape[0]}")
        if t.size and (t.min() < 0 or t.max() >= self.n_classes):
            raise ValueError(f"target must lie in [0, {self.n_classes}), got min {t.min()} and max {t.max()}")
        keep = is_grad_enabled()
        output, self._cache = adaptive_forward(x, t, self.head.weight.data, self._bias(), self._tails(),
                                               self.cutoffs, keep)
        loss = float(-output.astype(np.float64).mean()) if output.size else 0.0
        return ASMoutput(output if batched else output[0], loss)

    def backward(self, d_output) -> np.ndarray:
        """Add the gradients of J to every ``p.grad`` given ∂J/∂output (N,) of the last forward
        call (−1/N for its mean loss); return ∂J/∂input (N, in_features). Once per forward."""
        if self._cache is None:
            raise RuntimeError("AdaptiveLogSoftmaxWithLoss.backward: no forward call with gradients enabled "
                               "(or backward was already called for it)")
        cache, self._cache = self._cache, None
        d = np.asarray(d_output, self.dtype).reshape(-1)
        if d.shape != cache.column.shape:
            raise ValueError(f"d_output must have shape {cache.column.shape} (the forward's output), "
                             f"got {np.shape(d_output)}")
        dx, dW, db, grads = adaptive_backward(d, cache, self.head.weight.data, self._tails())
        self.head.weight.grad += dW
        if self.head.bias is not None:
            self.head.bias.grad += db
        for pair, g in zip(self.tail._modules.values(), grads):
            if g is not None:
                pair._modules["0"].weight.grad += g[0]
                pair._modules["1"].weight.grad += g[1]
        return dx

    def input_grad(self, input, target) -> np.ndarray:
        """∂(mean −log p(target | input))/∂input (N, in_features) — the gradient of the loss
        alone, with no parameter's ``grad`` touched (for diagnostics such as gradient flow)."""
        x, t = self._input(input), np.asarray(target).reshape(-1)
        _, cache = adaptive_forward(x, t, self.head.weight.data, self._bias(), self._tails(), self.cutoffs)
        dx, _, _, _ = adaptive_backward(np.full(len(t), -1.0 / max(len(t), 1)), cache, self.head.weight.data,
                                        self._tails())
        return dx

    def log_prob(self, input) -> np.ndarray:
        """log p(y | input) for every class: (N, n_classes) — or (n_classes,) for one input."""
        x = np.asarray(input)
        out = adaptive_log_prob(self._input(x if x.ndim != 1 else x[None]), self.head.weight.data,
                                self._bias(), self._tails(), self.cutoffs)
        return out if x.ndim != 1 else out[0]

    def predict(self, input) -> np.ndarray:
        """The most likely class of each input (N,) — ``log_prob(input).argmax(-1)``."""
        return np.argmax(self.log_prob(input), axis=-1)

    def __repr__(self) -> str:
        return (f"AdaptiveLogSoftmaxWithLoss(in_features={self.in_features}, n_classes={self.n_classes}, "
                f"cutoffs={self.cutoffs[:-1]}, div_value={self.div_value:g}, head_bias={self.head_bias})")
