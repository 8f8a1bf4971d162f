"""The language-model command line: training, resume, generation, evaluation (bad input: test_cli_errors.py)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.files import read_tensors
from rnnkit.lm.data import Vocab, suggest_prime
from test_cli_errors import TINY, run_cli, trained  # noqa: F401 (trained: a fixture used here)

PHRASE = "the quick brown fox jumps over the lazy dog.\n"
SMALL = ["--hidden", "24", "--embed", "8", "--layers", "1", "--batch-size", "4", "--seq-len", "16",
         "--sample-chars", "20", "--time-budget", "60"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(PHRASE * 120, encoding="utf-8")
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def train_losses(run: Path) -> list[float]:
    return [m["loss"] for m in metrics(run) if "loss" in m]


def test_repeated_phrase_is_memorised(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    rc = main(["train", str(corpus), *SMALL, "--max-steps", "400", "--lr", "0.01",
               "--eval-every", "200", "--out", str(run)])
    out = capsys.readouterr().out
    assert rc == 0
    assert train_losses(run)[-1] < 0.05                     # nats per character
    assert "validation:" in out and "unigram entropy" in out
    val = [m for m in metrics(run) if "val_bpc" in m][-1]
    assert val["val_bpc"] < 0.1
    for name in ("config.json", "vocab.json", "latest.safetensors", "best.safetensors"):
        assert (run / name).is_file()
    capsys.readouterr()
    assert main(["eval", str(run), str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["chars"] == len(PHRASE) * 120 - 1 and result["unknown_chars"] == 0
    assert result["bits_per_char"] < 0.1 and result["perplexity"] == pytest.approx(2 ** result["bits_per_char"])
    assert main(["generate", str(run), "--prime", "the quick", "--length", "30", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("the quick brown fox jumps over the")


def test_resume_reproduces_an_uninterrupted_run(tmp_path, corpus):
    opts = [str(corpus), *SMALL, "--layers", "2", "--dropout", "0.2", "--eval-every", "7",
            "--schedule", "constant"]          # a cosine would change with --max-steps
    assert main(["train", *opts, "--max-steps", "30", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", *opts, "--max-steps", "13", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--resume", "--max-steps", "30", "--out", str(tmp_path / "b")]) == 0
    a, b = train_losses(tmp_path / "a"), train_losses(tmp_path / "b")
    assert len(a) == len(b) == 30
    assert a == b                                      # bit for bit, across the epoch boundary too
    assert [m["step"] for m in metrics(tmp_path / "b") if "loss" in m] == list(range(1, 31))


def test_resume_refuses_changed_architecture(tmp_path, corpus, capsys):
    run = str(tmp_path / "r")
    assert main(["train", str(corpus), *SMALL, "--max-steps", "2", "--out", run]) == 0
    assert main(["train", "--resume", "--hidden", "32", "--out", run]) == 2
    assert "these options differ from it: --hidden" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "holds no checkpoint to resume" in capsys.readouterr().err


def test_generation_is_deterministic_per_seed(tmp_path, corpus, capsys):
    run = str(tmp_path / "g")
    assert main(["train", str(corpus), *SMALL, "--max-steps", "20", "--out", run]) == 0
    texts = []
    for seed in (1, 1, 2):
        capsys.readouterr()
        assert main(["generate", run, "--prime", "the ", "--length", "80", "--seed", str(seed)]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] != texts[2]
    assert len(texts[0]) == len("the ") + 80 + 1


def test_chinese_text(tmp_path, capsys):
    path = tmp_path / "zh.txt"
    path.write_text("循环神经网络可以记住过去的信息。长短期记忆网络解决了梯度消失的问题。\n" * 60, encoding="utf-8")
    run = str(tmp_path / "zh")
    assert main(["train", str(path), *SMALL, "--max-steps", "60", "--lr", "0.01", "--out", run]) == 0
    capsys.readouterr()
    assert main(["generate", run, "--prime", "循环", "--length", "10", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("循环") and len(out.strip()) == 12


def test_unknown_characters_are_counted(tmp_path, corpus, capsys):
    run = str(tmp_path / "u")
    assert main(["train", str(corpus), *SMALL, "--max-steps", "5", "--out", run]) == 0
    other = tmp_path / "other.txt"
    other.write_text("the QUICK fox", encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", run, str(other), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["unknown_chars"] == 5 and result["chars"] == 12 and "bits_per_char_known" in result


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # the overflow is the point of the test
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, corpus, capsys):
    run = tmp_path / "nan"
    rc = main(["train", str(corpus), *SMALL, "--optimizer", "sgd", "--lr", "1e30", "--clip", "0",
               "--eval-every", "1", "--max-steps", "50", "--out", str(run)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "non-finite" in err or "became" in err
    assert "stopped. The last good checkpoint is" in err
    tensors, meta = read_tensors(run / "latest.safetensors")
    assert all(np.all(np.isfinite(v)) for v in tensors.values())
    assert meta["step"] < 50


def test_prime_with_unseen_characters(tmp_path, corpus, capsys):
    run = str(tmp_path / "p")
    assert main(["train", str(corpus), *SMALL, "--max-steps", "2", "--out", run]) == 0
    assert main(["generate", run, "--prime", "XYZ"]) == 2
    assert "never saw in training: 'XYZ'" in capsys.readouterr().err


def test_ctrl_c_saves_a_checkpoint(tmp_path, corpus):
    run = tmp_path / "int"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "train", str(corpus), *SMALL, "--time-budget", "120",
         "--eval-every", "100000", "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "metrics.jsonl").is_file() or not metrics(run):
        time.sleep(0.2)
        assert time.time() < deadline and proc.poll() is None
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err
    _, meta = read_tensors(run / "latest.safetensors")
    assert meta["step"] == max(m["step"] for m in metrics(run))


def test_cosine_schedule_fits_the_time_budget(tmp_path, corpus):
    run = tmp_path / "cos"
    assert main(["train", str(corpus), *SMALL, "--schedule", "cosine", "--lr", "0.01",
                 "--time-budget", "3", "--out", str(run)]) == 0
    steps = [m for m in metrics(run) if "lr" in m]
    _, meta = read_tensors(run / "latest.safetensors")
    assert meta["last_step"] > 20                                  # calibrated from the budget
    assert steps[0]["lr"] == pytest.approx(0.01)
    assert steps[-1]["lr"] < 0.5 * steps[0]["lr"]                  # decayed towards the end
    assert all(a["lr"] >= b["lr"] for a, b in zip(steps, steps[1:]))


def test_cosine_schedule_with_max_steps_resumes_exactly(tmp_path, corpus):
    """An interruption at step 9 (simulated at the Trainer level) changes nothing."""
    from rnnkit.lm.config import TrainConfig
    from rnnkit.lm.train import Trainer

    def cfg(out):
        return TrainConfig(paths=(str(corpus),), hidden=24, embed=8, layers=2, dropout=0.1, batch_size=4,
                           seq_len=16, schedule="cosine", warmup=3, max_steps=16, out=str(out))

    quiet = lambda msg: None  # noqa: E731
    straight = Trainer(cfg(tmp_path / "a"), log=quiet)
    losses_a = [straight.train_step().loss for _ in range(16)]
    first = Trainer(cfg(tmp_path / "b"), log=quiet)
    losses_b = [first.train_step().loss for _ in range(9)]
    first.save()
    resumed = Trainer(cfg(tmp_path / "b"), resume=True, log=quiet)
    losses_b += [resumed.train_step().loss for _ in range(7)]
    assert losses_a == losses_b
    lr = straight.cfg.lr
    lrs = [lr * straight.schedule.factor(s) for s in range(16)]
    assert lrs[0] == pytest.approx(lr / 3) and lrs[2] == pytest.approx(lr)
    assert lrs[-1] == pytest.approx(lr * 0.05, rel=0.3)
    assert resumed.optimizer.lr == pytest.approx(lrs[-1])


def test_threads_size_numbas_pool_before_it_starts(tmp_path, corpus):
    code = ("import sys; from rnnkit.cli import main\n"
            f"rc = main(['train', {str(corpus)!r}, '--threads', '1', '--max-steps', '1', '--hidden', '8', "
            f"'--batch-size', '2', '--sample-chars', '0', '--out', {str(tmp_path / 'r')!r}])\n"
            "import numba; print(rc, numba.config.NUMBA_NUM_THREADS)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.stdout.splitlines()[-1] == "0 1", proc.stderr


def test_each_metric_is_on_disk_as_soon_as_it_is_written(tmp_path, corpus, monkeypatch):
    from rnnkit.lm.train import Trainer
    run, seen = tmp_path / "r", []
    step = Trainer.train_step

    def train_step(self, *args, **kwargs):          # what a crash at this step would leave
        seen.append([json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()])
        return step(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "train_step", train_step)
    assert main(["train", str(corpus), *SMALL, "--max-steps", "3", "--eval-every", "2", "--out", str(run)]) == 0
    assert seen == [[], [1], [1, 2, 2]]


# -- generation's output and the closing hint of rnnkit train -------------------------------------

def test_text_the_console_cannot_encode_is_escaped(tmp_path):
    zh = tmp_path / "zh.txt"
    zh.write_text("循环神经网络可以记住过去的信息。\n" * 40, encoding="utf-8")
    code, _, err = run_cli(["train", str(zh), *TINY, "--max-steps", "2", "--out", str(tmp_path / "zh")])
    assert code == 0, err
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli", "generate", str(tmp_path / "zh"), "--prime", "循环",
                           "--length", "3"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("\\u5faa\\u73af")


def test_train_hint_primes_with_the_runs_own_validation_text(trained, tmp_path, monkeypatch):
    run, _, out = trained
    hint = out.strip().splitlines()[-1]
    command = hint[hint.index("try: ") + len("try: "):]
    assert command == f"rnnkit generate {run} --prime 'the quick brown '"
    argv = shlex.split(command)
    monkeypatch.chdir(tmp_path)
    code, generated, err = run_cli([*argv[1:], "--length", "3", "--seed", "0"])
    assert code == 0, err
    assert generated.startswith("the quick brown ")


@pytest.mark.parametrize("text,starts_line,expected", [
    ("ick brown fox\n    def main(argv):\n", False, "def main(argv):"),  # first whole line, unindented
    ("jumps over the lazy dog\n", True, "jumps over the "),               # cut after a space
    ("\x1b[31mred\n\u202egnp.exe\nplain", True, "plain"),                 # escapes, bidi controls: no
    ("日本語\n循环神经网络可以记住过去的信息。长短期记忆\n", False, "循环神经网络可以记住过去的信息。"),
    ("\n\n\t\n", True, ""),
    ("-x = 1\n", True, "-x = 1"),
])
def test_suggest_prime(text, starts_line, expected):
    vocab = Vocab.from_text(text.replace("\x1b", "").replace("\u202e", ""))
    assert suggest_prime(text, vocab, starts_line) == expected


def test_generate_command_quotes_for_the_shell():
    from rnnkit.lm.run import generate_command
    assert generate_command("runs/my run", "it's") == "rnnkit generate 'runs/my run' --prime 'it'\"'\"'s'"
    assert generate_command("r", "-x = 1") == "rnnkit generate r --prime='-x = 1'"
    assert generate_command("r", "") == "rnnkit generate r"
    assert shlex.split(generate_command("r", "-x = 1"))[-1] == "--prime=-x = 1"
