"""Data-parallel training under ``mpiexec -n 2`` (the test extra installs mpi4py and MPICH's
mpiexec): the same losses as one process, exact resume, signals and failures on one rank, the
replicas' check, the public API, and single-process life without mpi4py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit import distributed
from rnnkit.cli import main
from rnnkit.files import read_tensors

HERE = Path(__file__).parent
PHRASE = "the quick brown fox jumps over the lazy dog.\n"
# A 2-layer LSTM with dropout in both places (between the layers and before the head), so the
# sharded dropout draws and the (h, c) carried state are compared too; 30 steps cross the end of
# the text (19 chunks per pass) and validate and checkpoint every 7 steps.
TINY = ["--cell", "lstm", "--hidden", "24", "--embed", "8", "--layers", "2", "--dropout", "0.2",
        "--batch-size", "4", "--seq-len", "16", "--sample-chars", "20", "--schedule", "constant",
        "--eval-every", "7", "--time-budget", "60"]
# A run that goes on until it is stopped.
ENDLESS = ["--hidden", "24", "--embed", "8", "--layers", "1", "--batch-size", "4", "--seq-len", "16",
           "--sample-chars", "0", "--time-budget", "120", "--eval-every", "100000"]


def mpiexec() -> str:
    """MPICH's mpiexec from this environment (the test extra installs it): never skipped."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail('mpiexec not found: install the test extra, pip install ".[test]" (it brings mpich and mpi4py)')
    return found


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES + ("RNNKIT_MPI",)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(n: int, *args: str) -> list[str]:
    return [mpiexec(), "-n", str(n), sys.executable, *args]


def train_command(n: int, *args: str) -> list[str]:
    return command(n, "-m", "rnnkit.cli", "train", *args)


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env())


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def losses(run_dir: Path) -> list[float]:
    return [m["loss"] for m in metrics(run_dir) if "loss" in m]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(PHRASE * 30, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus) -> dict:
    """One process, 2 ranks, and 2 ranks stopped at step 13 then resumed by 2 ranks and by 1."""
    root = tmp_path_factory.mktemp("runs")
    d = {name: root / name for name in ("one", "two", "resumed_two", "resumed_one")}
    assert main(["train", str(corpus), *TINY, "--max-steps", "30", "--out", str(d["one"])]) == 0
    d["two_process"] = run(train_command(2, str(corpus), *TINY, "--max-steps", "30", "--out", str(d["two"])))
    first = run(train_command(2, str(corpus), *TINY, "--max-steps", "13", "--out", str(d["resumed_two"])))
    assert first.returncode == 0, first.stderr
    shutil.copytree(d["resumed_two"], d["resumed_one"])
    d["resume_process"] = run(train_command(2, "--resume", "--max-steps", "30", "--out", str(d["resumed_two"])))
    assert main(["train", "--resume", "--max-steps", "30", "--out", str(d["resumed_one"])]) == 0
    return d


def test_two_ranks_give_the_single_process_losses(runs):
    proc = runs["two_process"]
    assert proc.returncode == 0, proc.stderr
    one, two = losses(runs["one"]), losses(runs["two"])
    assert len(one) == len(two) == 30
    np.testing.assert_allclose(two, one, rtol=1e-4)               # float32 summation order only
    assert one[-1] < 0.9 * one[0]                                  # and it learns
    val_one = [m["val_bpc"] for m in metrics(runs["one"]) if "val_bpc" in m]
    val_two = [m["val_bpc"] for m in metrics(runs["two"]) if "val_bpc" in m]
    assert len(val_two) == 5 and np.allclose(val_two, val_one, rtol=1e-4)
    # Rank 0 alone writes and speaks: one line per step and per validation, one report.
    assert [m["step"] for m in metrics(runs["two"]) if "loss" in m] == list(range(1, 31))
    assert proc.stderr.count("data parallel: 2 processes") == 1
    assert proc.stdout.count("validation:") == 1 and proc.stdout.count("--- sample ---") == 1
    _, meta = read_tensors(runs["two"] / "latest.safetensors")
    tensors, _ = read_tensors(runs["two"] / "latest.safetensors")
    assert meta["step"] == 30 and tensors["carry.0"].shape == (2, 4, 24)    # every stream's state


