"""The text of a training run: read, split into training and validation text, tokenised, and the
training ids cut into streams (:func:`prepare_text` → :class:`RunText`).

Under MPI every rank prepares the text itself: reading, splitting and counting characters or words
are exact and cheap. A BPE tokenizer is learnt by rank 0 alone and sent to the others
(:func:`learn_tokens`): learning it is the costly part, and one tokenizer by construction beats one
per rank that must agree (tokenizers' trainer is multi-threaded).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from rnnkit.distributed import World
from rnnkit.errors import CorpusError
from rnnkit.lm.config import TrainConfig
from rnnkit.lm.data import Streams, default_corpus_files, read_corpus, split_text, suggest_prime, unigram_entropy_bits
from rnnkit.lm.softmax import choose_cutoffs
from rnnkit.lm.tokens import BpeTokens, run_tokens


@dataclass(frozen=True)
class RunText:
    vocab: object                 # the run's tokens: a Vocab (characters), WordTokens or BpeTokens
    softmax: str                  # "full" | "adaptive", as chosen for the vocabulary
    cutoffs: tuple[int, ...]      # the adaptive softmax's clusters (ids by frequency); () for the full
    streams: Streams              # the training ids in batch_size streams, read seq_len at a time
    val_ids: np.ndarray           # (N,) the validation text's ids
    val_chars: int                # the characters validation predicts (the first token is never predicted)
    prime: str                    # a start for `rnnkit generate`, suggested from the validation text
    chars_per_token: float        # of the training text (1 for characters)
    unigram_bits: float           # the entropy of the training text's characters, any tokens
    corpus: dict                  # config.json's summary: files, chars, sha256, source

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of the whole text (UTF-8): a resumed run must train on the same."""
        return self.corpus["sha256"]


def load_corpus(cfg: TrainConfig) -> tuple[str, list[str], list[str]]:
    """(text, files read, files skipped): the given paths, or the standard library's sources."""
    paths = list(cfg.paths) if cfg.paths else [str(f) for f in default_corpus_files()]
    return read_corpus(paths)


def prepare_text(cfg: TrainConfig, world: World, log) -> RunText:
    """The text of a run with ``cfg``'s paths, split, tokens and batch shape."""
    text, files, skipped = load_corpus(cfg)
    if skipped:
        log(f"skipped {len(skipped)} binary or non-UTF-8 file(s), e.g. {skipped[0]}")
    train_text, val_text = split_text(text, cfg.val_fraction)
    vocab, softmax = learn_tokens(cfg, world, train_text)
    train_ids, _ = vocab.encode(train_text)
    streams = Streams(train_ids, cfg.batch_size, cfg.seq_len)
    val_ids, _ = vocab.encode(val_text)
    prime = suggest_prime(val_text, vocab, starts_line=train_text.endswith("\n"))
    if len(val_ids) < 2:
        raise CorpusError(f"the validation split has {len(val_ids)} tokens; raise --val-fraction")
    code_points = np.frombuffer(train_text.encode("utf-32-le"), np.uint32)
    counts = np.bincount(train_ids, minlength=vocab.size)
    corpus = {"files": len(files), "chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
              "source": "python-stdlib" if not cfg.paths else "paths"}
    return RunText(vocab, softmax, choose_cutoffs(counts, cfg.hidden) if softmax == "adaptive" else (), streams,
                   val_ids, val_chars=len(val_text) - vocab.lead_chars(val_ids), prime=prime,
                   chars_per_token=len(train_text) / max(len(train_ids), 1),
                   unigram_bits=unigram_entropy_bits(code_points), corpus=corpus)


def learn_tokens(cfg: TrainConfig, world: World, train_text: str):
    """(tokens, softmax) of the run: characters and words counted on every rank, BPE learnt by
    rank 0 alone and its tokenizer sent to the others."""
    if world.size == 1 or cfg.tokens != "bpe":
        return run_tokens(cfg.tokens, cfg.vocab_size, cfg.softmax, train_text)

    def learn() -> tuple[str, str]:
        tokens, softmax = run_tokens(cfg.tokens, cfg.vocab_size, cfg.softmax, train_text)
        return tokens.json, softmax
    tokenizer_json, softmax = world.together(learn, root_only=True)
    return BpeTokens(tokenizer_json), softmax
