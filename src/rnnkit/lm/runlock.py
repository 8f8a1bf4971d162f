"""One writer per run directory, and no trained run replaced by accident.

``rnnkit train`` claims its ``--out`` before any work (:func:`claim`), in this order:

1. another ``rnnkit train`` is writing it (its lock is held): refused (:class:`RunLocked`), naming
   that process, whatever the options;
2. it already holds a run and neither ``--resume`` nor ``--overwrite`` was given: refused
   (:class:`RunExists`), naming the run's step and validation figure and both options;
3. otherwise the lock is taken for the life of the run: an OS lock (``fcntl.flock``) on
   ``train.lock`` in the run directory. The kernel releases it when the process ends, however it
   ends (``kill -9`` included), so there is never a stale lock to remove by hand: the lock being
   held, not the file being there, says that a run is writing (a killed run leaves the file,
   unlocked). What it holds (process id, host, start time) is only for the message of a refused
   writer; the run removes it when it ends. Once the lock is held, the temporary files a killed
   writer left behind are removed.

A refusal changes nothing on the disk, and a run that fails before writing its first file (a
missing corpus) leaves no lock file and no directory behind. Readers (generate,
eval, inspect, export, plot) take no lock: every file of a run is replaced atomically, so they
read the last complete checkpoint while a run writes the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

from safetensors import SafetensorError, safe_open

from rnnkit.errors import Note, UserError
from rnnkit.files import cannot_write, damage, file_mode, stale_temporaries
from rnnkit.lm.tokens import TOKENIZER_FILE

try:
    import fcntl
except ImportError:                 # Windows: no flock; the run goes on unlocked (a Note says so)
    fcntl = None

LOCK_FILE = "train.lock"
STAGING_PREFIX = ".new-run."        # where a fresh run writes its first files (rnnkit.lm.train)
# The files that make a directory hold a run: any one of them, and --out needs --resume or --overwrite.
RUN_FILES = ("config.json", "vocab.json", "latest.safetensors", "best.safetensors", "metrics.jsonl")
# The files of a run that a fresh run (--overwrite) removes (the others it replaces): its checkpoints,
# a BPE run's tokenizer and the curves drawn by --plot or 'rnnkit plot'.
REPLACED_FILES = ("best.safetensors", "latest.safetensors", TOKENIZER_FILE, "training.png", "training.html")


class RunLocked(UserError):
    """Another ``rnnkit train`` holds the run directory's lock."""


class RunExists(UserError):
    """The run directory already holds a run, and neither --resume nor --overwrite was given."""


class RunLock:
    """The lock of one run directory, held from :func:`lock` until :meth:`release` (or the end of
    the process)."""

    def __init__(self, path: Path, fd: int | None, created: list[Path]) -> None:
        self.path, self.fd = path, fd
        self.created = created          # the directories lock() made, deepest first

    def release(self) -> None:
        """Remove the lock file and release the lock (in that order: see :func:`lock`); then remove
        the directories :func:`lock` made if nothing was written into them (a run that failed
        before its first file leaves no trace)."""
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:             # a directory that turned read-only: the file stays, unlocked
                pass
            os.close(self.fd)           # closing the descriptor releases the flock
            self.fd = None
        for directory in self.created:
            try:
                directory.rmdir()
            except OSError:             # not empty: it holds the run
                break


def holder(run: Path) -> str | None:
    """Who holds the lock of ``run`` ("process 1234 on host h, since 03:40:12 UTC"), or None if
    nobody does. Opens the lock file read-only and creates nothing."""
    path = run / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe_holder(fd)
    finally:
        os.close(fd)
    return None


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"process {info['pid']} on {info['host']}, since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):     # being written this very moment
        return "a process that is starting"


def lock(run: Path) -> RunLock:
    """Take the lock of ``run`` (creating the directory and its lock file if missing), or raise
    :class:`RunLocked` naming the holder.

    The holder removes the lock file before it releases the lock, so a process may lock a file
    that has just been unlinked; it then finds that the path is no longer that file and tries
    again on the new one."""
    created = []
    missing = run
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    path = run / LOCK_FILE
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(run, exc) from None
    while True:
        fd = _open_lock_file(path)
        if fcntl is None:
            os.close(fd)
            warnings.warn(f"this platform has no fcntl: {run} is not locked against a second writer", Note,
                          stacklevel=2)
            return RunLock(path, None, created)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _describe_holder(fd)
            os.close(fd)
            raise _locked(run, who) from None
        if _same_file(fd, path):
            break
        os.close(fd)                    # the holder removed it as we locked it: the new one
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    except OSError as exc:
        os.close(fd)
        raise cannot_write(path, exc) from None
    return RunLock(path, fd, created)


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, file_mode())   # never O_TRUNC: the holder's words
    except OSError as exc:
        raise cannot_write(path, exc) from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _locked(run: Path, who: str) -> RunLocked:
    return RunLocked(f"{run} is being written by another 'rnnkit train' ({who}); two writers would mix "
                     "their steps and checkpoints in one run: wait for it to end (generate, eval, inspect "
                     "and export can read the run meanwhile), or choose another --out")


