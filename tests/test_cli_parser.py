"""What the parser says to a newcomer: two lines for an option it refuses (the error and where the
help is), the closest spelling of a mistyped option or value, every fixed set of values checked
before any work, and ``rnnkit`` alone listing the commands."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from rnnkit.cli import build_parser
from test_cli_errors import VALID_ARGV, run_cli, subcommands


def rnnkit(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnkit.cli", *argv], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "default"})


def assert_two_lines(proc_or_err, command: str, *fragments: str) -> str:
    """exit code 2, stderr exactly ``rnnkit CMD: error: ...`` and ``see 'rnnkit CMD --help'``."""
    code, err = (proc_or_err.returncode, proc_or_err.stderr) if hasattr(proc_or_err, "stderr") else proc_or_err
    lines = err.splitlines()
    prog = f"rnnkit {command}".strip()
    assert code == 2, err
    assert len(lines) == 2 and lines[0].startswith(f"{prog}: error: ") and lines[1] == f"see '{prog} --help'", err
    missing = [f for f in fragments if f not in lines[0]]
    assert not missing, f"{missing} not in {lines[0]}"
    return lines[0]


@pytest.mark.parametrize("argv,command,fragments", [
    (["train", "--hiden", "12"], "train", ("unknown option --hiden", "did you mean --hidden?")),
    (["train", "--hiden=12"], "train", ("unknown option --hiden", "did you mean --hidden?")),
    (["train", "--hidd", "12"], "train", ("unknown option --hidd", "did you mean --hidden?")),
    (["generate", "run", "--temprature", "1"], "generate", ("--temprature", "did you mean --temperature?")),
    (["classify", "a", "b", "--pooling", "median"], "classify",
     ("--pooling", "must be one of last, mean, max, attention", "'median'")),
    (["forecast", "s", "--horizon", "3", "--normalize", "lst"], "forecast",
     ("--normalize", "last", "global", "both", "did you mean last?")),
    (["train", "--cell", "lstn"], "train", ("--cell", "lstm, gru, rnn", "did you mean lstm?")),
    (["task", "addng"], "task", ("adding, copy", "did you mean adding?")),
    (["gradflow", "--cells", "lstm,tcn"], "gradflow", ("--cells", "rnn, lstm, gru", "'lstm,tcn'")),
    (["trian"], "", ("unknown command 'trian'", "did you mean train?")),
    (["generate", "run", "extra"], "generate", ("unexpected argument 'extra'",)),
    (["eval", "run"], "eval", ("PATH",)),
    (["export", "run", "m.onnx", "--checkpoint", "bset"], "export", ("--checkpoint", "best, latest", "'bset'")),
    (["train", "--lr", "nan"], "train", ("--lr", "finite", "'nan'")),
])
def test_a_refused_option_is_two_lines_in_a_real_process(argv, command, fragments):
    assert_two_lines(rnnkit(*argv), command, *fragments)


def test_a_mistyped_option_never_reaches_the_command(tmp_path, monkeypatch):
    """`train --hiden 12` would have trained on a corpus named 12: now nothing runs, nothing is written."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["train", "--hiden", "12", "--out", str(tmp_path / "run")])
    assert_two_lines((code, err), "train", "--hiden", "--hidden")
    assert out == "" and list(tmp_path.iterdir()) == []


def test_rnnkit_alone_lists_the_commands():
    proc = rnnkit()
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    for name, parser in subcommands().items():
        summary = next(a.help for a in build_parser().commands._choices_actions if a.dest == name)
        assert any(line.split() and line.split()[0] == name and summary in line for line in lines), name
    assert "see 'rnnkit COMMAND --help'" in proc.stdout
    assert rnnkit("--help").stdout == proc.stdout


def test_every_command_help_is_its_own_options():
    """``rnnkit CMD --help``: argparse's help of that command (its usage line and every option),
    not the top-level list of commands."""
    for name, parser in subcommands().items():
        proc = rnnkit(name, "--help")
        assert proc.returncode == 0 and proc.stderr == "", (name, proc.stderr)
        assert proc.stdout.startswith(f"usage: rnnkit {name} [-h]"), (name, proc.stdout[:200])
        options = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
        missing = [o for o in options if o not in proc.stdout]
        assert not missing and "commands:" not in proc.stdout, (name, missing)


def choice_options() -> list[tuple[str, argparse.Action]]:
    return [(name, a) for name, p in subcommands().items() for a in p._actions
            if a.choices is not None and not isinstance(a, argparse._SubParsersAction)]


def test_every_fixed_set_of_values_is_declared_as_choices():
    """The options whose values are names (cells, poolings, normalisations, optimizers, schedules,
    tasks) are checked by the parser, with the names from the one list the library uses."""
    from rnnkit.models.network import CELLS
    from rnnkit.models.series import NORMALIZATIONS
    from rnnkit.pooling import POOLINGS
    declared = {(name, a.option_strings[0] if a.option_strings else a.dest): tuple(a.choices)
                for name, a in choice_options()}
    for command in ("classify", "forecast"):
        assert set(declared[(command, "--cell")]) == set(CELLS)
        assert declared[(command, "--pooling")] == POOLINGS
    assert set(declared[("forecast", "--normalize")]) == set(NORMALIZATIONS)
    from rnnkit.models.data import SEQUENCE_NORMALIZATIONS
    assert set(declared[("classify", "--normalize")]) == set(SEQUENCE_NORMALIZATIONS)
    assert {("classify", "--schedule"), ("classify", "--normalize")} <= set(declared)
    assert {("train", "--cell"), ("train", "--optimizer"), ("train", "--schedule"), ("task", "name"),
            ("task", "--cell")} <= set(declared)


@pytest.mark.parametrize("command,action", choice_options(),
                         ids=[f"{c}:{a.option_strings[0] if a.option_strings else a.dest}" for c, a in choice_options()])
def test_every_choice_option_refuses_a_value_outside_its_set(command, action):
    argv = [command, *VALID_ARGV[command]]
    if action.option_strings:
        argv += [action.option_strings[0], "no-such-value"]
    else:                                          # a positional choice (task NAME)
        argv = [command, "no-such-value"]
    code, out, err = run_cli(argv)
    line = assert_two_lines((code, err), command, "'no-such-value'", *map(str, action.choices))
    assert (action.option_strings[0] if action.option_strings else action.dest) in line


@pytest.mark.parametrize("command", ["eval", "generate", "inspect", "gradflow", "export"])
def test_every_command_that_uses_a_model_takes_the_same_checkpoint_option(command, tmp_path):
    action = next(a for a in subcommands()[command]._actions if "--checkpoint" in a.option_strings)
    assert action.metavar == "best|latest|PATH" and action.default is None
    code, _, err = run_cli([command, *VALID_ARGV[command], "--checkpoint", str(tmp_path)])   # a directory
    assert_two_lines((code, err), command, "--checkpoint", "is a directory", "best, latest")
    code, _, err = run_cli([command, *VALID_ARGV[command], "--checkpoint", str(tmp_path / "nope.safetensors")])
    assert_two_lines((code, err), command, "--checkpoint", "no such file")
