"""Using a trained language model: scoring text and generating it one token at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnnkit.grad_mode import no_grad
from rnnkit.lm.config import DEFAULT_TEMPERATURE
from rnnkit.lm.data import Vocab, eval_streams
from rnnkit.lm.model import CharLM
from rnnkit.lm.tokens import StreamDecoder
from rnnkit.losses import log_softmax


class NonFiniteOutput(FloatingPointError):
    """The model produced NaN or infinite logits: its weights have diverged."""


@dataclass(frozen=True)
class Score:
    nll: float             # mean negative log-likelihood per predicted token (character), nats
    chars: int             # tokens predicted (characters, for a character model)
    characters: int = 0    # characters of text those tokens spell; 0: one per token

    @property
    def bits_per_char(self) -> float:
        """Total bits / characters of the text predicted: comparable across token kinds."""
        return self.nll * self.chars / (self.characters or self.chars or 1) / math.log(2)

    @property
    def bits_per_token(self) -> float:
        return self.nll / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll) if self.nll < 709.0 else math.inf      # exp overflows beyond


def score(model: CharLM, ids: np.ndarray, batch_size: int = 64, seq_len: int = 256,
          skip_unknown: bool = False, characters: int = 0) -> Score:
    """Mean NLL of predicting ids[1:] from what precedes (state carried through each stream);
    ``characters``: how many characters of text ids[1:] spell (0: one per token).

    With ``skip_unknown`` the targets that are the unknown token (id 0) are not scored.
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
            w = mask & (y != 0) if skip_unknown else mask
            loss, state = model.loss(x, y, state, w)
            n = float(w.sum())
            total, count = total + loss * n, count + n
    model.train(was_training)
    return Score(total / max(count, 1.0), int(count), characters)


def sample(model: CharLM, vocab: Vocab, prime: str, length: int, temperature: float = DEFAULT_TEMPERATURE,
           top_k: int = 0, rng: np.random.Generator | None = None, top_p: float = 1.0) -> Iterator[str]:
    """Yield the text of ``length`` tokens (characters, for a character model), one recurrent
    step each, after reading ``prime`` once; a piece may be "" while a BPE token's bytes end
    inside a character, and what is left is yielded at the end.

    As Hugging Face's ``generate``: temperature scales the logits (lower: more conservative),
    then top_k > 0 keeps only the k most likely tokens, then top_p < 1 only the most likely ones
    whose probabilities add up to top_p (nucleus sampling). The unknown token is never produced.
    """
    rng = np.random.default_rng() if rng is None else rng
    ids, _ = vocab.encode(prime)
    text = StreamDecoder(vocab)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits, state = model(ids[:, None], model.initial_state(1))      # (T, 1, V)
            z = logits[-1, 0]
            for _ in range(length):
                nxt = _draw(z, temperature, top_k, rng, top_p)
                yield text(nxt)
                logits, state = model(np.array([[nxt]]), state)
                z = logits[0, 0]
            yield text.flush()
    finally:
        model.train(was_training)


def _draw(z: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator, top_p: float = 1.0) -> int:
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
    if top_p < 1.0:
        p = nucleus(p, top_p)
    return int(rng.choice(len(p), p=p / p.sum()))


def nucleus(p: np.ndarray, top_p: float) -> np.ndarray:
    """p with every token outside the nucleus set to 0: the most likely tokens, in order, while
    the probability before each is below top_p (so the first is always kept), as Hugging Face's
    TopPLogitsWarper (ties in the order of the ids)."""
    order = np.argsort(-p, kind="stable")
    before = np.cumsum(p[order]) - p[order]                  # probability of the tokens ranked above
    kept = np.zeros(len(p), bool)
    kept[order[before < top_p]] = True
    return np.where(kept, p, 0.0)
