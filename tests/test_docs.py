"""Every Python code block of every page under docs/ runs, as a reader would run it: the blocks of
a page in order, sharing one namespace (a new page is covered without being listed here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_the_docs_have_code_to_run():
    assert PAGES and sum(len(python_blocks(p)) for p in PAGES) >= 5


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # whatever a block writes stays out of the tree
    scope: dict = {"__name__": "__docs__"}
    for block in python_blocks(page):
        exec(compile(block, f"docs/{page.name}", "exec"), scope)
