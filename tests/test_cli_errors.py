"""Every bad input to the command line is a clean error, and damaged run directories are diagnosed.

The sweep drives every subcommand through CASES, a table of bad inputs, and asserts for each: exit
code 2, exactly one ``error:`` line on stderr naming the culprit (and, where given, what was found),
no traceback, and no file of the workspace (the run directory above all) created, changed or
removed. On top of the table, every numeric option of every subcommand is tried with nan, ±inf,
values out of its range and text that is no number, and every subcommand with an unknown and an
abbreviated option.

A new subcommand joins by declaring its numbers with :class:`rnnkit.ranges.Range` (a test below
fails otherwise), adding a valid-argument prefix to VALID_ARGV, and adding its rows to CASES:
``Case("mycommand {text} --option bad", culprit)``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from rnnkit.cli import build_parser, main
from rnnkit.errors import UserError, user_message
from rnnkit.files import read_tensors
from rnnkit.ranges import Range

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 120
TINY = ["--cell", "lstm", "--hidden", "16", "--embed", "8", "--layers", "1", "--batch-size", "4",
        "--seq-len", "16", "--sample-chars", "0", "--eval-every", "10"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``rnnkit ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:                  # argparse's own errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """A tiny trained run (LSTM, 20 steps: best and latest checkpoints), its corpus, train's stdout."""
    home = tmp_path_factory.mktemp("trained")
    corpus = home / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    code, out, err = run_cli(["train", str(corpus), *TINY, "--max-steps", "20", "--out", str(home / "run")])
    assert code == 0, err
    return home / "run", corpus, out


@pytest.fixture
def ws(trained, tmp_path, monkeypatch) -> dict[str, Path]:
    """A workspace: a fresh copy of the trained run and inputs good and bad, the current directory."""
    run, corpus, _ = trained
    shutil.copytree(run, tmp_path / "run")
    files = {"run": tmp_path / "run", "text": corpus, "empty": tmp_path / "empty.txt",
             "binary": tmp_path / "binary.bin", "latin1": tmp_path / "latin1.txt", "tiny": tmp_path / "tiny.txt",
             "one": tmp_path / "one.txt", "file": tmp_path / "a-file", "dir": tmp_path / "empty-dir",
             "missing": tmp_path / "missing", "other": tmp_path / "other.txt"}
    files["empty"].write_text("")
    files["binary"].write_bytes(bytes(range(256)))
    files["latin1"].write_bytes("naïve café".encode("latin-1"))
    files["tiny"].write_text("tiny text")
    files["one"].write_text("t")
    files["file"].write_text("not a directory")
    files["other"].write_text(TEXT.upper())
    files["dir"].mkdir()
    monkeypatch.chdir(tmp_path)
    return files


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under root with a hash of its content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


# -- damage done to the workspace's run directory before a command runs ---------------------------

Damage = Callable[[dict], None]


def truncate(name: str, keep: int = 100) -> Damage:
    return lambda ws: (ws["run"] / name).write_bytes((ws["run"] / name).read_bytes()[:keep])


def random_bytes(name: str, size: int = 4096) -> Damage:
    return lambda ws: (ws["run"] / name).write_bytes(np.random.default_rng(0).bytes(size))


def write(name: str, content: str | bytes) -> Damage:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return lambda ws: (ws["run"] / name).write_bytes(data)


def remove(*names: str) -> Damage:
    return lambda ws: [(ws["run"] / n).unlink() for n in names]


def edit_json(name: str, change: Callable[[dict, dict], None]) -> Damage:
    def apply(ws):
        data = json.loads((ws["run"] / name).read_text(encoding="utf-8"))
        change(data, ws)
        (ws["run"] / name).write_text(json.dumps(data), encoding="utf-8")
    return apply


def set_key(section: str, **values) -> Damage:
    return edit_json("config.json", lambda c, ws: c[section].update(values))


def both_sections(**values) -> Damage:
    return edit_json("config.json", lambda c, ws: (c["model"].update(values), c["train"].update(values)))


