"""What every cell kernel shares: the weight record, the tape record and the kernel interface.

A *kernel* is the arithmetic of one recurrent cell, split the way the spec's BPTT section asks:

- the input projection ``x_t W_ihᵀ + b_ih`` for all steps is one matrix product done by the caller
  (:mod:`rnnkit.scan`), written into the ``gates`` buffer of shape (T, B, G·H); ``input_side``
  then adds ``input_side_bias(w)`` there: b_ih plus the part of b_hh that is a constant term of
  the pre-activation (all of it, except the GRU's b_hn under reset_after), added once, not per
  step (a layer-normalised cell normalises the product first, :mod:`rnnkit.kernels.layer_norm`);
  ``input_side_grad`` takes DA back to the gradient reaching ``x_t W_ihᵀ``;
- ``forward_step`` adds the recurrent term for one step and turns the pre-activations in
  ``gates[t]`` into gate activations, in place, and writes the new state; the recurrent products
  read ``entering.h`` (:class:`Entering`: m_h ⊙ h_{t-1} under recurrent dropout; None: h_{t-1});
- ``backward_step`` goes back one step: from the gradient reaching the new state it writes the
  pre-activation gradient ``da`` (B, G·H) and returns the gradient reaching the previous state;
- ``recurrent_grads`` turns the stacked ``DA`` (T, B, G·H) into the gradients of the recurrent
  parameters with single matrix products; the caller does ``W_ih`` and ``b_ih`` the same way.

These kernels, driven by :mod:`rnnkit.scan`, are the readable reference that docs/bptt.md derives
line by line; :mod:`rnnkit.engine` is the fast implementation of the same equations, tested
against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np


@dataclass
class Weights:
    """The arrays of one cell (one layer, one direction), named as in the spec's equations.

    Not frozen: a gradient record is updated with ``dw.weight_hh += ...``, which adds in place
    into the parameter's ``grad`` array and rebinds the field to that same array.
    """

    weight_ih: np.ndarray                  # (G·H, I)
    weight_hh: np.ndarray                  # (G·H, H_out)
    bias_ih: np.ndarray | None = None      # (G·H,)
    bias_hh: np.ndarray | None = None      # (G·H,)
    weight_hr: np.ndarray | None = None    # (P, H): LSTM projection, H_out = P
    weight_ci: np.ndarray | None = None    # (H,): LSTM peepholes
    weight_cf: np.ndarray | None = None
    weight_co: np.ndarray | None = None
    ln_weight_ih: np.ndarray | None = None # (G·H,): layer_norm gains γ_ih, γ_hh
    ln_weight_hh: np.ndarray | None = None
    ln_weight_c: np.ndarray | None = None  # (H,): LSTM layer_norm of c_t, gain γ_c and shift β_c
    ln_bias_c: np.ndarray | None = None
    _hh_t: np.ndarray | None = field(default=None, repr=False, compare=False)

    def weight_hh_t(self) -> np.ndarray:
        """weight_hhᵀ (H_out, G·H): the contiguous copy if :meth:`cache_weight_hh_t` made one, else a view."""
        return self.weight_hh.T if self._hh_t is None else self._hh_t

    def cache_weight_hh_t(self) -> None:
        """Keep a contiguous copy of weight_hhᵀ in this record (one record per call).

        The forward loop multiplies h_{t-1} (B, H_out) by weight_hhᵀ at every step; OpenBLAS runs
        that product 1.3x (B=32, H=256) to 3.7x (B=8, H=64) faster with the copy than with the
        transposed view, so the copy pays for itself from the second step on.
        """
        if self._hh_t is None:
            self._hh_t = np.ascontiguousarray(self.weight_hh.T)


@dataclass(frozen=True)
class Tape:
    """What one direction's forward pass keeps for its backward pass, stacked over time."""

    x: np.ndarray                          # (T, B, I) the layer input
    gates: np.ndarray                      # (T, B, G·H) gate activations
    states: tuple[np.ndarray, ...]         # each (T+1, B, n): [0] initial, [t+1] after step t
    aux: Any                               # kernel-specific record of (T, B, ·) arrays, or None
    mask: np.ndarray | None                # (T, B, 1) bool, True where t < length; None: all valid
    masks: Any = None                      # rnnkit.inner_dropout.Masks of the call, or None
    entering: np.ndarray | None = None     # (T+1, B, H_out) m_h ⊙ h_t: the h the products read; None: states[0]

    def h_in(self) -> np.ndarray:
        """(T+1, B, H_out) the states as the recurrent products read them (m_h ⊙ h under
        recurrent dropout): ``h_in(tape)[:-1]`` is the H_in of ``dW_hh = DAᵀ H_in``."""
        return self.states[0] if self.entering is None else self.entering


