"""One direction of one layer over a whole sequence: the BPTT loop, forward and backward.

The reference implementation, in NumPy, that docs/bptt.md derives: the input projection,
``dW_ih``, ``db_ih``, ``dW_hh`` and ``dx`` are single matrix products over all T·B rows; only the
recurrent term runs step by step (``kernel.forward_step`` / ``kernel.backward_step``).
It is the reference backend's ``layer_forward`` / ``layer_backward`` (:mod:`rnnkit.backend`);
:mod:`rnnkit.engine.layer` is the engine's, the fast implementation of the same contract.

Lengths follow PyTorch's packed sequences: at a step t ≥ length the sequence's state is carried
over unchanged, its output is zero, and in the backward pass no gradient enters that step.

Dropout inside the recurrence (:mod:`rnnkit.inner_dropout`) is a :class:`Masks` record: the
kernel's products read ``h_in = m_h ⊙ h_{t-1}`` (kept as the tape's ``entering``), and zoneout
blends each new state part with the previous one after the kernel's step::

    s_t = s̃_t + k_t ⊙ (s_{t-1} − s̃_t)                 forward (= k_t ⊙ s_{t-1} + (1 − k_t) ⊙ s̃_t)
    ds̃_t = (1 − k_t) ⊙ ds_t,   ds_{t-1} = k_t ⊙ ds_t + (the kernel's backward of ds̃_t)
"""

from __future__ import annotations

import numpy as np

from rnnkit.inner_dropout import Masks
from rnnkit.kernels.base import Entering, Kernel, Tape, Weights, flat


def scan_forward(kernel: Kernel, w: Weights, x: np.ndarray, state0: tuple, mask=None,
                 masks: Masks | None = None) -> Tape:
    """Run the cell over x (T, B, I) from ``state0``; ``mask`` (T, B, 1) marks the valid steps;
    ``masks``: recurrent dropout and zoneout (None: neither)."""
    T, B, _ = x.shape
    gates = (flat(x) @ w.weight_ih.T).reshape(T, B, -1)                  # (T, B, G·H)
    aux = kernel.new_aux(T, B, x.dtype)
    kernel.input_side(w, gates, aux)        # + b_ih and the constant part of b_hh (LN forms: normalised first)
    states = tuple(np.empty((T + 1, B, n), x.dtype) for n in kernel.state_sizes())
    for s, s0 in zip(states, state0):
        s[0] = s0
    m_h = None if masks is None else masks.recurrent
    keep = None if masks is None else masks.keep
    entering = None if m_h is None else np.empty_like(states[0])       # (T+1, B, H_out) m_h ⊙ h_t
    if entering is not None:
        np.multiply(states[0][0], m_h, out=entering[0])
    if T > 1:
        w.cache_weight_hh_t()
    with np.errstate(over="ignore"):                 # exp(−a) → inf gives σ(a) = 0 exactly
        for t in range(T):
            prev, new = tuple(s[t] for s in states), tuple(s[t + 1] for s in states)
            e = {} if entering is None else {"entering": Entering(entering[t], m_h)}
            kernel.forward_step(w, gates[t], prev, new, kernel.aux_at(aux, t), **e)
            if keep is not None:                                         # zoneout: s_t = s̃ + k (s_{t-1} − s̃)
                for p, n, k in zip(prev, new, keep):
                    n += k[t] * (p - n)
            if mask is not None:
                for p, n in zip(prev, new):
                    np.copyto(n, p, where=~mask[t])                     # padded: state unchanged
            if entering is not None:
                np.multiply(new[0], m_h, out=entering[t + 1])
    return Tape(x, gates, states, aux, mask, masks, entering)


def scan_output(tape: Tape) -> np.ndarray:
    """The output sequence (T, B, H_out): h_t at valid steps, zero at padded ones."""
    h = tape.states[0][1:]
    return h.copy() if tape.mask is None else h * tape.mask


def scan_backward(kernel: Kernel, w: Weights, dw: Weights, tape: Tape, dout, dfinal: tuple):
    """Back through the whole sequence.

    dout (T, B, H_out) reaches the outputs, ``dfinal`` the final states. Parameter gradients are
    added into ``dw``; returns (dx (T, B, I), gradients reaching the initial states).
    """
    T, B, _ = tape.x.shape
    da = np.empty_like(tape.gates)                                         # (T, B, G·H)
    dnew = tuple(np.empty((T, B, n), tape.x.dtype) for n in kernel.state_sizes())
    carry = _backward_loop(kernel, w, tape, dout, tuple(dfinal), da, dnew)
    kernel.recurrent_grads(w, dw, tape, da, dnew)
    da_x = kernel.input_side_grad(w, dw, tape.aux, da)      # db_ih; DA, or DA back through LN(x W_ihᵀ)
    dw.weight_ih += flat(da_x).T @ flat(tape.x)
    dx = (flat(da_x) @ w.weight_ih).reshape(T, B, -1)
    return dx, carry


def _backward_loop(kernel: Kernel, w: Weights, tape: Tape, dout, carry: tuple, da, dnew) -> tuple:
    """The step-by-step backward in NumPy: fills ``da`` and ``dnew``, returns the initial states' gradients."""
    aux, mask = tape.aux, tape.mask
    m_h = None if tape.masks is None else tape.masks.recurrent
    keep = None if tape.masks is None else tape.masks.keep
    for t in range(tape.x.shape[0] - 1, -1, -1):
        d = (carry[0] + dout[t],) + carry[1:]
        for k, dk in enumerate(d):
            if mask is None:
                dnew[k][t] = dk
            else:
                np.multiply(dk, mask[t], out=dnew[k][t])
        direct = None
        if keep is not None:                     # zoneout: k ⊙ ds to s_{t-1}, (1 − k) ⊙ ds into the cell
            direct = tuple(k[t] * dn[t] for k, dn in zip(keep, dnew))
            for k, dn in zip(keep, dnew):
                dn[t] *= 1.0 - k[t]
        prev = tuple(s[t] for s in tape.states)
        new = tuple(s[t + 1] for s in tape.states)
        e = {} if m_h is None else {"entering": Entering(tape.entering[t], m_h)}
        dprev = kernel.backward_step(
            w, tape.gates[t], prev, new, kernel.aux_at(aux, t), tuple(dn[t] for dn in dnew), da[t], **e
        )
        if direct is not None:
            dprev = tuple(dp + dd for dp, dd in zip(dprev, direct))
        if mask is not None:                                               # padded: pass through
            dprev = tuple(dp + c * ~mask[t] for dp, c in zip(dprev, carry))
        carry = dprev
    return carry


def reversal_index(steps: int, lengths: np.ndarray | None) -> np.ndarray | None:
    """(T, B) gather index that reverses each sequence within its own length (padding stays)."""
    if lengths is None:
        return None
    t = np.arange(steps)[:, None]                                          # (T, 1)
    return np.where(t < lengths, lengths - 1 - t, t)


def reverse_time(a: np.ndarray, index: np.ndarray | None) -> np.ndarray:
    """Reverse (T, B, n) along time per sequence. Its own inverse, so it also undoes itself."""
    if index is None:
        return a[::-1]
    return np.take_along_axis(a, index[:, :, None], axis=0)