def rewrite_tensors(name: str, change: Callable[[dict, dict], None]) -> Damage:
    """Rewrite a checkpoint as a valid safetensors file after ``change(tensors, meta)``."""
    def apply(ws):
        tensors, meta = read_tensors(ws["run"] / name)
        change(tensors, meta)
        save_file(tensors, str(ws["run"] / name), metadata={"rnnkit": json.dumps(meta)})
    return apply


def write_raw_safetensors(path: Path, header: dict, data: bytes) -> None:
    """A file in the safetensors layout with any header: 8-byte length, JSON, data."""
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def copy_file(source: str, target: str) -> Damage:
    return lambda ws: shutil.copyfile(ws["run"] / source, ws["run"] / target)


def combine(*damages: Damage) -> Damage:
    return lambda ws: [d(ws) for d in damages]


def nan_weight(tensors: dict, meta: dict) -> None:
    tensors["model.head.bias"][0] = np.nan


# -- the table -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    argv: str                            # rnnkit's arguments; {name} is a workspace path
    culprit: str | tuple[str, ...]       # what the error line must name (every fragment)
    damage: Damage | None = None         # done to the run directory first

    def fragments(self) -> tuple[str, ...]:
        return (self.culprit,) if isinstance(self.culprit, str) else self.culprit