def test_resume_under_mpi_is_exact(runs):
    assert runs["resume_process"].returncode == 0, runs["resume_process"].stderr
    assert "resumed" in runs["resume_process"].stderr
    two, resumed = losses(runs["two"]), losses(runs["resumed_two"])
    assert resumed == two                                          # bit for bit, across the pass end
    # A 2-rank checkpoint resumed by one process: the same run up to the summation order.
    np.testing.assert_allclose(losses(runs["resumed_one"]), two, rtol=1e-4)
    assert [m["step"] for m in metrics(runs["resumed_one"]) if "loss" in m] == list(range(1, 31))


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "3"], "error: the --batch-size of 3 cannot be split evenly among 2 MPI processes"),
    (["--hidden", "0"], "error: argument --hidden: must be an integer >= 1"),    # argparse's
])
def test_errors_are_reported_once(corpus, tmp_path, args, message):
    proc = run(train_command(2, str(corpus), *TINY, *args, "--out", str(tmp_path / "r")))
    assert proc.returncode == 2
    assert proc.stderr.count(message) == 1 and proc.stderr.count("usage:") <= 1


def start(cmd: list[str], run_dir: Path) -> subprocess.Popen:
    """Start a training job and return once it has taken a few steps."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    deadline = time.time() + 90
    while len(metrics(run_dir)) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the job took no step in 90 s"
        time.sleep(0.1)
    return proc


def rank_pid(run_dir: Path, rank: int) -> int:
    """The process of one rank (its environment says PMI_RANK, its command line names run_dir)."""
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_dir).encode() in cmdline and f"PMI_RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no process of rank {rank} for {run_dir}")


def test_sigterm_on_one_rank_stops_every_rank_with_a_checkpoint(corpus, tmp_path):
    run_dir = tmp_path / "term"
    proc = start(train_command(2, str(corpus), *ENDLESS, "--threads", "1", "--out", str(run_dir)), run_dir)
    os.kill(rank_pid(run_dir, 1), signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.count("interrupted at step") == 1 and "(SIGTERM)" in err
    steps = [m["step"] for m in metrics(run_dir) if "loss" in m]
    _, meta = read_tensors(run_dir / "latest.safetensors")
    assert meta["step"] == steps[-1] > 3                         # every rank stopped at that step


def test_rank_0_holds_the_run_directorys_lock(corpus, tmp_path):
    from rnnkit.lm.runlock import LOCK_FILE, holder
    run_dir = tmp_path / "locked"
    proc = start(train_command(2, str(corpus), *ENDLESS, "--threads", "1", "--out", str(run_dir)), run_dir)
    root = rank_pid(run_dir, 0)
    assert holder(run_dir).startswith(f"process {root} on ")
    second = run(train_command(2, "--resume", "--out", str(run_dir)))       # another job on the same run
    assert second.returncode == 2, second.stderr
    assert second.stderr.count(f"is being written by another 'rnnkit train' (process {root} on") == 1
    os.kill(root, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not (run_dir / LOCK_FILE).exists()


def test_a_killed_rank_ends_the_job(corpus, tmp_path):
    run_dir = tmp_path / "kill"
    proc = start(train_command(2, str(corpus), *ENDLESS, "--out", str(run_dir)), run_dir)
    os.kill(rank_pid(run_dir, 1), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)                        # rank 0 must not wait forever
    assert proc.returncode != 0
    assert "BAD TERMINATION" in out + err and "Killed" in out + err    # the launcher's message
    tensors, meta = read_tensors(run_dir / "latest.safetensors")  # the last checkpoint is intact
    assert meta["step"] == 0 and all(np.isfinite(a).all() for a in tensors.values())


def test_the_replica_check_fires_when_a_rank_drifts(corpus, tmp_path):
    from rnnkit.lm.loop import SYNC_CHECK_EVERY
    run_dir = tmp_path / "drift"
    proc = run(command(2, str(HERE / "mpi_scripts.py"), "drift", str(corpus), *ENDLESS,
                       "--max-steps", str(SYNC_CHECK_EVERY + 20), "--out", str(run_dir)))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("the model's replicas have drifted apart") == 1
    assert "on MPI rank(s) 1 differ from rank 0's" in proc.stderr
    assert max(m["step"] for m in metrics(run_dir)) == SYNC_CHECK_EVERY   # the first check caught it


def test_a_failure_on_one_rank_aborts_the_job(corpus, tmp_path):
    run_dir = tmp_path / "crash"
    proc = run(command(2, str(HERE / "mpi_scripts.py"), "crash", str(corpus), *ENDLESS, "--out", str(run_dir)),
               timeout=90)
    assert proc.returncode != 0
    assert "error on MPI rank 1 of 2: simulated failure of rank 1 alone; aborting every rank" in proc.stderr


def test_the_api_in_a_hand_written_loop():
    proc = run(command(2, str(HERE / "mpi_scripts.py"), "api"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("gradient relative error") == 2


@pytest.fixture
def launched_without_mpi4py(monkeypatch):
    """This process looks started by mpiexec -n 2, and mpi4py cannot be imported."""
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    distributed.world.cache_clear()
    yield monkeypatch
    distributed.world.cache_clear()


def test_mpi_without_mpi4py_says_what_to_install(launched_without_mpi4py, corpus, tmp_path, capsys):
    launched_without_mpi4py.setenv("PMI_RANK", "0")
    assert main(["train", str(corpus), *TINY, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "rnnkit train: error: this process was started for MPI (PMI_SIZE=2)" in err
    assert 'pip install "rnnkit[mpi]"' in err
    launched_without_mpi4py.setenv("PMI_RANK", "1")                # the other ranks: the code, quietly
    assert main(["train", str(corpus), *TINY, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "r").exists()


def test_single_process_training_needs_no_mpi4py(corpus, tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None\n"            # as if it were not installed
            "import rnnkit, rnnkit.distributed as d\n"
            "from rnnkit.cli import main\n"
            "assert d.world().size == 1\n"
            f"sys.exit(main(['train', {str(corpus)!r}, '--max-steps', '3', '--hidden', '8', "
            f"'--batch-size', '2', '--out', {str(tmp_path / 'r')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert [m["step"] for m in metrics(tmp_path / "r") if "loss" in m] == [1, 2, 3]


def test_sharded_random_draws_are_the_single_process_draws():
    for make in (np.random.PCG64, np.random.MT19937):            # with and without skipping ahead
        whole = np.random.Generator(make(3)).random((5, 6, 4))
        gens = [np.random.Generator(make(3)) for _ in range(3)]
        parts = [distributed.ShardedRandom(g, slice(2 * r, 2 * r + 2), 6).random((5, 2, 4))
                 for r, g in enumerate(gens)]
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
        assert len({g.random() for g in gens}) == 1              # every rank's generator in step
        with pytest.raises(ValueError, match=r"needs \(T, 2, \.\.\.\)"):
            distributed.ShardedRandom(gens[0], slice(0, 2), 6).random((5, 3, 4))


def test_sharded_masks_are_the_single_process_masks():
    """Recurrent dropout's (B, H) and zoneout's (T, B, n) masks: each rank's share of the whole
    batch's, every generator left in step."""
    from rnnkit.inner_dropout import InnerDropout
    noise = InnerDropout(recurrent_dropout=0.3, zoneout=0.2)
    whole = noise.draw(True, np.random.default_rng(5), 7, 6, (4, 3), np.float64)
    gens = [np.random.default_rng(5) for _ in range(3)]
    parts = [noise.draw(True, distributed.ShardedRandom(g, slice(2 * r, 2 * r + 2), 6), 7, 2, (4, 3), np.float64)
             for r, g in enumerate(gens)]
    np.testing.assert_array_equal(np.concatenate([m.recurrent for m in parts], axis=0), whole.recurrent)
    for k in range(2):
        np.testing.assert_array_equal(np.concatenate([m.keep[k] for m in parts], axis=1), whole.keep[k])
    assert len({g.random() for g in gens}) == 1
    assert 0 < whole.keep[0].mean() < 1 and set(np.unique(whole.recurrent)) == {0.0, 1 / 0.7}