class Entering(NamedTuple):
    """The state entering one step's recurrent products: ``h = m_h ⊙ h_{t-1}`` under recurrent
    dropout (rnnkit.inner_dropout), else h_{t-1} itself (``mask`` None)."""

    h: np.ndarray                          # (B, H_out)
    mask: np.ndarray | None                # (B, H_out) m_h, or None

    def back(self, dh_in: np.ndarray) -> np.ndarray:
        """The gradient reaching h_{t-1} through h_in: ``m_h ⊙ dh_in``."""
        return dh_in if self.mask is None else dh_in * self.mask

    @staticmethod
    def of(prev: tuple, entering: "Entering | None") -> "Entering":
        return Entering(prev[0], None) if entering is None else entering


class Kernel(Protocol):
    """The interface :mod:`rnnkit.scan` drives; see the module docstring."""

    num_gates: int
    hidden_size: int

    def state_sizes(self) -> tuple[int, ...]: ...

    def input_side_bias(self, w: Weights) -> np.ndarray | None: ...

    def input_side(self, w: Weights, gates: np.ndarray, aux: Any) -> None: ...

    def input_side_grad(self, w: Weights, dw: Weights, aux: Any, da: np.ndarray) -> np.ndarray: ...

    def new_aux(self, steps: int, batch: int, dtype: np.dtype) -> Any: ...

    def aux_at(self, aux: Any, t: int) -> Any: ...

    def forward_step(self, w: Weights, gates: np.ndarray, prev: tuple, new: tuple, aux: Any,
                     entering: Entering | None = None) -> None: ...

    def backward_step(
        self, w: Weights, gates: np.ndarray, prev: tuple, new: tuple, aux: Any,
        dnew: tuple, da: np.ndarray, entering: Entering | None = None,
    ) -> tuple[np.ndarray, ...]: ...

    def recurrent_grads(self, w: Weights, dw: Weights, tape: Tape, da: np.ndarray, dnew: tuple) -> None: ...


class PlainInput:
    """The input side of a cell without normalisation: ``x_t W_ihᵀ + b_ih`` (+ the constant part of b_hh)."""

    def input_side(self, w: Weights, gates: np.ndarray, aux: Any) -> None:
        """gates (T, B, G·H) holds x_t W_ihᵀ; adds ``input_side_bias(w)``, once for all steps."""
        bias = self.input_side_bias(w)
        if bias is not None:
            gates += bias

    def input_side_grad(self, w: Weights, dw: Weights, aux: Any, da: np.ndarray) -> np.ndarray:
        """db_ih = Σ DA; the gradient reaching x_t W_ihᵀ is DA itself."""
        add_bias_grad(dw.bias_ih, da)
        return da


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """In place: a ← σ(a) = 1 / (1 + exp(−a)). exp may overflow to inf, which gives the exact 0.

    Call it under ``np.errstate(over="ignore")`` (as :func:`rnnkit.scan.scan_forward` does, once
    for the whole loop: entering errstate costs ~1.5 µs, a noticeable share of a small step).
    """
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)
    return a


def bias_sum(*biases: np.ndarray | None) -> np.ndarray | None:
    """The sum of the biases that exist (a layer built with bias=False has none)."""
    present = [b for b in biases if b is not None]
    return sum(present[1:], present[0].copy()) if present else None


def flat(a: np.ndarray) -> np.ndarray:
    """(T, B, n) -> (T·B, n) view, so that sums over time and batch become one matrix product."""
    return a.reshape(-1, a.shape[-1])


def add_bias_grad(g: np.ndarray | None, d: np.ndarray) -> None:
    if g is not None:
        g += flat(d).sum(axis=0)