CASES = [
    # numbers (every numeric option is also swept automatically below)
    Case("train {text} --lr -1", ("--lr", "> 0", "'-1'")),
    Case("train {text} --lr nan", ("--lr", "finite", "'nan'")),
    Case("train {text} --hidden 2.5", ("--hidden", "integer", "'2.5'")),
    Case("train {text} --time-budget 0 --max-steps 0", ("--time-budget", "--max-steps")),
    Case("train {text} --cell gru --peephole", ("--peephole", "lstm")),
    Case("train {text} --layer-norm --zoneout 0.1", ("--layer-norm", "--zoneout", "cannot be combined")),
    Case("train {text} --cell lstm --layer-norm --peephole", ("--layer-norm", "--peephole", "cannot be combined")),
    Case("generate {run} --temperature nan", ("--temperature", "'nan'")),
    Case("generate {run} --seed -1", ("--seed", "'-1'")),
    Case("task adding --seq-len 1", ("--seq-len", "2")),
    Case("gradflow --cells lstm,tcn", "--cells"),
    Case("gradflow --text {text}", ("--text", "DIR")),
    Case("bench --no-grid", "--no-grid"),
    Case("bench --text {text}", ("--text", "--lm")),
    # text files
    Case("train {missing}", ("missing", "no such file")),
    Case("train {empty}", "empty"),
    Case("train {dir}", "empty"),
    Case("train {binary}", ("binary.bin", "binary")),
    Case("train {latin1}", ("latin1.txt", "UTF-8")),
    Case("train {tiny}", ("fewer than one batch", "--batch-size")),
    Case("train {binary} --out {run} --overwrite", "binary.bin"),  # a failed fresh run keeps the old one
    Case("train {tiny} --out {run} --overwrite", "--batch-size"),
    Case("eval {run} {binary}", "binary.bin"),
    Case("eval {run} {missing}", "missing"),
    Case("eval {run} {one}", "at least 2 characters"),
    Case("eval {run} /dev/null", ("/dev/null", "not a regular file")),
    Case("inspect {run} {latin1}", "latin1.txt"),
    Case("gradflow {run} --text {empty}", "empty"),
    Case("gradflow {run} --text {text} --seq-len 100000", ("--seq-len", "100001")),
    Case("bench --no-grid --lm 1 --text {missing}", "missing"),
    Case("bench --no-grid --lm 1 --text {tiny}", ("--text", "at least 2080 characters", "got 8")),
    Case("eval {run} ''", "empty PATH"),
    # files the command would write
    Case("train {text} --out {file}", ("--out", "a-file", "is a file")),
    Case("train {text} --out {file}/sub", ("--out", "not a directory")),
    Case("inspect {run} --out {dir}", ("--out", "is a directory")),
    Case("inspect {run} --out {missing}/page.html", ("--out", "does not exist")),
    Case("gradflow --plot {dir}", ("--plot", "is a directory")),
    Case("bench --json {dir}", ("--json", "is a directory")),
    Case("export {run} {dir}", ("MODEL.onnx", "is a directory")),
    Case("export {run} {missing}/model.onnx", ("MODEL.onnx", "does not exist")),
    Case("export {run} {dir}/model.txt", ("MODEL.onnx", "must end in .onnx", "model.txt")),
    Case("export {missing} {dir}/model.onnx", ("missing", "no such directory")),
    Case("export {missing}.safetensors {dir}/model.onnx", ("missing.safetensors", "no such file", "save")),
    Case("export {run}/best.safetensors {dir}/model.onnx",
         ("best.safetensors", "language-model checkpoint", "export its run directory", "--checkpoint best")),
    Case("export {run}/latest.safetensors {dir}/model.onnx --checkpoint best",
         ("latest.safetensors", "language-model checkpoint", "--checkpoint latest")),
    Case("export {other} {dir}/model.onnx", ("other.txt", "is a file, not a directory")),
    Case("export {run} {dir}/model.onnx", ("best.safetensors", "latest.safetensors", "truncated"),
         combine(truncate("best.safetensors"), truncate("latest.safetensors", 3000))),
    Case("classify {text} {text} --save {dir}", ("--save", "is a directory")),
    Case("forecast {text} --horizon 3 --save {missing}/m.safetensors", ("--save", "does not exist")),
    # a run directory that holds a run (the rest of its rules: test_rundir.py)
    Case("train {text} --out {run}", ("--out", "already holds a run", "latest.safetensors at step 20",
                                      "validation", "at step 20", "--resume", "--overwrite")),
    Case("train {text} --out {run} --resume --overwrite", ("--overwrite", "--resume")),
    # rnnkit plot
    Case("plot {missing}", ("missing", "no such directory")),
    Case("plot {dir}", ("empty-dir", "missing config.json")),
    Case("plot {run} --png {dir}", ("--png", "is a directory")),
    Case("plot {run} --html {missing}/page.html", ("--html", "does not exist")),
    Case("plot {run}", ("metrics.jsonl", "no training step recorded yet"), write("metrics.jsonl", "")),
    Case("plot {run}", ("config.json", "not valid JSON"), write("config.json", "{")),
    # run directories
    Case("generate {missing}", ("missing", "no such directory")),
    Case("generate {file}", ("a-file", "is a file")),
    Case("generate {dir}", ("empty-dir", "no checkpoint here")),
    Case("eval {run} {text}", ("config.json", "missing"), remove("config.json")),
    Case("eval {run} {text}", ("vocab.json", "missing"), remove("vocab.json")),
    Case("inspect {run}", "best.safetensors or latest.safetensors",
         remove("best.safetensors", "latest.safetensors")),
    # damaged checkpoints: the other one is damaged too or missing, so nothing is usable
    Case("generate {run}", ("best.safetensors", "latest.safetensors", "truncated"),
         combine(truncate("best.safetensors"), truncate("latest.safetensors", 3000))),
    Case("eval {run} {text}", ("best.safetensors", "latest.safetensors", "not a safetensors file"),
         combine(random_bytes("best.safetensors"), random_bytes("latest.safetensors"))),
    Case("inspect {run}", ("best.safetensors", "is empty", "latest.safetensors", "truncated"),
         combine(write("best.safetensors", b""), truncate("latest.safetensors", 5))),
    Case("gradflow {run}", ("best.safetensors", "truncated"),
         combine(truncate("best.safetensors", 600), remove("latest.safetensors"))),
    Case("generate {run}", ("best.safetensors", "NaN"),
         combine(rewrite_tensors("best.safetensors", nan_weight), remove("latest.safetensors"))),
    Case("generate {run}", ("best.safetensors", "damaged metadata"),
         combine(remove("latest.safetensors"),
              lambda ws: save_file({"x": np.zeros(2, np.float32)}, str(ws["run"] / "best.safetensors"),
                                   metadata={"rnnkit": "{not json"}))),
    Case("generate {run}", ("best.safetensors", "no language model"),
         combine(remove("latest.safetensors"),
              lambda ws: save_file({"x": np.zeros(2, np.float32)}, str(ws["run"] / "best.safetensors")))),
    # bfloat16: NumPy cannot read it, unless ml_dtypes (which onnx imports) registered the type
    Case("eval {run} {text}", ("best.safetensors", "no usable checkpoint"),
         combine(remove("latest.safetensors"), lambda ws: write_raw_safetensors(
             ws["run"] / "best.safetensors", {"model.embed.weight": {"dtype": "BF16", "shape": [2, 2],
                                                                     "data_offsets": [0, 8]}}, bytes(8)))),
    Case("eval {run} {text}", ("best.safetensors", "is damaged", "offset"),
         combine(remove("latest.safetensors"), lambda ws: write_raw_safetensors(
             ws["run"] / "best.safetensors", {"model.embed.weight": {"dtype": "F32", "shape": [3, 3],
                                                                     "data_offsets": [0, 8]}}, bytes(8)))),
    # config.json
    Case("generate {run}", ("config.json", "not valid JSON"), write("config.json", "not json")),
    Case("generate {run}", ("config.json", "empty file"), write("config.json", "")),
    Case("generate {run}", ("config.json", "not UTF-8"), write("config.json", b"\xff\xfe{}")),
    Case("eval {run} {text}", ("config.json", "JSON object", "[]"), write("config.json", "[]")),
    Case("eval {run} {text}", ("config.json", "model must be a JSON object", "lacks the key train"),
         write("config.json", '{"model": 5}')),
    Case("generate {run}", ("config.json", "model lacks the key hidden"),
         edit_json("config.json", lambda c, ws: c["model"].pop("hidden"))),
    Case("gradflow {run}", ("config.json", "train lacks the keys paths, seq_len"),
         edit_json("config.json", lambda c, ws: (c["train"].pop("paths"), c["train"].pop("seq_len")))),
    Case("generate {run}", ("model.hidden", "integer", "str"), both_sections(hidden="16")),
    Case("generate {run}", ("model.cell", "'tcn'"), both_sections(cell="tcn")),
    Case("generate {run}", ("model.dropout", "1.5"), both_sections(dropout=1.5)),
    Case("generate {run}", ("train.lr", "nan"), set_key("train", lr=float("nan"))),
    Case("generate {run}", ("model.hidden = 16", "train.hidden = 24", "agree"), set_key("train", hidden=24)),
    Case("gradflow {run}", ("train.paths", "list"), set_key("train", paths="corpus.txt")),
    # config.json whose sizes do not match the weights (every mismatch at once)
    Case("generate {run}", ("model.hidden is 32 in config.json but 16 in the weights", "head.weight"),
         both_sections(hidden=32)),
    Case("eval {run} {text}", ("model.layers is 2 in config.json but 1", "model.embed is 4 in config.json but 8"),
         both_sections(layers=2, embed=4)),
    Case("inspect {run}", ("model.cell is 'gru' in config.json but 'lstm'",), both_sections(cell="gru")),
    # vocab.json
    Case("generate {run}", ("vocab.json", "not valid JSON"), write("vocab.json", "{")),
    Case("generate {run}", ("vocab.json", "JSON object"), write("vocab.json", '["a", "b"]')),
    Case("generate {run}", ("vocab.json", "chars must be a list"), write("vocab.json", '{"chars": "abc"}')),
    Case("generate {run}", ("vocab.json", "single characters", "'bb'"), write("vocab.json", '{"chars": ["a", "bb", 3]}')),
    Case("generate {run}", ("vocab.json", "distinct"), write("vocab.json", '{"chars": ["a", "a"]}')),
    Case("generate {run}", ("vocab.json", "unknown_id"),
         edit_json("vocab.json", lambda v, ws: v.update(unknown_id=5))),
    Case("eval {run} {text}", ("vocab.json has 28 characters", "the weights have 30"),
         edit_json("vocab.json", lambda v, ws: v["chars"].pop())),
    # --resume
    Case("train --resume --out {missing}", "holds no checkpoint to resume"),
    Case("train --resume --out {run}", ("latest.safetensors", "truncated", "best.safetensors still works"),
         truncate("latest.safetensors", 3000)),
    Case("train --resume --out {run}", ("latest.safetensors", "not a safetensors file"),
         random_bytes("latest.safetensors")),
    Case("train --resume --out {run}", ("latest.safetensors", "is empty"), write("latest.safetensors", b"")),
    Case("train --resume --out {run}", ("latest.safetensors", "best.safetensors is there"),
         remove("latest.safetensors")),
    Case("train --resume --out {run}", ("latest.safetensors", "damaged metadata", "optimizer_lr"),
         copy_file("best.safetensors", "latest.safetensors")),
    Case("train --resume --out {run}", ("latest.safetensors", "NaN"),
         rewrite_tensors("latest.safetensors", nan_weight)),
    Case("train --resume --out {run}", ("latest.safetensors", "does not fit this run"),
         rewrite_tensors("latest.safetensors", lambda t, m: m.update(rng={"bit_generator": "nonsense"}))),
    Case("train --resume --out {run}", ("latest.safetensors", "does not fit this run", "optim"),
         rewrite_tensors("latest.safetensors", lambda t, m: t.pop("optim.0.exp_avg"))),
    Case("train --resume --out {run}", ("config.json", "not valid JSON"), write("config.json", "{")),
    Case("train --resume --out {run} --hidden 32", "--hidden"),
    Case("train --resume --out {run} {other}", "PATH"),
    Case("train --resume --out {run}", "corpus differs",
         set_key("train", paths=["other.txt"])),
]


