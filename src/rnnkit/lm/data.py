"""Text in, integer streams out: corpus reading, the character vocabulary, and BPTT batches.

Characters are Unicode code points, so Chinese, English and code are all one character per
symbol. Id 0 is the unknown-character token for anything not seen in training.
"""

from __future__ import annotations

import math
import sysconfig
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from rnnkit.errors import Caution, CorpusError
from rnnkit.ranges import FRACTION


UNK = "\ufffd"      # how the unknown-character token prints (U+FFFD REPLACEMENT CHARACTER)
UNKNOWN_CAUTION = 0.01   # share of unseen characters above which eval and inspect warn: the model
                         # never saw the unknown token as a target, so each costs it 8-13 bits
                         # (measured on two small runs); at 1% that adds ~0.1 bits/char, five times
                         # the spread between runs of the same command


def caution_unknown(unknown: int, total: int, consequence: str) -> None:
    """A Caution when more than UNKNOWN_CAUTION of ``total`` characters are unknown to the model."""
    if total and unknown / total > UNKNOWN_CAUTION:
        warnings.warn(f"{100 * unknown / total:.1f}% of the characters ({unknown:,} of {total:,}) never "
                      f"appeared in the model's training text: {consequence}", Caution, stacklevel=2)


def read_text_file(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data:
        raise CorpusError(f"{path}: looks like a binary file (it contains NUL bytes); give UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                          "convert it to UTF-8 first") from exc


def read_corpus(paths: list[str]) -> tuple[str, list[str], list[str]]:
    """Concatenate the given files and the text files under the given directories (recursively,
    sorted). Returns (text, files read, files skipped). A file named directly must be UTF-8 text;
    inside a directory, binary and non-UTF-8 files are skipped and listed."""
    parts, used, skipped = [], [], []
    for name in paths:
        path = Path(name)
        if not name:                              # Path("") is the current directory
            raise CorpusError("an empty PATH was given; name a text file or directory")
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                try:
                    parts.append(read_text_file(f))
                    used.append(str(f))
                except CorpusError:
                    skipped.append(str(f))
        elif path.is_file():
            parts.append(read_text_file(path))
            used.append(str(path))
        elif path.exists():
            raise CorpusError(f"{name}: not a regular file or directory (a device, pipe or socket); "
                              "give text files or directories")
        else:
            raise CorpusError(f"{name}: no such file or directory")
    text = "".join(parts)
    if not text:
        raise CorpusError(f"the corpus is empty (read {len(used)} file(s), skipped {len(skipped)})")
    return text, used, skipped


def default_corpus_files() -> list[Path]:
    """The top-level modules of the running interpreter's standard library, sorted by name."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))
    if not files:
        raise CorpusError(f"found no standard-library sources under {stdlib}; give a PATH to train on")
    return files


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """The last ``val_fraction`` of the text is held out for validation."""
    FRACTION.check("--val-fraction", val_fraction, CorpusError)
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


@dataclass(frozen=True)
class Vocab:
    """Characters in code-point order (or by decreasing frequency, for the adaptive softmax); id 0
    is the unknown-character token. The ``char`` kind of :mod:`rnnkit.lm.tokens`."""

    chars: tuple[str, ...]
    kind = "char"

    @classmethod
    def from_text(cls, text: str, by_frequency: bool = False) -> "Vocab":
        if not by_frequency:
            return cls(tuple(sorted(set(text))))
        counts = Counter(text)
        return cls(tuple(sorted(counts, key=lambda c: (-counts[c], c))))

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def index(self) -> dict[str, int]:
        return self._index

    @cached_property
    def _index(self) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.chars)}

    def known(self, char: str) -> bool:
        return char in self._index

    def token_bytes(self, token_id: int) -> bytes:
        return (UNK if token_id == 0 else self.chars[token_id - 1]).encode("utf-8")

    def lead_chars(self, ids) -> int:
        """Characters the first token covers: one (the model never predicts it)."""
        return min(len(ids), 1)

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """(ids as int32, number of characters mapped to the unknown token)."""
        index = self.index()
        ids = np.fromiter((index.get(c, 0) for c in text), dtype=np.int32, count=len(text))
        return ids, int(np.count_nonzero(ids == 0))

    def decode(self, ids) -> str:
        return "".join(UNK if i == 0 else self.chars[i - 1] for i in ids)

    def unseen(self, text: str) -> list[str]:
        index = self.index()
        return sorted({c for c in text if c not in index})

    def to_json(self) -> dict:
        return {"unknown_id": 0, "chars": list(self.chars)}

    @classmethod
    def from_json(cls, data: dict) -> "Vocab":
        return cls(tuple(data["chars"]))


def suggest_prime(text: str, vocab: Vocab, starts_line: bool = True, max_chars: int = 16) -> str:
    """A short prime taken from the start of ``text`` (a run's validation text) for the hint that
    ends ``rnnkit train``: the first line with printable content (the first whole line when the
    text starts mid-line), without its indentation, up to ``max_chars`` characters, each printable
    (no control, escape or bidirectional-format characters) and known to the model; cut after a
    space rather than mid-word when that keeps at least half. "" when no line qualifies."""
    lines = text.split("\n", 100)[:100]
    if not starts_line and len(lines) > 1:
        lines = lines[1:]
    for line in (ln.lstrip() for ln in lines):
        n = 0
        while n < min(len(line), max_chars) and line[n].isprintable() and vocab.known(line[n]):
            n += 1
        prefix = line[:n]
        if n < len(line) and line[n] != " " and " " in prefix[max_chars // 2:]:
            prefix = prefix[: prefix.rindex(" ") + 1]
        if prefix.strip():
            return prefix
    return ""


def unigram_entropy_bits(ids: np.ndarray) -> float:
    """Entropy of the character frequencies: what a model that ignores context would achieve."""
    counts = np.array(list(Counter(ids.tolist()).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


class Streams:
    """A token sequence cut into B contiguous parallel streams, read in chunks of seq_len.

    Chunk k gives inputs x = streams[:, kT : kT+T] and targets y = streams[:, kT+1 : kT+T+1], both
    transposed to time-major (T, B). Stream b continues from chunk to chunk, so a model can carry
    its hidden state across chunks (truncated BPTT).
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int) -> None:
        length = len(ids) // batch_size
        if length < seq_len + 1:
            raise CorpusError(
                f"the training text has {len(ids)} characters, fewer than one batch needs "
                f"(batch_size x (seq_len + 1) = {batch_size} x {seq_len + 1} = {batch_size * (seq_len + 1)}); "
                "give more text or lower --batch-size / --seq-len")
        self.data = ids[: length * batch_size].reshape(batch_size, length)
        self.seq_len = seq_len
        self.num_chunks = (length - 1) // seq_len

    def chunk(self, k: int, streams: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Chunk k of every stream, or of the streams ``streams`` (a data-parallel rank's share:
        the same columns of the whole batch's chunk)."""
        s = k * self.seq_len
        x = self.data[streams, s: s + self.seq_len]
        y = self.data[streams, s + 1: s + self.seq_len + 1]
        return np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)


MIN_EVAL_STREAM = 2048   # characters per evaluation stream: the cold start of each costs little


def eval_streams(ids: np.ndarray, batch_size: int, seq_len: int):
    """Chunks (x, y, mask) covering every prediction of ``ids`` exactly once.

    The text is cut into up to ``batch_size`` contiguous streams of at least MIN_EVAL_STREAM
    characters (fewer streams for a short text, a single one below that); each predicts the characters of
    its segment from those before it within the segment (its first input is the last character
    of the previous segment). Short streams are padded at the end and masked.
    """
    n = len(ids)
    B = max(1, min(batch_size, n // MIN_EVAL_STREAM))
    length = math.ceil(n / B)
    starts = [b * length for b in range(B) if b * length < n - 1]
    B = len(starts)
    segments = [ids[s: min(s + length + 1, n)] for s in starts]       # overlap by one character
    steps = max(len(seg) - 1 for seg in segments)
    x = np.zeros((steps, B), np.int32)
    y = np.zeros((steps, B), np.int32)
    mask = np.zeros((steps, B), bool)
    for b, seg in enumerate(segments):
        k = len(seg) - 1
        x[:k, b], y[:k, b], mask[:k, b] = seg[:-1], seg[1:], True
    for t0 in range(0, steps, seq_len):
        yield x[t0: t0 + seq_len], y[t0: t0 + seq_len], mask[t0: t0 + seq_len]
