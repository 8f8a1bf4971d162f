"""The language model's tokens: characters, words, or byte-level BPE — each a lossless code of the
text, so that a model of any kind of token is a model of the text itself and its bits per
*character* (total bits / characters) compare across kinds.

Every kind numbers its tokens the same way: id 0 is the unknown token, ids 1… are the tokens
(by decreasing frequency in the training text, as the adaptive softmax needs; a character model
with the full softmax keeps the code-point order it always had), and each token stands for a
fixed string of bytes, so decoding is concatenation — streamed through an incremental UTF-8
decoder, since a BPE token may end inside a multi-byte character.

- ``char`` (:class:`rnnkit.lm.data.Vocab`): one token per Unicode code point seen in training.
- ``word``: the text is cut into pieces by :data:`WORD_PATTERN` (GPT-2's rule, CJK ideographs one
  by one as BERT's basic tokenizer does, so Chinese is not one "word" per clause); the N most
  frequent pieces of two or more characters are tokens, and so is every character seen in
  training, so that a rarer word is spelled out rather than lost (the unknown token stands only
  for characters never seen, as in the character model).
- ``bpe``: Hugging Face ``tokenizers``' byte-level BPE (GPT-2's), trained on the training text
  (the ``bpe`` extra). Every byte is a token, so nothing is ever unknown.

In a run directory: ``vocab.json`` (``{"unknown_id": 0, "chars": [...]}`` for characters, as
always; ``{"unknown_id": 0, "tokens": "word", "pattern": ..., "symbols": [...]}`` for words,
id k ≥ 1 being ``symbols[k-1]``; ``{"unknown_id": 0, "tokens": "bpe", "tokenizer":
"tokenizer.json"}`` for BPE) and, for BPE, ``tokenizer.json``: the tokenizer itself in
``tokenizers``' own JSON, its ids the model's (id 0 a placeholder it never produces).
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from rnnkit.checks import choice_problem
from rnnkit.errors import CheckpointError, UserError
from rnnkit.lm.data import UNK, Vocab

KINDS = ("char", "word", "bpe")
UNKNOWN_BYTES = UNK.encode("utf-8")          # how the unknown token decodes: U+FFFD
BPE_PLACEHOLDER = "<unk>"                    # tokenizer.json's id 0 (byte-level BPE needs no unknown)
TOKENIZER_FILE = "tokenizer.json"
RESTORE_HINT = "restore the run directory from a copy, or train again"

# Letters (and _) without the CJK ideographs, digits, other non-space characters: each run with
# at most one leading space, as GPT-2 cuts text; whitespace runs (the last space joins the next
# word); and anything else (an ideograph, say) one character at a time.
_CJK = ("\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
        "\U00020000-\U0002fa1f")
WORD_PATTERN = (rf" ?[^\W\d{_CJK}]+| ?\d+| ?[^\s\w{_CJK}]+|\s+(?!\S)|\s+|.")

# Defaults of --vocab-size for the token kinds that have one: sizes usual for a corpus of a few MB
# (not tuned; their figures on the default corpus are in docs/language_model.md).
DEFAULT_SIZES = {"word": 8000, "bpe": 4000}


class MissingTokenizers(UserError):
    """BPE tokens need Hugging Face ``tokenizers`` (the ``bpe`` extra)."""


def require_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise MissingTokenizers("BPE tokens need Hugging Face tokenizers: pip install 'rnnkit[bpe]' "
                                "(or pip install tokenizers)") from None
    return tokenizers


class StreamDecoder:
    """Token ids in, text out as soon as it is whole: a token's bytes may end mid-character."""

    def __init__(self, tokens) -> None:
        self.tokens = tokens
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, token_id: int) -> str:
        return self.utf8.decode(self.tokens.token_bytes(token_id))

    def flush(self) -> str:
        return self.utf8.decode(b"", final=True)


class _ByteTokens:
    """What every token kind shares: a table of the bytes each id stands for."""

    kind: str

    @property
    def size(self) -> int:
        return len(self.table)

    def token_bytes(self, token_id: int) -> bytes:
        return self.table[token_id]

    def decode(self, ids) -> str:
        return b"".join(self.table[i] for i in ids).decode("utf-8", errors="replace")

    def lead_chars(self, ids: np.ndarray) -> int:
        """Characters that the first token alone covers (the model never predicts it)."""
        return len(self.token_bytes(int(ids[0])).decode("utf-8", errors="ignore")) if len(ids) else 0