def materialise(case: Case, ws: dict[str, Path]) -> list[str]:
    """The case's argv with the workspace's paths, after doing its damage."""
    if case.damage is not None:
        case.damage(ws)
    names = {k: str(v) for k, v in ws.items()}
    return [token.format(**names) for token in shlex.split(case.argv)]


def assert_clean_error(code: int, err: str, fragments: tuple[str, ...]) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith("rnnkit"), err
    missing = [f for f in fragments if f not in errors[0]]
    assert not missing, f"{missing} not in: {errors[0]}"


@pytest.mark.parametrize("case", CASES, ids=[f"{i}:{c.argv.split()[0]}" for i, c in enumerate(CASES)])
def test_bad_input_is_a_clean_error(case, ws):
    argv = materialise(case, ws)
    before = snapshot(ws["run"].parent)
    code, _, err = run_cli(argv)
    assert_clean_error(code, err, case.fragments())
    assert snapshot(ws["run"].parent) == before, "the command changed files"


# -- every numeric option, every command -------------------------------------------------------

# Arguments each subcommand needs besides the option under test (never opened: parsing fails first).
VALID_ARGV = {"train": [], "eval": ["DIR", "PATH"], "generate": ["DIR"], "gradflow": [],
              "task": ["adding"], "inspect": ["DIR"], "plot": ["DIR"], "bench": [], "export": ["DIR", "MODEL.onnx"],
              "classify": ["TRAIN", "TEST"], "forecast": ["SERIES", "--horizon", "3"]}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def numeric_options() -> list[tuple[str, str, Range]]:
    return [(name, action.option_strings[0], action.type) for name, parser in subcommands().items()
            for action in parser._actions if isinstance(action.type, Range)]


