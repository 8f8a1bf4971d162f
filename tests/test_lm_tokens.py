"""Token kinds (characters, words, byte-level BPE): lossless, numbered by frequency, saved as plain
files; bits per character that do not depend on the kind; nucleus sampling; adaptive cutoffs."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections import Counter

import numpy as np
import pytest
import torch

from rnnkit.lm.data import Vocab
from rnnkit.lm.infer import _draw, nucleus, score
from rnnkit.lm.softmax import choose_cutoffs, resolve
from rnnkit.lm.tokens import WORD_PATTERN, BpeTokens, StreamDecoder, WordTokens, build_tokens, run_tokens

TEXT = ("def train(model, data):\r\n    for x, y in data:  # 两个空格\n        loss = model(x) - y\n"
        "循环神经网络可以记住过去的信息。The cat sat on the mat; the cat ate 42 mice! 😀 café\t\n") * 20
OTHER = "Unseen: Ωmega, 新的字 and the cat; ümlaut\n"


# Without the bpe extra the BPE cases are skipped, with the reason; the test extra installs it.
HAS_TOKENIZERS = importlib.util.find_spec("tokenizers") is not None
needs_tokenizers = pytest.mark.skipif(not HAS_TOKENIZERS,
                                      reason="BPE tokens need Hugging Face tokenizers (pip install 'rnnkit[bpe]')")


@pytest.fixture(scope="module")
def kinds():
    return {"char": Vocab.from_text(TEXT), "char_freq": Vocab.from_text(TEXT, by_frequency=True),
            "word": WordTokens.from_text(TEXT, 12),
            **({"bpe": BpeTokens.from_text(TEXT, 300)} if HAS_TOKENIZERS else {})}


@pytest.mark.parametrize("kind", ["char", "char_freq", "word", pytest.param("bpe", marks=needs_tokenizers)])
def test_every_kind_is_lossless_and_streams_the_same_text(kinds, kind):
    tokens = kinds[kind]
    for text in (TEXT, OTHER if kind == "bpe" else TEXT[:200]):
        ids, unknown = tokens.encode(text)
        assert ids.dtype == np.int32 and unknown == 0
        assert tokens.decode(ids) == text
        stream = StreamDecoder(tokens)
        assert "".join(stream(int(i)) for i in ids) + stream.flush() == text
        assert b"".join(tokens.token_bytes(int(i)) for i in ids) == text.encode("utf-8")


def test_words_are_the_most_frequent_pieces_and_rarer_ones_are_spelled(kinds):
    words = kinds["word"]
    pieces = Counter(p for p in re.findall(WORD_PATTERN, TEXT) if len(p) > 1)
    assert len(pieces) > 12
    twelfth = sorted(pieces.values())[-12]
    multi = {s for s in words.symbols if len(s) > 1}
    assert len(multi) == 12 and all(pieces[w] >= twelfth for w in multi) and " cat" in multi
    assert set(TEXT) <= set(words.symbols)                          # every character is a token too
    assert not any(len(s) > 1 and "\u4e00" <= s[0] <= "\u9fff" for s in words.symbols)  # ideographs one by one
    ids, unknown = words.encode(OTHER)
    assert unknown == sum(1 for c in OTHER if c not in set(TEXT)) and words.decode(ids).count("\ufffd") == unknown
    assert words.unseen(OTHER) == sorted(set(OTHER) - set(TEXT))
    counts = np.bincount(words.encode(TEXT)[0], minlength=words.size)
    assert counts[0] == 0 and all(counts[1:-1] >= counts[2:])       # ids by decreasing frequency
    again = WordTokens.from_json(json.loads(json.dumps(words.to_json())))
    assert again.symbols == words.symbols and np.array_equal(again.encode(OTHER)[0], ids)


@needs_tokenizers
def test_bpe_is_learnt_the_same_twice_numbered_by_frequency_and_never_unknown(kinds):
    bpe = kinds["bpe"]
    assert BpeTokens.from_text(TEXT, 300).json == bpe.json
    assert bpe.size == 300
    counts = np.bincount(bpe.encode(TEXT)[0], minlength=bpe.size)
    assert counts[0] == 0 and all(counts[1:-1] >= counts[2:])
    assert bpe.tokenizer.decode(bpe.encode(OTHER)[0].tolist()) == OTHER   # tokenizers' own decoder agrees
    assert bpe.unseen(OTHER) == [] and BpeTokens(bpe.json).table == bpe.table


def test_characters_by_frequency_only_for_the_adaptive_softmax():
    assert run_tokens("char", 0, "auto", "bba")[0].chars == ("a", "b")
    assert run_tokens("char", 0, "adaptive", "abb")[0].chars == ("b", "a")
    assert run_tokens("char", 0, "full", "abb") == (Vocab(("a", "b")), "full")
    assert resolve("auto", 100) == "full" and resolve("auto", 10_000) == "adaptive"
    assert build_tokens("word", TEXT, 5).size == len(set(TEXT)) + 5 + 1


class ByteUnigram:
    """A unigram model of UTF-8 bytes, written as a model of one kind's tokens: a token's
    log-probability is the sum over its bytes. Any lossless tokenization then gives a text the
    same total; the bookkeeping (tokens predicted, characters they spell) must give the same
    bits per character."""

    training = False

    def __init__(self, tokens, log_q: np.ndarray) -> None:
        self.logp = np.array([sum(log_q[b] for b in tokens.token_bytes(i)) for i in range(tokens.size)])

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def initial_state(self, batch):
        return None

    def loss(self, x, y, state, mask):
        n = max(float(mask.sum()), 1.0)
        return float(-(self.logp[y] * mask).sum() / n), state


@pytest.mark.parametrize("seq_len", [7, 256])
def test_bits_per_character_do_not_depend_on_the_kind_of_token(kinds, seq_len):
    text = "\n" + TEXT                             # the first token is one character for every kind
    q = np.bincount(np.frombuffer(text.encode("utf-8"), np.uint8), minlength=256) + 1.0
    log_q = np.log(q / q.sum())
    by_hand = -sum(log_q[b] for b in text[1:].encode("utf-8")) / math.log(2) / (len(text) - 1)
    figures = {}
    for kind, tokens in kinds.items():
        ids, _ = tokens.encode(text)
        s = score(ByteUnigram(tokens, log_q), ids, batch_size=3, seq_len=seq_len,
                  characters=len(text) - tokens.lead_chars(ids))
        assert s.chars == len(ids) - 1
        figures[kind] = s.bits_per_char
    assert figures == pytest.approx({k: by_hand for k in kinds}, rel=1e-12)
    assert figures["char"] == pytest.approx(score(ByteUnigram(kinds["char"], log_q),
                                                  kinds["char"].encode(text)[0]).bits_per_token, rel=1e-12)


def hugging_face_top_p(p: np.ndarray, top_p: float) -> np.ndarray:
    """transformers' TopPLogitsWarper, as written there: ascending sort, remove the low tail whose
    cumulative probability is at most 1 - top_p, keep at least one."""
    logits = torch.tensor(np.log(p))
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[-1:] = False
    return (~remove.scatter(0, sorted_indices, remove)).numpy()


def test_nucleus_keeps_what_hugging_face_keeps():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(nucleus(np.array([0.05, 0.5, 0.15, 0.3]), 0.8), [0, 0.5, 0, 0.3])
    for _ in range(200):
        p = rng.dirichlet(np.full(12, 0.3))
        top_p = rng.uniform(0.05, 0.99)
        kept = nucleus(p, top_p) > 0
        assert kept.sum() >= 1
        np.testing.assert_array_equal(kept, hugging_face_top_p(p, top_p))


def test_draw_with_a_small_nucleus_is_the_most_likely_token():
    z = np.log(np.array([1e-9, 0.1, 0.6, 0.3]))
    rng = np.random.default_rng(0)
    assert {_draw(z, 1.0, 0, rng, top_p=0.5) for _ in range(50)} == {2}
    assert {_draw(z, 1.0, 0, rng, top_p=0.65) for _ in range(200)} == {2, 3}
    assert {_draw(z, 1.0, 0, rng, top_p=1.0) for _ in range(400)} == {1, 2, 3}


def test_cutoffs_follow_the_coverage():
    counts = np.array([0, 50, 20, 10, 8, 5, 4, 2, 1])         # 100 tokens, by decreasing frequency
    assert choose_cutoffs(counts, 256, coverage=(0.7, 0.93)) == (3, 6)      # ids < 3 make 70%, < 6 93%
    assert choose_cutoffs(counts, 256, coverage=(0.5, 0.99)) == (2, 8)
    assert choose_cutoffs(counts, 256, coverage=(0.995, 1.0)) == (8,)      # at most V - 1
    assert choose_cutoffs(counts, 8, coverage=(0.7, 0.93)) == (3,)         # 8 / 16 = 0: one cluster
