"""Using a trained language model: scoring text and generating it one character at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnnkit.grad_mode import no_grad
from rnnkit.lm.data import Vocab, eval_streams
from rnnkit.lm.model import CharLM
from rnnkit.losses import log_softmax, softmax_cross_entropy


class NonFiniteOutput(FloatingPointError):
    """The model produced NaN or infinite logits: its weights have diverged."""


@dataclass(frozen=True)
class Score:
    nll: float             # mean negative log-likelihood per predicted character, nats
    chars: int             # characters predicted

    @property
    def bits_per_char(self) -> float:
        return self.nll / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll) if self.nll < 709.0 else math.inf      # exp overflows beyond


def score(model: CharLM, ids: np.ndarray, batch_size: int = 64, seq_len: int = 256,
          skip_unknown: bool = False) -> Score:
    """Mean NLL of predicting ids[1:] from what precedes (state carried through each stream).

    With ``skip_unknown`` the targets that are the unknown-character token (id 0) are not scored.
    """
    if len(ids) < 2:
        raise ValueError(f"need at least 2 characters to score, got {len(ids)}")
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0.0, None
    with no_grad():
        for x, y, mask in eval_streams(ids, batch_size, seq_len):
            if state is None:
                state = model.initial_state(x.shape[1])
            logits, state = model(x, state)
            w = mask & (y != 0) if skip_unknown else mask
            n = float(w.sum())
            if n:
                loss, _ = softmax_cross_entropy(logits, y, w, grad=False)
                total, count = total + loss * n, count + n
    model.train(was_training)
    return Score(total / max(count, 1.0), int(count))


def sample(model: CharLM, vocab: Vocab, prime: str, length: int, temperature: float = 1.0,
           top_k: int = 0, rng: np.random.Generator | None = None) -> Iterator[str]:
    """Yield ``length`` characters, one recurrent step each, after reading ``prime`` once.

    temperature scales the logits (lower: more conservative); top_k > 0 keeps only the k most
    likely characters. The unknown-character token is never produced.
    """
    rng = np.random.default_rng() if rng is None else rng
    ids, _ = vocab.encode(prime)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits, state = model(ids[:, None], model.initial_state(1))      # (T, 1, V)
            z = logits[-1, 0]
            for _ in range(length):
                nxt = _draw(z, temperature, top_k, rng)
                yield vocab.chars[nxt - 1]
                logits, state = model(np.array([[nxt]]), state)
                z = logits[0, 0]
    finally:
        model.train(was_training)


def _draw(z: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator) -> int:
    z = z.astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise NonFiniteOutput("the model produced non-finite logits; its weights have diverged")
    z[0] = -np.inf                                           # never emit the unknown token
    if temperature <= 0:
        return int(np.argmax(z))
    with np.errstate(over="ignore"):          # a tiny temperature sends the others to -inf, as meant
        z = (z - z.max()) / temperature       # max 0: no inf - inf, whatever the temperature
    if 0 < top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(log_softmax(z))
    return int(rng.choice(len(p), p=p / p.sum()))