def bad_values(r: Range) -> list[str]:
    values = ["nan", "inf", "-inf", "x", ""] + (["1.5"] if r.kind is int else [])
    if r.low is not None:
        values.append(repr(r.low) if r.low_open else repr(r.low - 1))
    if r.high is not None:
        values.append(repr(r.high) if r.high_open else repr(r.high + 1))
    return values


def test_every_command_is_in_the_sweep():
    assert set(subcommands()) == set(VALID_ARGV)


def test_every_numeric_option_is_a_range():
    """Numbers are declared with a Range, so that they are checked before any work starts."""
    plain = [(name, a.option_strings) for name, p in subcommands().items() for a in p._actions
             if a.type in (int, float)]
    assert not plain, f"declare these with rnnkit.ranges.Range: {plain}"
    assert len(numeric_options()) >= 30


@pytest.mark.parametrize("command,option,limits", numeric_options(),
                         ids=[f"{c}{o}" for c, o, _ in numeric_options()])
def test_numeric_option_refuses_bad_values(command, option, limits):
    for value in bad_values(limits):
        code, _, err = run_cli([command, *VALID_ARGV[command], f"{option}={value}"])
        assert_clean_error(code, err, (option, repr(value), limits.describe()))


@pytest.mark.parametrize("command", sorted(VALID_ARGV))
def test_unknown_and_abbreviated_options_are_refused(command):
    code, _, err = run_cli([command, *VALID_ARGV[command], "--no-such-option"])
    assert_clean_error(code, err, ("--no-such-option",))
    longest = max((o for a in subcommands()[command]._actions for o in a.option_strings), key=len)
    code, _, err = run_cli([command, *VALID_ARGV[command], longest[:-2], "1"])
    assert_clean_error(code, err, (longest[:-2],))


