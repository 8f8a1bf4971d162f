"""One writer per run directory: an OS lock on its ``train.lock``.

``rnnkit train`` claims its ``--out`` before any work (:meth:`rnnkit.lm.rundir.RunDirectory.claim`):
refused if another ``rnnkit train`` is writing it (its lock is held: :class:`RunLocked`, naming
that process), or if it holds a run and neither ``--resume`` nor ``--overwrite`` was given;
otherwise the lock is taken for the life of the run (:func:`lock`): an OS lock
(``fcntl.flock``) on ``train.lock`` in the run directory. The kernel releases it when the process
ends, however it ends (``kill -9`` included), so there is never a stale lock to remove by hand:
the lock being held, not the file being there, says that a run is writing (a killed run leaves
the file, unlocked). What it holds (process id, host, start time) is only for the message of a
refused writer; the run removes it when it ends.

A run that fails before writing its first file (a missing corpus) leaves no lock file and no
directory behind. Readers (generate, eval, inspect, export, plot) take no lock: every file of a
run is replaced atomically, so they read the last complete checkpoint while a run writes the next
one.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

from rnnkit.errors import Note, UserError
from rnnkit.files import cannot_write, file_mode

try:
    import fcntl
except ImportError:                 # Windows: no flock; the run goes on unlocked (a Note says so)
    fcntl = None

LOCK_FILE = "train.lock"


class RunLocked(UserError):
    """Another ``rnnkit train`` holds the run directory's lock."""


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


def refuse_if_held(run: Path) -> None:
    """Raise :class:`RunLocked`, naming the holder, if a process holds the lock of ``run``."""
    who = holder(run)
    if who is not None:
        raise _locked(run, who)


def _locked(run: Path, who: str) -> RunLocked:
    return RunLocked(f"{run} is being written by another 'rnnkit train' ({who}); two writers would mix "
                     "their steps and checkpoints in one run: wait for it to end (generate, eval, inspect "
                     "and export can read the run meanwhile), or choose another --out")