def test_inner_dropout_under_two_ranks_gives_the_single_process_losses(corpus, tmp_path):
    args = [str(corpus), *TINY, "--recurrent-dropout", "0.25", "--zoneout", "0.1", "--max-steps", "8"]
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    proc = run(train_command(2, *args, "--out", str(tmp_path / "two")))
    assert proc.returncode == 0, proc.stderr
    one = losses(tmp_path / "one")
    assert len(one) == 8
    np.testing.assert_allclose(losses(tmp_path / "two"), one, rtol=1e-4)


def test_a_drift_found_by_the_first_save_is_the_commands_error(corpus, tmp_path, monkeypatch, capsys):
    def drifted(self, arrays, what="parameters"):
        raise distributed.ReplicaDrift(f"the model's replicas have drifted apart: the {what} differ")
    monkeypatch.setattr(distributed.World, "check_replicas", drifted)     # found at the step-0 save
    assert main(["train", str(corpus), *TINY, "--max-steps", "1", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "rnnkit train: error: the model's replicas have drifted apart: the parameters and optimizer state" in err
    assert "Traceback" not in err


class _Rank1Of2:
    """A stand-in for rank 1 of a 2-process world whose MPI_Abort records its code."""
    size, rank, root = 2, 1, False

    def __init__(self) -> None:
        self.aborted_with = None

    def abort(self, code: int) -> None:
        self.aborted_with = code

    def raised_together(self, error: BaseException) -> bool:
        return False                                   # this rank failed alone


@pytest.mark.parametrize("error, code, said", [(KeyboardInterrupt(), 130, "interrupted"),
                                               (distributed.UserError("bad"), 2, "bad"),
                                               (ZeroDivisionError("bug"), 1, "bug")])
def test_a_rank_failing_alone_aborts_with_the_command_lines_exit_code(error, code, said, capsys):
    def fail():
        raise error
    w = _Rank1Of2()
    with pytest.raises(type(error)):                   # MPI_Abort would have ended the process
        distributed.exit_together(w, fail, "train")
    assert w.aborted_with == code
    assert f"error on MPI rank 1 of 2: {said}; aborting every rank" in capsys.readouterr().err


def test_the_replicas_are_hashed_once_per_step_that_also_validates(corpus, tmp_path, monkeypatch):
    from rnnkit.lm import loop
    checked = []
    monkeypatch.setattr(loop, "SYNC_CHECK_EVERY", 3)
    monkeypatch.setattr(distributed.World, "check_replicas", lambda self, arrays, what="": checked.append(what))
    argv = ["train", str(corpus), *TINY, "--eval-every", "2", "--max-steps", "8", "--out", str(tmp_path / "r")]
    assert main(argv) == 0                    # (the last --eval-every counts)
    # the checkpoints of steps 0, 2, 4, 6, 8 and the sync check of step 3, once each: step 6 is
    # both (7 if it were hashed twice, 5 if the check every 3 steps never ran)
    assert len(checked) == 6


def test_bpe_is_learnt_once_and_shared(corpus, tmp_path):
    """Rank 0 learns the BPE tokenizer and sends it: the 2-rank run's tokenizer and losses are the
    single process's."""
    args = [str(corpus), *TINY, "--tokens", "bpe", "--vocab-size", "300", "--max-steps", "8"]
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    proc = run(train_command(2, *args, "--out", str(tmp_path / "two")))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "two" / "tokenizer.json").read_bytes() == (tmp_path / "one" / "tokenizer.json").read_bytes()
    np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-4)
    assert len(losses(tmp_path / "two")) == 8


def test_a_rank_other_than_0_never_learns_bpe(monkeypatch):
    """Rank 1 takes rank 0's tokenizer from the broadcast and learns none of its own."""
    from rnnkit.lm import tokens as tokens_module
    from rnnkit.lm.config import TrainConfig
    from rnnkit.lm.text import learn_tokens
    sent = tokens_module.BpeTokens.from_text(PHRASE * 5, 300)

    class Rank1:
        size, root = 2, False

        def together(self, fn, *, root_only=False):
            assert root_only
            return sent.json, "full"                      # what rank 0's learn() returned

    def learns(*args, **kwargs):
        raise AssertionError("rank 1 learnt a tokenizer")
    monkeypatch.setattr(tokens_module.BpeTokens, "from_text", classmethod(learns))
    got, softmax = learn_tokens(TrainConfig(tokens="bpe", vocab_size=300), Rank1(), PHRASE * 5)
    assert got.json == sent.json and softmax == "full"
    assert got.encode(PHRASE)[0].tolist() == sent.encode(PHRASE)[0].tolist()
