"""A trained model is never lost: a run directory is not replaced by accident, has one writer at a
time, and a write that fails (a full disk, a read-only directory) is a clean error that leaves the
checkpoints as they were and no temporary file behind (rnnkit.lm.rundir, rnnkit.lm.runlock,
rnnkit.files).

Bad options and damaged run directories are in test_cli_errors.py; this file is about what happens
to a run directory that a second command, a second process, a killed process or a full disk meets.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnkit.errors import EXIT_USAGE, EXIT_WRITE
from rnnkit.lm.rundir import STAGING_PREFIX
from rnnkit.lm.runlock import LOCK_FILE, holder
from test_cli_errors import TINY, assert_clean_error, run_cli, snapshot, trained  # noqa: F401 (a fixture)


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A fresh copy of test_cli_errors' tiny trained run (LSTM, 20 steps, validations at 10 and 20)."""
    shutil.copytree(trained[0], tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def corpus(trained) -> Path:
    return trained[1]


def rnnkit(*argv: str, **kwargs) -> subprocess.Popen:
    """``rnnkit ARGV`` in a process of its own."""
    return subprocess.Popen([sys.executable, "-m", "rnnkit.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finished(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def leftovers(directory: Path) -> list[str]:
    """Temporary files and staging directories anywhere under ``directory``."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob(".*")
                  if p.name.endswith(".tmp") or p.name.startswith(STAGING_PREFIX))


def steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"loss"' in line]


def last_step(run: Path) -> int:
    """The last step metrics.jsonl records, read while a run appends to it (a line may be half there)."""
    path = run / "metrics.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.is_file() else []    # complete lines only
    return max((json.loads(line)["step"] for line in lines if '"loss"' in line), default=0)


def stop(proc: subprocess.Popen) -> None:
    """SIGSTOP, and return once the process is stopped (the signal is delivered asynchronously)."""
    os.kill(proc.pid, signal.SIGSTOP)
    stat = Path(f"/proc/{proc.pid}/stat")
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in "Tt":
        time.sleep(0.001)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


# -- a run directory that holds a run -------------------------------------------------------------

def test_training_into_a_run_is_refused_and_changes_nothing(run, corpus):
    before = snapshot(run.parent)
    mtimes = {p: p.stat().st_mtime_ns for p in run.iterdir()}
    last_val = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if "val_bpc" in ln][-1]
    proc = rnnkit("train", str(corpus), *TINY, "--max-steps", "5", "--out", str(run))
    code, out, err = finished(proc)
    assert_clean_error(code, err, (f"--out {run} already holds a run", "latest.safetensors at step 20",
                                   f"validation {last_val['val_bpc']:.3f} bits/char at step 20",
                                   "--resume", "--overwrite", "once the new run has saved its first checkpoint"))
    assert code == EXIT_USAGE and out == ""
    assert snapshot(run.parent) == before                       # every file, byte for byte
    assert {p: p.stat().st_mtime_ns for p in run.iterdir()} == mtimes


def test_overwrite_starts_again_as_a_fresh_run_would(run, corpus, tmp_path):
    (run / "training.html").write_text("the old run's curves")
    code, _, err = run_cli(["train", str(corpus), *TINY, "--max-steps", "5", "--out", str(run), "--overwrite"])
    assert code == 0, err
    assert f"--overwrite: replaced the run that was in {run} (latest.safetensors at step 20, validation" in err
    code, _, err = run_cli(["train", str(corpus), *TINY, "--max-steps", "5", "--out", str(tmp_path / "alone")])
    assert code == 0, err
    for name in ("metrics.jsonl", "vocab.json", "best.safetensors"):
        assert (run / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name
    configs = [json.loads((d / "config.json").read_text()) for d in (run, tmp_path / "alone")]
    assert [c["train"].pop("out") for c in configs] == [str(run), str(tmp_path / "alone")]
    assert configs[0] == configs[1]
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (tmp_path / "alone").iterdir())
    assert not (run / "training.html").exists() and not (run / LOCK_FILE).exists() and leftovers(run) == []


def test_resume_is_accepted_and_continues(run):
    code, _, err = run_cli(["train", "--resume", "--max-steps", "25", "--out", str(run)])
    assert code == 0, err
    assert steps(run) == list(range(1, 26)) and leftovers(run) == []


def test_a_run_that_fails_before_its_first_file_leaves_nothing(tmp_path):
    code, _, err = run_cli(["train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "a" / "b")])
    assert code == EXIT_USAGE and "missing.txt" in err
    assert sorted(tmp_path.iterdir()) == []                     # no directory, no lock file


# -- one writer at a time -------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_the_first_run_is_as_if_alone(corpus, tmp_path):
    first, alone = tmp_path / "first", tmp_path / "alone"
    argv = ["train", str(corpus), *TINY, "--max-steps", "150"]
    proc = rnnkit(*argv, "--out", str(first))
    wait_for(lambda: holder(first) is not None and (first / "latest.safetensors").is_file(), proc,
             "lock and first checkpoint")
    stop(proc)                                      # the first run holds the lock, mid-run, for certain
    try:
        for extra in ([], ["--resume"], ["--overwrite"]):
            code, _, err = run_cli([*(argv if extra != ["--resume"] else ["train"]), "--out", str(first), *extra])
            assert_clean_error(code, err, (f"{first} is being written by another 'rnnkit train'",
                                           f"process {proc.pid} on", "choose another --out"))
        # readers work on the last complete checkpoint meanwhile
        for reader in (["generate", str(first), "--prime", "the ", "--length", "5", "--seed", "0"],
                       ["eval", str(first), str(corpus), "--json"],
                       ["inspect", str(first), "--out", str(tmp_path / "page.html")],
                       ["export", str(first), str(tmp_path / "m.onnx")]):
            code, _, err = run_cli(reader)
            assert code == 0 and "error" not in err, (reader, err)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    code, _, err = finished(proc)
    assert code == 0, err
    assert run_cli([*argv, "--out", str(alone)])[0] == 0
    assert (first / "metrics.jsonl").read_bytes() == (alone / "metrics.jsonl").read_bytes()
    assert (first / "best.safetensors").read_bytes() == (alone / "best.safetensors").read_bytes()
    assert not (first / LOCK_FILE).exists()


def test_a_killed_run_leaves_no_lock(corpus, tmp_path):
    run = tmp_path / "run"
    proc = rnnkit("train", str(corpus), *TINY, "--max-steps", "100000", "--out", str(run))
    wait_for(lambda: last_step(run) >= 12, proc, "12 steps")
    proc.kill()                                                 # kill -9: no chance to clean up
    proc.wait(timeout=60)
    assert (run / LOCK_FILE).is_file() and holder(run) is None  # the file is there, the lock is not
    (run / ".latest.safetensors.x1y2z3.tmp").write_bytes(b"half a checkpoint")  # what a kill can leave
    (run / f"{STAGING_PREFIX}abc").mkdir()
    code, _, err = run_cli(["train", "--resume", "--max-steps", "30", "--out", str(run)])
    assert code == 0, err
    assert steps(run) == list(range(1, 31)) and leftovers(run) == []


# -- a full disk and a read-only directory --------------------------------------------------------

def assert_write_failed(code: int, err: str, *fragments: str) -> None:
    assert code == EXIT_WRITE, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith("rnnkit train: error: cannot write "), err
    missing = [f for f in fragments if f not in errors[0]]
    assert not missing, f"{missing} not in: {errors[0]}"


def limited(*argv: str, limit: int) -> subprocess.Popen:
    """``rnnkit ARGV`` whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so a write past it fails with EFBIG, 'file too large'). On the NumPy backend, so that
    no compile cache is written under the limit."""
    return rnnkit(*argv, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
                  env={**os.environ, "RNNKIT_ENGINE": "0"})


def test_a_file_size_limit_mid_run_is_a_clean_error(run):
    """The checkpoint of step 30 cannot be written: latest.safetensors stays at step 20, byte for byte."""
    latest = (run / "latest.safetensors").read_bytes()
    limit = (len(latest) + (run / "best.safetensors").stat().st_size) // 2      # best fits, latest does not
    proc = limited("train", "--resume", "--max-steps", "40", "--out", str(run), limit=limit)
    code, _, err = finished(proc)
    assert_write_failed(code, err, f"{run / 'latest.safetensors'}", "file too large",
                        "latest.safetensors at step 20 is unchanged",
                        f"continue the run with 'rnnkit train --resume --out {run}'")
    assert (run / "latest.safetensors").read_bytes() == latest and leftovers(run) == []
    assert not (run / LOCK_FILE).exists()
    code, _, err = run_cli(["train", "--resume", "--max-steps", "40", "--out", str(run)])     # as it says
    assert code == 0, err
    assert steps(run) == list(range(1, 41))


def test_overwrite_that_cannot_write_its_first_checkpoint_keeps_the_old_run(run, corpus):
    before = snapshot(run.parent)
    limit = (run / "latest.safetensors").stat().st_size // 2
    proc = limited("train", str(corpus), *TINY, "--max-steps", "5", "--out", str(run), "--overwrite", limit=limit)
    code, _, err = finished(proc)
    assert_write_failed(code, err, f"cannot write {run / 'latest.safetensors'}: file too large",
                        f"the new run did not start, and {run} is as it was (latest.safetensors at step 20")
    assert snapshot(run.parent) == before


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (root only), unmounted after."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"mount failed as root: {done.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root; the file size "
                               "limit above fills a file system the same way without it")


@root_only
def test_a_file_system_that_fills_up_is_a_clean_error(run, tmp_path):
    latest = (run / "latest.safetensors").read_bytes()
    used = sum(p.stat().st_size for p in run.iterdir())
    with tmpfs(tmp_path / "disk", f"{(used + len(latest) // 2) // 4096 * 4096 + 8192}") as disk:
        shutil.copytree(run, disk / "run")
        code, _, err = run_cli(["train", "--resume", "--max-steps", "40", "--out", str(disk / "run")])
        assert_write_failed(code, err, "no space left on device", "at step 20 is unchanged")
        assert (disk / "run" / "latest.safetensors").read_bytes() == latest and leftovers(disk) == []
        code, out, err = run_cli(["generate", str(disk / "run"), "--prime", "the", "--length", "3"])
        assert code == 0 and out.startswith("the"), err
        remount(disk, "size=4m")                                # space freed: the run goes on
        code, _, err = run_cli(["train", "--resume", "--max-steps", "40", "--out", str(disk / "run")])
        assert code == 0, err
        assert steps(disk / "run") == list(range(1, 41))


def read_only(directory: Path):
    """Make ``directory`` read-only: a read-only tmpfs as root (whom permissions do not stop), else
    its permissions."""
    if os.geteuid() == 0:
        return _read_only_mount(directory)
    return _read_only_mode(directory)


@contextlib.contextmanager
def _read_only_mount(directory: Path):
    with tmpfs(directory.parent / "ro", "4m") as disk:
        shutil.copytree(directory, disk / directory.name)
        remount(disk, "ro")
        yield disk / directory.name


@contextlib.contextmanager
def _read_only_mode(directory: Path):
    directory.chmod(0o555)
    try:
        yield directory
    finally:
        directory.chmod(0o755)


@pytest.mark.parametrize("extra", [["--resume"], ["--overwrite"]])
def test_a_read_only_run_directory_is_refused_before_any_work(run, corpus, extra):
    with read_only(run) as ro:
        before = snapshot(ro)
        argv = ["train", *([] if extra == ["--resume"] else [str(corpus), *TINY]), "--out", str(ro), *extra]
        code, _, err = run_cli(argv)
        assert_clean_error(code, err, ("--out", str(ro), "read-only file system" if os.geteuid() == 0
                                       else "no permission to write"))
        assert snapshot(ro) == before
        code, out, err = run_cli(["eval", str(ro), str(corpus), "--json"])        # readers need no lock
        assert code == 0 and json.loads(out)["step"] in (10, 20), err


@contextlib.contextmanager
def unwritable(directory: Path):
    """No file can be made or renamed in ``directory``: its mode 0555, or as root (whom modes do not
    stop) the immutable attribute."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield "permission denied"
        finally:
            directory.chmod(0o755)
        return
    done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system has no immutable attribute: {done.stderr.strip()}")
    try:
        yield "operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_a_directory_that_becomes_unwritable_mid_run_is_a_clean_error(run):
    proc = rnnkit("train", "--resume", "--max-steps", "100000", "--out", str(run))
    wait_for(lambda: last_step(run) >= 23, proc, "step 23")
    stop(proc)
    with contextlib.ExitStack() as stack:
        try:
            latest = (run / "latest.safetensors").read_bytes()
            said = stack.enter_context(unwritable(run))
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        code, _, err = finished(proc)
        assert_write_failed(code, err, said, "is unchanged", f"'rnnkit train --resume --out {run}'")
        assert (run / "latest.safetensors").read_bytes() == latest
    code, _, err = run_cli(["train", "--resume", "--max-steps", "45", "--out", str(run)])
    assert code == 0, err
    assert steps(run) == list(range(1, 46)) and leftovers(run) == []


def test_a_run_directory_that_vanishes_is_a_clean_error(corpus, tmp_path):
    from rnnkit.errors import WriteFailed
    from rnnkit.lm.config import TrainConfig
    from rnnkit.lm.train import Trainer
    cfg = TrainConfig(paths=(str(corpus),), hidden=8, embed=4, layers=1, batch_size=2, seq_len=8,
                      max_steps=2, out=str(tmp_path / "gone"))
    trainer = Trainer(cfg, log=lambda msg: None)
    shutil.rmtree(tmp_path / "gone")
    with pytest.raises(WriteFailed, match=re.escape(f"{tmp_path / 'gone'} has vanished")):
        trainer.save()
    assert not (tmp_path / "gone").exists()                     # not made again, holding one checkpoint


# -- files named on the command line: replaced, as cp does, and said -----------------------------

def test_export_replaces_an_explicit_file_and_says_so(run, tmp_path):
    onnx = tmp_path / "m.onnx"
    code, out, err = run_cli(["export", str(run), str(onnx)])
    assert code == 0 and "replaced" not in out, err
    onnx.write_bytes(b"an older export")
    code, out, err = run_cli(["export", str(run), str(onnx)])
    assert code == 0 and out.rstrip().endswith("(it replaced the file that was there)"), err
    assert onnx.read_bytes()[:15] != b"an older export" and leftovers(tmp_path) == []


def test_save_replaces_an_explicit_file_and_says_so(tmp_path):
    series = tmp_path / "series.txt"
    series.write_text("\n".join(f"{100 + t + 10 * math.sin(t / 2):.4f}" for t in range(60)))
    model = tmp_path / "f.safetensors"
    argv = ["forecast", str(series), "--horizon", "3", "--future", "--hidden", "4", "--epochs", "2", "--quiet",
            "--save", str(model)]
    code, out, err = run_cli(argv)
    assert code == 0 and out.rstrip().endswith(f"model written to {model}"), err
    model.write_bytes(b"an older model")
    code, out, err = run_cli(argv)
    assert code == 0 and out.rstrip().endswith(f"model written to {model} (it replaced the file that was there)"), err
    assert model.read_bytes()[:14] != b"an older model" and leftovers(tmp_path) == []
