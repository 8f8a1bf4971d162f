"""What a training run tells its user and how it can be repeated: reproducible --max-steps runs,
the replay of a time-budgeted run, the resumed run's speed, the overfitting caution, the closing
summary, the progress bar, the unknown-character caution and the checkpoint choice."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from tqdm import tqdm

from rnnkit.lm.progress import BAR_FORMAT, OVERFIT_EVALUATIONS, OVERFIT_MARGIN, Validation, bar_postfix, overfitting
from test_cli_errors import run_cli

PHRASE = "the quick brown fox jumps over the lazy dog.\n"
TINY = ["--hidden", "16", "--embed", "8", "--layers", "1", "--batch-size", "4", "--seq-len", "16"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(PHRASE * 100, encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the same command, the same run ---------------------------------------------------------------

def test_max_steps_runs_are_byte_identical_and_involve_no_clock(corpus, tmp_path):
    args = ["train", str(corpus), *TINY, "--dropout", "0.1", "--max-steps", "45", "--eval-every", "15",
            "--sample-chars", "30"]
    for name in ("a", "b"):
        code, out, err = run_cli([*args, "--out", str(tmp_path / name)])
        assert code == 0, err
        assert "no time limit, 45 steps" in err and "repeat" not in out       # nothing to replay
    a, b = (tmp_path / n / "metrics.jsonl" for n in "ab")
    assert a.read_bytes() == b.read_bytes()
    records = lines(a)
    assert len([r for r in records if "loss" in r]) == 45 and [r["step"] for r in records if "val_bpc" in r] == [15, 30, 45]
    assert all(isinstance(r.get("sample"), str) for r in records if "val_bpc" in r)
    assert not any("seconds" in key or "per_s" in key for r in records for key in r)   # the clock is elsewhere
    timings = lines(tmp_path / "a" / "timings.jsonl")
    assert [t["step"] for t in timings] == list(range(1, 46))
    assert all(t2["train_seconds"] > t1["train_seconds"] for t1, t2 in zip(timings, timings[1:]))
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["time_budget"] == 0


def test_a_bfloat16_run_is_its_own_repeatable_run(corpus, tmp_path):
    """--precision bfloat16: the training step's layer products under rnnkit.autocast, kept in
    the run's config; the same command gives the same bytes, and other losses than float32's."""
    from rnnkit.precision import bfloat16_usable
    args = ["train", str(corpus), *TINY, "--max-steps", "6", "--eval-every", "3", "--sample-chars", "0"]
    for name, extra in (("a", ["--precision", "bfloat16"]), ("b", ["--precision", "bfloat16"]), ("f", [])):
        code, _, err = run_cli([*args, *extra, "--out", str(tmp_path / name)])
        assert code == 0, err
    a, b, f = ((tmp_path / n / "metrics.jsonl").read_bytes() for n in "abf")
    assert a == b
    assert (a != f) == bfloat16_usable()                    # float32 where the CPU has no bfloat16
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["precision"] == "bfloat16"


def test_max_steps_with_a_budget_keeps_the_budget(corpus, tmp_path):
    code, _, err = run_cli(["train", str(corpus), *TINY, "--max-steps", "3", "--time-budget", "100",
                            "--sample-chars", "0", "--out", str(tmp_path / "r")])
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["time_budget"] == 100


def test_a_budgeted_run_says_how_to_repeat_it_and_the_replay_is_exact(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["train", str(corpus), *TINY, "--time-budget", "1", "--eval-every", "40",
                              "--sample-chars", "20", "--out", "budget"])
    assert code == 0, err
    planned = int(re.search(r"allows about (\d+) steps", err).group(1))
    line = next(ln for ln in out.splitlines() if "To repeat this run exactly" in ln)
    steps = lines(tmp_path / "budget" / "metrics.jsonl")[-1]["step"]
    assert f"stopped on its time budget at step {steps}" in line and f"planned for {planned} steps" in line
    command = shlex.split(line.split("To repeat this run exactly: ")[1])
    assert command[:2] == ["rnnkit", "train"] and command[-2:] == ["--out", "budget-replay"]
    assert ["--max-steps", str(steps)] == command[command.index("--max-steps"):][:2]
    lr = [r["lr"] for r in lines(tmp_path / "budget" / "metrics.jsonl") if "lr" in r]
    assert lr[0] == pytest.approx(6e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0 / planned))))
    # past the planned steps (a run that sped up after its calibration) the rate stays at its floor
    progress = min((steps - 1) / planned, 1.0)
    assert lr[-1] == pytest.approx(6e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))))
    code, replay_out, err = run_cli(command[1:])
    assert code == 0, err
    assert "To repeat" not in replay_out
    assert (tmp_path / "budget" / "metrics.jsonl").read_bytes() == (tmp_path / "budget-replay" / "metrics.jsonl").read_bytes()


def test_schedule_steps_applies_to_the_cosine_only(corpus, tmp_path):
    code, _, err = run_cli(["train", str(corpus), "--schedule", "constant", "--schedule-steps", "50",
                            "--max-steps", "3", "--out", str(tmp_path / "r")])
    assert code == 2 and "--schedule-steps applies to the cosine schedule only" in err


# -- a resumed run's speed ------------------------------------------------------------------------

def test_a_resumed_run_reports_its_own_speed_and_the_whole_run(corpus, tmp_path):
    run = tmp_path / "r"
    assert run_cli(["train", str(corpus), *TINY, "--max-steps", "30", "--sample-chars", "0", "--out", str(run)])[0] == 0
    before = lines(run / "timings.jsonl")[-1]["train_seconds"]
    code, out, err = run_cli(["train", "--resume", "--max-steps", "80", "--out", str(run)])
    assert code == 0, err
    timings = lines(run / "timings.jsonl")
    assert [t["step"] for t in timings] == list(range(1, 81))
    resumed_seconds = timings[-1]["train_seconds"] - before
    match = re.search(r"steps: 31-80 resumed \(([\d,]+) characters in ([\d.]+) s of training, ([\d,]+) chars/s\)", out)
    assert match, out
    chars, rate = int(match.group(1).replace(",", "")), int(match.group(3).replace(",", ""))
    assert chars == 50 * 4 * 16
    assert rate == pytest.approx(chars / resumed_seconds, rel=0.01)       # the resumed part's own time
    whole = re.search(r"the whole run: 80 steps, ([\d,]+) characters in ([\d.]+) s", out)
    assert whole and int(whole.group(1).replace(",", "")) == 80 * 64
    assert float(whole.group(2)) == pytest.approx(timings[-1]["train_seconds"], rel=0.05, abs=0.01)


# -- overfitting ----------------------------------------------------------------------------------

def history(*bpc: float) -> list[Validation]:
    return [Validation(10 * (k + 1), v) for k, v in enumerate(bpc)]


def test_overfitting_thresholds():
    n, rise = OVERFIT_EVALUATIONS, 1 + OVERFIT_MARGIN
    assert n == 3
    assert overfitting(history(2.0, 1.8, 1.9, 1.95)) is None                      # 2 after the best
    best, latest = overfitting(history(2.0, 1.8, 1.9, 1.95, 1.8 * rise * 1.001))
    assert best == Validation(20, 1.8) and latest.step == 50
    assert overfitting(history(2.0, 1.8, 1.81, 1.805, 1.8 * rise * 0.999)) is None   # a plateau, not a rise
    assert overfitting(history(2.0, 1.8, 1.9, 1.95, 2.0, 1.7)) is None             # a new best ends it
    assert overfitting([]) is None


def test_a_run_that_overfits_is_told_so(tmp_path):
    text = tmp_path / "random.txt"              # letters at random: nothing to learn but the text itself
    text.write_text("".join(np.random.default_rng(0).choice(list("abcdefghij \n"), 3000)), encoding="utf-8")
    code, out, err = run_cli(["train", str(text), "--hidden", "64", "--embed", "8", "--layers", "1",
                              "--batch-size", "4", "--seq-len", "32", "--lr", "0.01", "--schedule", "constant",
                              "--sample-chars", "0", "--eval-every", "25", "--max-steps", "400",
                              "--val-fraction", "0.1", "--out", str(tmp_path / "r")])
    assert code == 0, err
    vals = [(r["step"], r["val_bpc"]) for r in lines(tmp_path / "r" / "metrics.jsonl") if "val_bpc" in r]
    best_step, best = min(vals, key=lambda v: v[1])
    warned = [ln for ln in err.splitlines() if ln.startswith("rnnkit train: warning: ")]
    assert len(warned) == 1 and "the model is overfitting" in warned[0]
    assert f"against the best {best:.3f} at step {best_step}" in warned[0]
    assert f"last {vals[-1][1]:.3f} bits/char" in out and f"best {best:.3f} at step {best_step} (best.safetensors)" in out
    assert f"best.safetensors (step {best_step}), which generate, eval" in out and "overfitting:" in out
    code, json_out, _ = run_cli(["eval", str(tmp_path / "r"), str(text), "--json"])
    assert json.loads(json_out)["step"] == best_step                 # what the summary said eval uses


def test_a_run_that_learns_gets_no_caution(corpus, tmp_path):
    code, out, err = run_cli(["train", str(corpus), *TINY, "--max-steps", "60", "--eval-every", "10",
                              "--sample-chars", "0", "--out", str(tmp_path / "r")])
    assert code == 0 and "warning" not in err and "overfitting" not in out


# -- the progress bar -----------------------------------------------------------------------------

def test_the_progress_bar_shows_one_loss_in_one_unit():
    line = tqdm.format_meter(5, 20, 1.5, bar_format=BAR_FORMAT, postfix=bar_postfix(5, 2.838, 35123.4), ncols=120)
    assert line.endswith("| 00:01<00:04, step 5, 2.838 bits/char, 35,123 chars/s"), line
    assert " , " not in line and line.count("bits/char") == 1 and "loss" not in line


# -- characters the model never saw ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("runs")
    corpus = home / "corpus.txt"
    corpus.write_text(PHRASE * 100, encoding="utf-8")
    code, _, err = run_cli(["train", str(corpus), *TINY, "--max-steps", "40", "--eval-every", "20",
                            "--sample-chars", "0", "--out", str(home / "run")])
    assert code == 0, err
    return home / "run"


@pytest.mark.parametrize("unknown,warned", [(0, False), (10, False), (11, True), (990, True)])
def test_eval_and_inspect_warn_when_much_of_the_text_is_unknown(trained, tmp_path, unknown, warned):
    text = tmp_path / "t.txt"                           # 1000 characters, `unknown` of them never seen
    known = (PHRASE * 30)[: 1000 - unknown]
    text.write_text(known + "Z" * unknown, encoding="utf-8")
    code, out, err = run_cli(["eval", str(trained), str(text), "--json"])
    assert code == 0, err
    result = json.loads(out)
    assert result["unknown_chars"] == unknown and result["unknown_share"] == pytest.approx(unknown / 1000)
    share = f"{100 * unknown / 1000:.1f}% of the characters ({unknown:,} of 1,000) never appeared"
    assert (f"rnnkit eval: warning: {share}" in err) == warned, err
    code, out, err = run_cli(["inspect", str(trained), str(text), "--out", str(tmp_path / "p.html")])
    assert code == 0, err
    assert (f"rnnkit inspect: warning: {share}" in err) == warned, err


# -- --checkpoint best|latest|PATH, the same on every command ------------------------------------

def test_the_checkpoint_option_on_every_command(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    best_step = json.loads(run_cli(["eval", str(run), str(run / "config.json"), "--json"])[1])["step"]
    code, out, _ = run_cli(["eval", str(run), str(run / "config.json"), "--json", "--checkpoint", "latest"])
    assert json.loads(out)["checkpoint"] == "latest.safetensors" and json.loads(out)["step"] == 40
    copy = tmp_path / "kept.safetensors"
    shutil.copyfile(run / "latest.safetensors", copy)
    code, out, _ = run_cli(["eval", str(run), str(run / "config.json"), "--json", "--checkpoint", str(copy)])
    assert code == 0 and json.loads(out)["checkpoint"] == "kept.safetensors"
    for argv in (["generate", str(run), "--prime", "the ", "--length", "5", "--seed", "0"],
                 ["inspect", str(run), "--out", str(tmp_path / "p.html")],
                 ["gradflow", str(run), "--seq-len", "10", "--batch", "2", "--json"],
                 ["export", str(run), str(tmp_path / "m.onnx")]):
        for which in ("best", "latest", str(copy)):
            code, out, err = run_cli([*argv, "--checkpoint", which])
            assert code == 0 and "error" not in err, (argv, which, err)
    code, out, _ = run_cli(["export", str(run), str(tmp_path / "m.onnx"), "--checkpoint", "latest"])
    assert f"from {run / 'latest.safetensors'}, step 40" in out
    (run / "latest.safetensors").write_bytes(b"")                       # asked for by name: no fallback
    code, _, err = run_cli(["generate", str(run), "--checkpoint", "latest"])
    assert code == 2 and "--checkpoint latest:" in err and "is empty" in err
    assert f"{run / 'best.safetensors'} is intact: use --checkpoint best" in err
    code, out, err = run_cli(["eval", str(run), str(run / "config.json"), "--json"])   # no choice: best
    assert code == 0 and json.loads(out)["step"] == best_step
    (run / "best.safetensors").unlink()
    code, _, err = run_cli(["eval", str(run), str(run / "config.json"), "--checkpoint", "best"])
    assert code == 2 and "has no best.safetensors yet" in err and "use --checkpoint latest" in err


def test_gradflow_old_checkpoint_usage_points_at_the_new_one(trained):
    code, _, err = run_cli(["gradflow", "--checkpoint", str(trained)])
    assert code == 2 and "is a directory" in err and "give a run directory as DIR" in err
    code, _, err = run_cli(["gradflow", "--checkpoint", "latest"])
    assert code == 2 and "give the directory first" in err