def holds_run(run: Path) -> bool:
    return run.is_dir() and any((run / name).exists() for name in RUN_FILES)


def claim(run: Path, *, resume: bool, overwrite: bool) -> RunLock:
    """Refuse ``run`` as ``rnnkit train``'s --out (RunLocked, RunExists), or lock it for this run
    and remove what a killed writer left behind."""
    who = holder(run)
    if who is not None:
        raise _locked(run, who)
    if not (resume or overwrite) and holds_run(run):
        raise _exists(run)
    taken = lock(run)
    if not (resume or overwrite) and holds_run(run):     # a run written between the check and the lock
        taken.release()
        raise _exists(run)
    _remove_leftovers(run)
    return taken


def _exists(run: Path) -> RunExists:
    return RunExists(f"--out {run} already holds a run ({describe(run)}); continue it with --resume, or "
                     "start again with --overwrite (its files are replaced once the new run has saved its "
                     "first checkpoint), or choose another --out")


def _remove_leftovers(run: Path) -> None:
    """A killed writer's temporary files and unfinished staging directories (the lock is ours)."""
    for path in stale_temporaries(run):
        path.unlink(missing_ok=True)
    for path in run.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(path, ignore_errors=True)


def move_into_place(staging: Path, final: Path) -> str | None:
    """Move a fresh run's first files from its staging directory into the run directory (→ what
    the run that was there had reached, or None). The checkpoints of that run go first and
    latest.safetensors comes last, so that no moment pairs one run's checkpoint with the other's
    config.json (a crash in these milliseconds leaves no checkpoint at all, which every command
    reports as such)."""
    previous = describe(final) if holds_run(final) else None
    staged = sorted(staging.iterdir(), key=lambda p: p.name == "latest.safetensors")
    target = final
    try:
        for name in REPLACED_FILES:
            target = final / name
            target.unlink(missing_ok=True)
        for path in staged:
            target = final / path.name
            os.replace(path, target)
    except OSError as exc:
        raise cannot_write(target, exc) from None
    return previous


# -- what a run directory holds, in words -----------------------------------------------------------

def saved_step(path: Path) -> str:
    """"at step 40" for a checkpoint (its header alone), or what is wrong with it."""
    if not path.is_file():
        return "missing"
    try:
        problem = damage(path)
        if problem is not None:
            return problem
        with safe_open(str(path), framework="np") as f:
            step = json.loads((f.metadata() or {}).get("rnnkit", "{}")).get("step")
    except (OSError, SafetensorError, ValueError, AttributeError):
        return "is unreadable"
    return f"at step {step}" if isinstance(step, int) else "has no step in its metadata"


def last_validation(run: Path) -> str | None:
    """"validation 1.234 bits/char at step 200" from metrics.jsonl's last validation, or None."""
    found = None
    try:
        with open(run / "metrics.jsonl", encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"val_bpc"' in line:
                    found = line
        record = json.loads(found) if found else None
        return f"validation {record['val_bpc']:.3f} bits/char at step {record['step']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe(run: Path) -> str:
    """A run directory in a few words: "latest.safetensors at step 200, validation 1.234 bits/char
    at step 200"."""
    parts = [f"latest.safetensors {saved_step(run / 'latest.safetensors')}"]
    validation = last_validation(run)
    if validation:
        parts.append(validation)
    return ", ".join(parts)


def intact(run: Path, failed: str | None = None) -> str:
    """What of a run survived a failed write of the file ``failed``, from the disk itself:
    "latest.safetensors at step 40 is unchanged, best.safetensors at step 30 is intact" (the
    writes are atomic: what is there is the last complete version)."""
    kept = [(name, state) for name in ("latest.safetensors", "best.safetensors")
            if (state := saved_step(run / name)).startswith("at step")]
    words = [f"{name} {state} is unchanged" for name, state in kept if name == failed]
    others = [f"{name} {state}" for name, state in kept if name != failed]
    if others:
        words.append(" and ".join(others) + (" is" if len(others) == 1 else " are") + " intact")
    return ", ".join(words) or f"{run} holds no checkpoint yet"
