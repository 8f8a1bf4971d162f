"""Corpus reading, the vocabulary, and the BPTT streams."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnkit.lm.data import Streams, Vocab, default_corpus_files, eval_streams, read_corpus, split_text
from rnnkit.lm.errors import CorpusError


def test_vocab_round_trip_with_chinese_and_unknowns():
    text = "循环神经网络 RNN, LSTM 和 GRU\n"
    vocab = Vocab.from_text(text)
    ids, unknown = vocab.encode(text)
    assert unknown == 0 and vocab.decode(ids) == text
    assert Vocab.from_json(vocab.to_json()) == vocab
    ids, unknown = vocab.encode("网络X")
    assert unknown == 1 and ids[-1] == 0 and vocab.decode(ids) == "网络\ufffd"
    assert vocab.unseen("网X络Y") == ["X", "Y"]
    assert vocab.size == len(set(text)) + 1


def test_streams_are_contiguous_and_targets_shifted():
    ids = np.arange(100, dtype=np.int32)
    s = Streams(ids, batch_size=4, seq_len=5)                 # 4 streams of 25
    assert s.num_chunks == 4
    x0, y0 = s.chunk(0)
    x1, _ = s.chunk(1)
    np.testing.assert_array_equal(x0[:, 1], np.arange(25, 30))   # stream 1 starts at 25
    np.testing.assert_array_equal(y0, x0 + 1)
    np.testing.assert_array_equal(x1[0], x0[-1] + 1)              # chunk 1 continues chunk 0


def test_streams_need_one_batch():
    with pytest.raises(CorpusError, match=r"fewer than one batch needs \(batch_size x \(seq_len \+ 1\) = 4 x 11 = 44\)"):
        Streams(np.arange(40, dtype=np.int32), batch_size=4, seq_len=10)


@pytest.mark.parametrize("n,batch,seq", [(2, 8, 4), (11, 3, 2), (100, 7, 6), (1000, 64, 256), (9000, 3, 100), (50000, 64, 256)])
def test_eval_streams_predict_every_character_once(n, batch, seq):
    ids = np.arange(n)
    seen = []
    for x, y, mask in eval_streams(ids, batch, seq):
        assert x.shape == y.shape == mask.shape
        np.testing.assert_array_equal(y[mask], x[mask] + 1)       # each target follows its input
        seen.extend(y[mask].tolist())
    assert sorted(seen) == list(range(1, n))


def test_read_corpus_files_dirs_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("hello ", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.md").write_text("世界", encoding="utf-8")
    (sub / "c.bin").write_bytes(b"\x00\x01\x02")
    (sub / "d.txt").write_bytes("caf\xe9".encode("latin-1"))
    text, used, skipped = read_corpus([str(tmp_path)])
    assert text == "hello 世界" and len(used) == 2 and len(skipped) == 2
    with pytest.raises(CorpusError, match="c.bin: looks like a binary file"):
        read_corpus([str(sub / "c.bin")])
    with pytest.raises(CorpusError, match="d.txt: not valid UTF-8"):
        read_corpus([str(sub / "d.txt")])
    with pytest.raises(CorpusError, match="nope: no such file or directory"):
        read_corpus([str(tmp_path / "nope")])
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="the corpus is empty"):
        read_corpus([str(tmp_path / "empty.txt")])


def test_default_corpus_is_the_standard_library():
    files = default_corpus_files()
    names = [f.name for f in files]
    assert "os.py" in names and "zipimport.py" in names
    assert names == sorted(names)


def test_split_keeps_the_end_for_validation():
    train, val = split_text("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    with pytest.raises(CorpusError, match=re.escape("--val-fraction must be a finite number in (0, 1), got 1.0")):
        split_text("abc", 1.0)