@dataclass(frozen=True, eq=False)
class WordTokens(_ByteTokens):
    """The N most frequent words and every character; see the module's docstring."""

    symbols: tuple[str, ...]                 # id k ≥ 1 is symbols[k - 1]
    pattern: str = WORD_PATTERN
    kind = "word"

    @classmethod
    def from_text(cls, text: str, words: int, pattern: str = WORD_PATTERN) -> "WordTokens":
        pieces = Counter(re.findall(pattern, text))
        frequent = [w for w, _ in sorted(((w, n) for w, n in pieces.items() if len(w) > 1),
                                         key=lambda wn: (-wn[1], wn[0]))[:words]]
        chars = sorted(set(text))
        draft = cls(tuple(frequent) + tuple(chars), pattern)           # words have 2+ characters
        ids, _ = draft.encode(text)
        counts = np.bincount(ids, minlength=draft.size)
        order = sorted(range(1, draft.size), key=lambda i: (-counts[i], draft.symbols[i - 1]))
        return cls(tuple(draft.symbols[i - 1] for i in order), pattern)

    @cached_property
    def index(self) -> dict[str, int]:
        return {s: i + 1 for i, s in enumerate(self.symbols)}

    @cached_property
    def table(self) -> list[bytes]:
        return [UNKNOWN_BYTES] + [s.encode("utf-8") for s in self.symbols]

    @cached_property
    def _regex(self) -> re.Pattern:
        return re.compile(self.pattern)

    @property
    def chars(self) -> tuple[str, ...]:
        return tuple(s for s in self.symbols if len(s) == 1)

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """(ids as int32, number of characters mapped to the unknown token)."""
        index, ids, unknown = self.index, [], 0
        for piece in self._regex.findall(text):
            i = index.get(piece)
            if i is not None:
                ids.append(i)
                continue
            for c in piece:
                j = index.get(c, 0)
                ids.append(j)
                unknown += j == 0
        return np.asarray(ids, np.int32), unknown

    def known(self, char: str) -> bool:
        return char in self.index

    def unseen(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.index})

    def to_json(self) -> dict:
        return {"unknown_id": 0, "tokens": "word", "pattern": self.pattern, "symbols": list(self.symbols)}

    @classmethod
    def from_json(cls, data: dict) -> "WordTokens":
        return cls(tuple(data["symbols"]), data["pattern"])


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the printable character standing for each byte
    (printable Latin-1 bytes stand for themselves, the others for U+0100 onwards)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, n = {}, 0
    for b in range(256):
        if b in kept:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


class BpeTokens(_ByteTokens):
    """Byte-level BPE of Hugging Face ``tokenizers``, its ids in the model's order."""

    kind = "bpe"

    def __init__(self, tokenizer_json: str) -> None:
        tokenizers = require_tokenizers()
        self.json = tokenizer_json
        self.tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        vocab = json.loads(tokenizer_json)["model"]["vocab"]
        alphabet = _byte_alphabet()
        table: list[bytes] = [b""] * len(vocab)
        for token, i in vocab.items():
            table[i] = bytes(alphabet[c] for c in token) if i else UNKNOWN_BYTES
        self.table = table

    @classmethod
    def from_text(cls, text: str, vocab_size: int) -> "BpeTokens":
        """Train on ``text`` (its lines), then renumber: id 0 the placeholder, then by frequency."""
        tk = require_tokenizers()
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(vocab_size=max(vocab_size - 1, 256), show_progress=False,
                                         initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]                               # token -> tokenizers' id
        counts = np.bincount(tok.encode(text).ids, minlength=len(vocab)) if text else np.zeros(len(vocab))
        order = sorted(vocab, key=lambda t: (-counts[vocab[t]], vocab[t]))
        data["model"]["vocab"] = {BPE_PLACEHOLDER: 0, **{t: i + 1 for i, t in enumerate(order)}}
        return cls(json.dumps(data, ensure_ascii=False))

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        return np.asarray(self.tokenizer.encode(text).ids, np.int32), 0

    def known(self, char: str) -> bool:
        return True

    def unseen(self, text: str) -> list[str]:
        return []

    @property
    def chars(self) -> tuple[str, ...]:
        """The characters a single token stands for (for choosing a prime)."""
        return tuple(s for b in self.table[1:] if len(s := b.decode("utf-8", errors="ignore")) == 1)

    def to_json(self) -> dict:
        return {"unknown_id": 0, "tokens": "bpe", "tokenizer": TOKENIZER_FILE}