# -- a damaged checkpoint next to a good one: the good one is used, and the user is told ---------

def test_damaged_best_falls_back_to_latest(ws):
    truncate("best.safetensors")(ws)
    before = snapshot(ws["run"])
    code, out, err = run_cli(["generate", str(ws["run"]), "--prime", "the ", "--length", "5", "--seed", "0"])
    assert code == 0, err
    assert out.startswith("the ") and len(out) == len("the ") + 5 + 1
    note = f"rnnkit generate: note: {ws['run'] / 'best.safetensors'} is truncated (100 bytes"
    assert note in err and f"using {ws['run'] / 'latest.safetensors'} (step 20) instead" in err
    code, out, err = run_cli(["eval", str(ws["run"]), str(ws["text"]), "--json"])
    assert code == 0 and json.loads(out)["checkpoint"] == "latest.safetensors" and "is truncated" in err
    assert snapshot(ws["run"]) == before


def test_damaged_latest_is_reported_and_best_used(ws):
    random_bytes("latest.safetensors")(ws)
    code, out, err = run_cli(["eval", str(ws["run"]), str(ws["text"]), "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["checkpoint"] == "best.safetensors" and result["step"] in (10, 20)
    assert "latest.safetensors is not a safetensors file" in err
    assert "--resume cannot continue this run" in err
    assert f"best.safetensors (step {result['step']}), which is intact" in err


def test_missing_best_uses_latest_and_says_why(ws):
    remove("best.safetensors")(ws)
    code, out, err = run_cli(["eval", str(ws["run"]), str(ws["text"]), "--json"])
    assert code == 0 and json.loads(out)["checkpoint"] == "latest.safetensors"
    assert "there is no best.safetensors" in err


def test_unknown_keys_in_run_files_are_ignored(ws):
    """A run directory written by a later version (keys this one does not know) or an earlier one
    (without a training option added since) still works."""
    edit_json("config.json", lambda c, ws: (c["model"].update(attention=False), c.update(mpi={"ranks": 2}),
                                            c["train"].pop("warmup")))(ws)          # older: no warmup
    edit_json("vocab.json", lambda v, ws: v.update(normalised="NFC"))(ws)
    code, out, err = run_cli(["generate", str(ws["run"]), "--prime", "the", "--length", "2"])
    assert code == 0 and out.startswith("the") and err == "", err


def test_train_config_reports_every_problem_at_once():
    from rnnkit.lm.config import TrainConfig
    with pytest.raises(ValueError, match=r"--hidden must be an integer >= 1, got 0; --lr must be a finite "
                                         r"number > 0, got nan; --cell must be one of lstm, gru, rnn, got 'tcn'"):
        TrainConfig(hidden=0, lr=float("nan"), cell="tcn")
    with pytest.raises(TypeError, match="--seed must be an integer >= 0, got float 1.5"):
        Range(int, low=0).check("--seed", 1.5)


def test_default_prime_on_a_text_without_newlines(tmp_path):
    line = tmp_path / "line.txt"
    line.write_text("循环神经网络可以记住过去的信息。" * 40, encoding="utf-8")
    code, _, err = run_cli(["train", str(line), *TINY, "--max-steps", "2", "--out", str(tmp_path / "zh")])
    assert code == 0, err
    code, _, err = run_cli(["generate", str(tmp_path / "zh")])
    assert_clean_error(code, err, ("--prime", "'\\n'", "a newline is the default --prime", "give --prime TEXT"))


def test_resume_drops_half_written_metrics_lines(ws):
    with open(ws["run"] / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 21, "lo')                  # what a crash mid-write leaves
    code, _, err = run_cli(["train", "--resume", "--out", str(ws["run"]), "--max-steps", "22"])
    assert code == 0, err
    assert "dropped 1 damaged line(s)" in err
    steps = [json.loads(line)["step"] for line in (ws["run"] / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 22 and steps.count(21) == 1


# -- the one place that words errors; a bug keeps its traceback -----------------------------------

def test_user_message_words_user_errors_only():
    assert user_message(UserError("--x must be 1")) == "--x must be 1"
    assert user_message(PermissionError(13, "Permission denied", "/srv/run/config.json")) == \
        "/srv/run/config.json: permission denied (check its permissions or choose another path)"
    assert user_message(OSError(28, "No space left on device", "run/latest.safetensors")).endswith(
        "no space left on device (the disk is full; free some space)")
    assert "out of memory (Unable to allocate 3 TiB" in user_message(MemoryError("Unable to allocate 3 TiB"))
    for bug in (ValueError("x"), KeyError("k"), TypeError("t"), OSError("no file name"), RuntimeError("r")):
        assert user_message(bug) is None


def test_an_internal_error_keeps_its_traceback(ws, monkeypatch):
    import rnnkit.lm.run
    monkeypatch.setattr(rnnkit.lm.run, "score", lambda *a, **k: {}["a bug"])
    with pytest.raises(KeyError, match="a bug"):
        main(["eval", str(ws["run"]), str(ws["text"])])


# -- end to end, in a real process ----------------------------------------------------------------

def pick(argv: str, fragment: str) -> Case:
    return next(c for c in CASES if c.argv == argv and fragment in c.fragments())


SUBPROCESS_CASES = [pick("train {text} --lr nan", "--lr"), pick("generate {run}", "truncated"),
                    pick("eval {run} {text}", "model must be a JSON object"),
                    pick("train --resume --out {run}", "best.safetensors still works")]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.argv.split()[0] for c in SUBPROCESS_CASES])
def test_exit_code_and_no_traceback_in_a_real_process(case, ws):
    argv = materialise(case, ws)
    before = snapshot(ws["run"].parent)
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", *argv], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "default"})
    assert_clean_error(proc.returncode, proc.stderr, case.fragments())
    assert proc.stdout == "" and snapshot(ws["run"].parent) == before


def test_a_bug_in_a_real_process_shows_its_traceback(ws):
    bug = ("import sys, rnnkit.cli, rnnkit.lm.run; rnnkit.lm.run.score = lambda *a, **k: 1 / 0; "
           f"sys.exit(rnnkit.cli.main(['eval', {str(ws['run'])!r}, {str(ws['text'])!r}]))")
    proc = subprocess.run([sys.executable, "-c", bug], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
