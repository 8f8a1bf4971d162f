"""``rnnkit plot RUN_DIR`` and ``rnnkit train --plot``: the run's curves as a PNG and as an HTML
page, the page opened and used in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import chromium
from test_cli_errors import run_cli

PHRASE = "the quick brown fox jumps over the lazy dog.\n"


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """A run trained with --plot: 90 steps, a validation (with its sample) every 30, resumed once."""
    home = tmp_path_factory.mktemp("plot")
    (home / "c.txt").write_text(PHRASE * 100, encoding="utf-8")
    base = ["train", str(home / "c.txt"), "--hidden", "16", "--embed", "8", "--layers", "1", "--batch-size", "4",
            "--seq-len", "16", "--eval-every", "30", "--sample-chars", "40", "--out", str(home / "run")]
    assert run_cli([*base, "--max-steps", "60"])[0] == 0
    code, out, err = run_cli(["train", "--resume", "--max-steps", "90", "--out", str(home / "run"), "--plot"])
    assert code == 0, err
    return home / "run", out


def test_train_plot_draws_the_png_and_the_page(plotted):
    run, out = plotted
    assert f"drawn: {run / 'training.html'}" in out and f"drawn: {run / 'training.png'}" in out
    image = pytest.importorskip("matplotlib.image").imread(run / "training.png")
    assert image.shape[:2] == (800, 1200)                      # 12 x 8 inches at 100 dpi
    assert image[..., :3].std() > 0.05                         # curves, not a blank canvas


def test_the_page_in_a_headless_browser(plotted, tmp_path):
    run, _ = plotted
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if "val_bpc" in r]
    assert [v["step"] for v in vals] == [30, 60, 90]
    driver = chromium(tmp_path)
    from selenium.webdriver.support.ui import Select
    try:
        driver.get((run / "training.html").as_uri())
        path = lambda id_: driver.find_element("id", id_).get_attribute("d")  # noqa: E731
        by_chars = path("train-smooth")
        assert by_chars.count("L") == 89                         # one point per step (90 steps)
        assert len(driver.find_elements("css selector", "#loss circle")) == 3
        best = int(np.argmin([v["val_bpc"] for v in vals]))
        circles = driver.find_elements("css selector", "#loss circle")
        assert [c.get_attribute("class") for c in circles] == ["best" if k == best else "val-dot" for k in range(3)]
        assert "best.safetensors" in driver.find_element("id", "summary").text
        Select(driver.find_element("id", "xaxis")).select_by_value("time")
        by_time = path("train-smooth")
        assert by_time != by_chars and by_time.count("L") == 89
        ticks = lambda: [t.text for t in driver.find_elements("css selector", "#loss text")]  # noqa: E731
        assert "seconds of training" in ticks()
        Select(driver.find_element("id", "xaxis")).select_by_value("step")
        assert path("train-smooth") == by_chars and "step" in ticks()      # steps and characters: proportional
        assert "80" in ticks() and "5.12k" not in ticks()
        assert driver.find_elements("id", "train-raw")
        driver.find_element("id", "raw").click()                 # hide the raw training points
        assert not driver.find_elements("id", "train-raw")
        assert path("lr")
        steps = Select(driver.find_element("id", "sample-step"))
        assert [o.get_attribute("value") for o in steps.options] == ["30", "60", "90"]
        shown = lambda: driver.find_element("id", "sample").get_property("textContent")  # noqa: E731
        assert shown() == vals[-1]["sample"]                     # the latest sample, exactly
        steps.select_by_value("30")
        assert shown() == vals[0]["sample"]
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()


def test_plot_command_and_an_older_run_directory(plotted, tmp_path):
    """An older run kept its seconds in metrics.jsonl and had no timings.jsonl: still drawn."""
    import shutil
    run = tmp_path / "old"
    shutil.copytree(plotted[0], run)
    timings = {json.loads(t)["step"]: json.loads(t)["train_seconds"] for t in (run / "timings.jsonl").read_text().splitlines()}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r | ({"train_seconds": timings[r["step"]]} if "loss" in r else {}))
                                               + "\n" for r in records) + '{"step": 91, "lo')   # a run writing it
    (run / "timings.jsonl").unlink()
    code, out, err = run_cli(["plot", str(run), "--png", str(tmp_path / "a.png"), "--html", str(tmp_path / "a.html")])
    assert code == 0, err
    assert out.splitlines() == [f"drawn: {tmp_path / 'a.html'}", f"drawn: {tmp_path / 'a.png'}"]
    page = (tmp_path / "a.html").read_text(encoding="utf-8")
    data = json.loads(page.split("const DATA = ")[1].split(";\n")[0])
    assert data["steps"] == list(range(1, 91)) and data["seconds"][-1] == pytest.approx(timings[90], abs=1e-6)


def test_without_matplotlib_the_page_is_still_drawn(plotted, tmp_path):
    run = plotted[0]
    code = ("import sys; sys.modules['matplotlib'] = None\nfrom rnnkit.cli import main\n"
            f"sys.exit(main(['plot', {str(run)!r}, '--html', {str(tmp_path / 'p.html')!r}] + sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == f"drawn: {tmp_path / 'p.html'}\n"
    assert proc.stderr == 'rnnkit plot: note: the PNG needs matplotlib (pip install "rnnkit[plot]"); only the HTML ' \
                          "page will be drawn\n"
    proc = subprocess.run([sys.executable, "-c", code, "--png", str(tmp_path / "p.png")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == \
        'rnnkit plot: error: --png needs matplotlib: pip install "rnnkit[plot]"\n'
    assert not (tmp_path / "p.png").exists()