def build_tokens(kind: str, text: str, size: int = 0, by_frequency: bool = False):
    """The tokens of ``kind`` learnt from the training text; ``size``: words (word) or tokens
    (bpe), 0 for the kind's default; characters in code-point order unless ``by_frequency``."""
    if kind == "char":
        return Vocab.from_text(text, by_frequency=by_frequency)
    size = size or DEFAULT_SIZES[kind]
    return WordTokens.from_text(text, size) if kind == "word" else BpeTokens.from_text(text, size)


def run_tokens(kind: str, size: int, softmax: str, text: str):
    """(tokens, "full" or "adaptive") of a run training on ``text`` with ``--tokens kind
    --vocab-size size --softmax softmax``: characters are numbered by frequency for the adaptive
    softmax only (the full softmax keeps their code-point order, as before there was a choice)."""
    from rnnkit.lm.softmax import resolve
    if kind == "char":
        chosen = resolve(softmax, len(set(text)) + 1)
        return Vocab.from_text(text, by_frequency=chosen == "adaptive"), chosen
    tokens = build_tokens(kind, text, size)
    return tokens, resolve(softmax, tokens.size)


def tokens_kind(vocab_json: dict) -> str:
    return vocab_json.get("tokens", "char") if isinstance(vocab_json, dict) else "char"


def tokens_problems(data, run: Path) -> list[str]:
    """Everything wrong with vocab.json (and tokenizer.json for BPE) of a word or BPE run."""
    kind = data.get("tokens")
    if (problem := choice_problem("tokens", kind, KINDS)) is not None:
        return [problem]
    problems = [] if data.get("unknown_id", 0) == 0 else [f"unknown_id must be 0, got {data['unknown_id']!r}"]
    if kind == "word":
        symbols = data.get("symbols")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) and s for s in symbols):
            return problems + [f"symbols must be a non-empty list of non-empty strings, got {symbols!r:.60}"]
        if len(set(symbols)) != len(symbols):
            problems.append("symbols must be distinct")
        pattern = data.get("pattern")
        try:
            re.compile(pattern)
        except (TypeError, re.error) as exc:
            problems.append(f"pattern must be a regular expression, got {pattern!r:.60} ({exc})")
    elif kind == "bpe":
        if data.get("tokenizer") != TOKENIZER_FILE:
            problems.append(f"tokenizer must be {TOKENIZER_FILE!r}, got {data.get('tokenizer')!r}")
        elif not (run / TOKENIZER_FILE).is_file():
            problems.append(f"its tokenizer {run / TOKENIZER_FILE} is missing")
    return problems


def load_tokens(run: Path, data: dict):
    """The tokens of a run directory from its checked vocab.json (and tokenizer.json)."""
    kind = tokens_kind(data)
    if kind == "char":
        return Vocab.from_json(data)
    if kind == "word":
        return WordTokens.from_json(data)
    path = run / TOKENIZER_FILE
    try:
        return BpeTokens(path.read_text(encoding="utf-8"))
    except MissingTokenizers:
        raise
    except Exception as exc:              # tokenizers reports a bad file as a plain Exception
        raise CheckpointError(f"{path}: not a tokenizer this run can use ({exc}); {RESTORE_HINT}") from None


def write_tokens(run: Path, tokens, write_json, atomic_write) -> None:
    """vocab.json, and tokenizer.json for BPE (written first: vocab.json names it)."""
    if isinstance(tokens, BpeTokens):
        atomic_write(run / TOKENIZER_FILE, lambda tmp: Path(tmp).write_text(tokens.json, encoding="utf-8"))
    else:
        (run / TOKENIZER_FILE).unlink(missing_ok=True)            # a previous BPE run's
    write_json(run / "vocab.json", tokens.to_json())


def same_tokens(a, b) -> bool:
    """Whether two tokenizers give every text the same ids."""
    return type(a) is type(b) and a.to_json() == b.to_json() and (
        not isinstance(a, BpeTokens) or json.loads(a.json)["model"] == json.loads(b.json)["model"])
