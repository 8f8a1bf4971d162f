"""Run directories of every token kind and softmax: train, resume, generate, eval, export, and ONNX
generation identical to `rnnkit generate`; run directories from before there was a choice still
work; the new options' errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.files import read_tensors
from rnnkit.lm.load import load_model
from test_cli_errors import run_cli
from test_cli_parser import assert_two_lines

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.\n"
        "循环神经网络可以记住过去的信息。长短期记忆网络解决了梯度消失的问题。\n") * 40
SMALL = ["--hidden", "24", "--embed", "8", "--layers", "1", "--batch-size", "4", "--seq-len", "12",
         "--sample-chars", "20", "--time-budget", "0", "--lr", "0.01"]
KINDS = {   # name: the options of its run
    "word": ["--tokens", "word", "--vocab-size", "40"],
    "bpe-adaptive": ["--tokens", "bpe", "--vocab-size", "300", "--softmax", "adaptive"],
    "char-adaptive": ["--softmax", "adaptive", "--cell", "lstm"],
}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus) -> "Runs":
    return Runs(tmp_path_factory.mktemp("runs"), corpus)


class Runs(dict):
    """The run directory of each kind, trained the first time a test asks for it."""

    def __init__(self, home: Path, corpus: Path) -> None:
        super().__init__()
        self.home, self.corpus = home, corpus

    def __missing__(self, name: str) -> Path:
        out = self[name] = self.home / name
        assert main(["train", str(self.corpus), *SMALL, *KINDS[name], "--max-steps", "300", "--eval-every", "150",
                     "--out", str(out)]) == 0
        return out


# Without the bpe extra the BPE cases are skipped, with the reason; the test extra installs it.
needs_tokenizers = pytest.mark.skipif(importlib.util.find_spec("tokenizers") is None,
                                      reason="BPE tokens need Hugging Face tokenizers (pip install 'rnnkit[bpe]')")


def kinds(*names: str) -> list:
    return [pytest.param(n, marks=needs_tokenizers) if n.startswith("bpe") else n for n in names]


def generate(run, capsys, *args) -> str:
    capsys.readouterr()
    assert main(["generate", str(run), *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", kinds(*KINDS))
def test_run_directory_round_trip(runs, corpus, name, capsys, tmp_path):
    run = runs[name]
    config = json.loads((run / "config.json").read_text())
    vocab = json.loads((run / "vocab.json").read_text())
    assert config["model"]["softmax"] == ("adaptive" if "adaptive" in name else "full")
    assert vocab.get("tokens", "char") == name.split("-")[0]
    assert (run / "tokenizer.json").is_file() == name.startswith("bpe")
    # eval: bits per character of the text beside per-token perplexity
    capsys.readouterr()
    assert main(["eval", str(run), str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["token_kind"] == name.split("-")[0]
    tokens = load_model(run)[1]
    ids, _ = tokens.encode(TEXT)
    lead = 1 if name.startswith("char") else len(tokens.decode(ids[:1]))
    assert lead == (1 if name.startswith("char") else 3)                 # "The" is one token
    assert result["chars"] == len(TEXT) - lead and result["tokens"] == len(ids) - 1
    assert result["bits_per_char"] == pytest.approx(result["nll_nats"] * result["tokens"] / result["chars"] / np.log(2))
    assert result["perplexity"] == pytest.approx(np.exp(result["nll_nats"]))
    assert result["bits_per_char"] < 3.0                                  # it learnt something
    val = [m for m in metrics(run) if "val_bpc" in m][-1]["val_bpc"]
    assert 0 < val < 4.0
    # generate: deterministic per seed, with every sampling option
    args = ["--prime", "The quick", "--length", "40", "--seed", "3", "--top-k", "20", "--top-p", "0.9"]
    text = generate(run, capsys, *args)
    assert text == generate(run, capsys, *args) != generate(run, capsys, *args[:-4], "--seed", "4")
    assert text.startswith("The quick") and len(text) > 20
    # A character or word model emits whole characters; a byte-level BPE model may draw a byte that
    # ends no character (decoded as U+FFFD, as Hugging Face's decoder does) — but not greedily.
    assert ("\ufffd" in text) <= name.startswith("bpe")
    assert generate(run, capsys, "--prime", "The quick", "--length", "12", "--temperature", "0").startswith(
        "The quick brown fox")
    # export, and the example generates the same text with onnxruntime alone
    pytest.importorskip("onnxruntime")
    model = tmp_path / "lm.onnx"
    assert main(["export", str(run), str(model)]) == 0
    sidecar = json.loads((tmp_path / "lm.vocab.json").read_text(encoding="utf-8"))
    assert len(sidecar["token_bytes"]) == config["model"]["vocab_size"]
    assert (tmp_path / "lm.tokenizer.json").is_file() == name.startswith("bpe")
    for args in (["--prime", "The ", "--length", "60", "--seed", "1"],
                 ["--prime", "循环", "--length", "30", "--seed", "2", "--temperature", "1.2", "--top-p", "0.8"]):
        expected = generate(run, capsys, *args)
        got = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_generate.py"), str(model), *args],
                             capture_output=True, text=True, check=True, encoding="utf-8").stdout
        assert got == expected


@pytest.mark.parametrize("name", kinds("word", "bpe-adaptive"))
def test_inspect_and_gradflow_read_every_kind(runs, name, tmp_path):
    """inspect shades characters (a token's step for each character it completes); gradflow takes
    the adaptive softmax's exact loss gradient."""
    page = tmp_path / "page.html"
    code, out, err = run_cli(["inspect", str(runs[name]), "--out", str(page), "--max-chars", "200"])
    assert code == 0, err
    text = load_model(runs[name])[1].decode(load_model(runs[name])[1].encode(TEXT)[0][:200])
    assert f"page written to {page} ({len(text)} characters)" in out and len(text) > 200
    code, out, err = run_cli(["gradflow", str(runs[name]), "--seq-len", "10", "--json"])
    norms = json.loads(out)
    assert code == 0 and all(len(v) == 10 and all(np.isfinite(v)) and max(v) > 0 for v in norms.values())


@pytest.mark.parametrize("name", kinds("word", "bpe-adaptive"))
def test_resume_reproduces_an_uninterrupted_run(corpus, tmp_path, name):
    opts = [str(corpus), *SMALL, *KINDS[name], "--schedule", "constant", "--eval-every", "7"]
    assert main(["train", *opts, "--max-steps", "20", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", *opts, "--max-steps", "9", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--resume", "--max-steps", "20", "--out", str(tmp_path / "b")]) == 0
    losses = [[m["loss"] for m in metrics(tmp_path / r) if "loss" in m] for r in "ab"]
    assert len(losses[0]) == 20 and losses[0] == losses[1]


def test_a_run_directory_from_before_tokens_and_softmax_still_works(corpus, tmp_path, capsys):
    """What a run directory held before: no tokens, vocab_size or softmax in config.json."""
    run = tmp_path / "old"
    assert main(["train", str(corpus), *SMALL, "--max-steps", "6", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    for key in ("softmax", "cutoffs", "div_value"):
        config["model"].pop(key)
    for key in ("tokens", "vocab_size", "softmax"):
        config["train"].pop(key)
    (run / "config.json").write_text(json.dumps(config))
    assert set(json.loads((run / "vocab.json").read_text())) == {"unknown_id", "chars"}
    assert generate(run, capsys, "--prime", "The", "--length", "10", "--seed", "0").startswith("The")
    assert main(["eval", str(run), str(corpus)]) == 0
    assert "bits/char" in capsys.readouterr().out
    assert main(["train", "--resume", "--max-steps", "8", "--out", str(run)]) == 0
    _, meta = read_tensors(run / "latest.safetensors")
    assert meta["step"] == 8


def test_a_large_alphabet_gets_the_adaptive_softmax_by_itself(tmp_path, monkeypatch):
    import rnnkit.lm.softmax
    monkeypatch.setattr(rnnkit.lm.softmax, "AUTO_ADAPTIVE", 30)       # the corpus has 60-odd characters
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["train", str(path), *SMALL, "--max-steps", "2", "--out", str(tmp_path / "r")]) == 0
    model = json.loads((tmp_path / "r" / "config.json").read_text())["model"]
    assert model["softmax"] == "adaptive" and model["cutoffs"]
    chars = json.loads((tmp_path / "r" / "vocab.json").read_text())["chars"]
    assert chars[0] == max(set(TEXT), key=TEXT.count)                  # by frequency


@pytest.mark.parametrize("argv,fragments", [
    (["--tokens", "words"], ("--tokens", "must be one of char, word, bpe, got 'words'", "did you mean word?")),
    (["--softmax", "adaptiv"], ("--softmax", "must be one of auto, full, adaptive", "did you mean adaptive?")),
    (["--tokens", "word", "--vocab-size", "-1"], ("--vocab-size", "'-1'")),
])
def test_bad_options(corpus, tmp_path, argv, fragments):
    """The parser's two lines (rnnkit.cli_parser), and nothing trained or written."""
    out = tmp_path / "r"
    code, stdout, err = run_cli(["train", str(corpus), *SMALL, *argv, "--max-steps", "1", "--out", str(out)])
    assert_two_lines((code, err), "train", *fragments)
    assert stdout == "" and not out.exists()


def test_vocab_size_without_word_or_bpe_tokens(corpus, tmp_path):
    """A combination of valid values: the command's one-line error (as --peephole with --cell gru)."""
    out = tmp_path / "r"
    code, stdout, err = run_cli(["train", str(corpus), *SMALL, "--vocab-size", "100", "--max-steps", "1",
                                 "--out", str(out)])
    assert code == 2 and stdout == "" and not out.exists()
    assert err == ("rnnkit train: error: --vocab-size applies to word and bpe tokens (characters take every one "
                   "the text has), got --tokens char\n")


@pytest.mark.parametrize("bad", ["0", "1.5", "nan", "x"])
def test_generate_refuses_a_bad_top_p(runs, bad):
    code, out, err = run_cli(["generate", str(runs["word"]), "--top-p", bad])
    assert_two_lines((code, err), "generate", "--top-p", f"{bad!r}")
    assert out == ""


def test_bpe_without_tokenizers_says_what_to_install(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)                # import tokenizers fails
    argv = ["train", str(corpus), *SMALL, "--tokens", "bpe", "--max-steps", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "pip install 'rnnkit[bpe]'" in capsys.readouterr().err


def test_damaged_word_vocabulary_is_reported(runs, tmp_path, capsys):
    import shutil
    run = tmp_path / "w"
    shutil.copytree(runs["word"], run)
    vocab = json.loads((run / "vocab.json").read_text())
    (run / "vocab.json").write_text(json.dumps(dict(vocab, symbols=vocab["symbols"][:-1])))
    assert main(["generate", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"vocab.json has {len(vocab['symbols']) - 1} tokens" in err and "the weights have" in err
