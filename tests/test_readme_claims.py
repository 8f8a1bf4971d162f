"""What the README and the docs claim about the commands, read from the page that says it and checked
against what they do."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
THEORY = (ROOT / "docs" / "theory.md").read_text(encoding="utf-8")


def test_the_quick_start_names_every_package_of_the_test_extra():
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]["test"]
    names = [re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower() for spec in extra]
    sentence = re.search(r"Run the tests \(installs the test extra — (.*?) —", README, re.S).group(1)
    said = sentence.lower().replace("\n", " ")
    missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", said)]
    assert not missing, f"README's Quick start leaves out {missing} of the test extra"


def extras() -> dict[str, list[str]]:
    """pyproject.toml's extras: name -> the lower-case names of the packages it installs."""
    tomllib = pytest.importorskip("tomllib")
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    return {extra: [re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower() for spec in specs]
            for extra, specs in table.items()}


def table_rows(first_cell: str) -> dict[str, str]:
    """The README's table rows whose first cell matches ``first_cell`` (a regex with one group):
    that group -> the whole row, lower case."""
    return {m.group(1): m.group(0).lower() for m in re.finditer(rf"^\| {first_cell} \|.*$", README, re.M)}


def test_the_readme_tables_every_command():
    from rnnkit.cli import build_parser
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted(table_rows(r"`rnnkit (\w+)[^`]*`")) == sorted(commands)


def test_the_readme_tables_every_extra_with_what_it_installs():
    rows = table_rows(r"`(\w+)`")
    known = extras()
    assert sorted(rows) == sorted(known)
    for extra, packages in known.items():
        others = {p for name, ps in known.items() if name != extra for p in ps}
        said = rows[extra].split("|")[2]              # the "installs" cell
        missing = [p for p in packages if not re.search(rf"\b{re.escape(p)}\b", said)
                   and not (extra == "test" and p in others and "all of the above" in said)]
        assert not missing, f"README's row of the {extra} extra leaves out {missing}"


def test_the_adding_task_in_the_docs_is_solved_as_they_say():
    # how long it takes is a benchmark's business (machines differ 3-20 s), not a test's:
    # the test holds the docs to what they promise on every machine, that the LSTM solves it
    line = next(ln for ln in THEORY.splitlines() if ln.startswith("rnnkit task adding"))
    command = line.split("#", 1)[0]
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", *shlex.split(command)[1:], "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["solved"], result                         # the table's LSTM at T = 50
    assert result["seconds"] > 0, result
