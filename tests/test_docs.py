"""Every Python code block of README.md and of every page under docs/ runs, as a reader would run it:
the blocks of a page in order, sharing one namespace (a new page is covered without being listed
here). A block after ``<!-- tested: NAME -->`` is run instead by the test that checks what it
claims (``helpers.doc_block(PAGE, NAME)``); each such marker must have that test. Every relative
link of those pages leads to a file that exists, and a link to a heading to a heading there."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from helpers import doc_block

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- tested: ([\w-]+) -->\s*)?```python\n(.*?)```", re.S)


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path) -> list[tuple[str | None, str]]:
    """(marker or None, code) of each python block of the page, in order; the code starts on its
    line of the page, so that a traceback names the page's line."""
    text = page.read_text(encoding="utf-8")
    return [(m.group(2), "\n" * text.count("\n", 0, m.start(3)) + m.group(3)) for m in BLOCK.finditer(text)]


def test_the_docs_have_code_to_run():
    assert sum(marker is None for p in PAGES for marker, _ in blocks(p)) >= 10
    assert blocks(ROOT / "README.md")


@pytest.mark.parametrize("page", [p for p in PAGES if any(m is None for m, _ in blocks(p))], ids=name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # whatever a block writes stays out of the tree
    scope: dict = {"__name__": "__docs__"}
    for marker, code in blocks(page):
        if marker is None:
            exec(compile(code, name(page), "exec"), scope)


def test_every_marked_block_has_its_test():
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("*.py"))
    marked = [(name(p), marker) for p in PAGES for marker, _ in blocks(p) if marker]
    assert len(marked) >= 8
    missing = [(page, marker) for page, marker in marked
               if not re.search(rf'doc_block\(\s*"{re.escape(page)}",\s*"{re.escape(marker)}"\s*\)', tests)]
    assert not missing, f"marked blocks that no test runs: {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        s = slug(heading)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_links_lead_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):              # http(s): and mailto: are not checked offline
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{name(page)}: links to nothing: {broken}"


def test_the_readme_lstm_example_computes_what_torch_computes():
    """README's rnnkit.LSTM example: its output and gradients are torch.nn.LSTM's with the same
    weights and packed sequences, and its Adam step moves every parameter."""
    torch = pytest.importorskip("torch")
    scope: dict = {}
    exec(compile(doc_block("README.md", "lstm"), "README.md", "exec"), scope)
    lstm, x, lengths = scope["lstm"], scope["x"], scope["lengths"]
    theirs = torch.nn.LSTM(8, 32, num_layers=2, batch_first=True)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in scope["before"].items()})
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, (h_n, c_n) = theirs(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    (out ** 2).mean().backward()
    np.testing.assert_allclose(scope["out"], out.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scope["h_n"], h_n.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert scope["loss"] == pytest.approx(float((out.detach() ** 2).mean()), rel=1e-5)
    np.testing.assert_allclose(scope["dx"], xt.grad.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(scope["grad"], theirs.weight_ih_l0.grad.numpy(), rtol=1e-4, atol=1e-7)
    moved = [k for k, v in lstm.state_dict().items() if not np.array_equal(v, scope["before"][k])]
    assert sorted(moved) == sorted(scope["before"])           # Adam moved every parameter
    assert all(np.all(p.grad == 0) for p in lstm.parameters())
    assert scope["y"].shape == (1, 10, 32) and scope["state"][0].shape == (2, 1, 32)


def test_the_readme_links_every_page():
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)\)", (ROOT / "README.md").read_text(encoding="utf-8")))
    pages = {p.name for p in PAGES if p.parent.name == "docs"}
    assert pages and not pages - linked, f"docs pages the README does not link: {sorted(pages - linked)}"
