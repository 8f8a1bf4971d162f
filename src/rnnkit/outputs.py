"""Paths a command will write, checked when its options are parsed, before any work starts.

Each function is an argparse ``type=``: it returns the text unchanged when the path can be written
and raises ``argparse.ArgumentTypeError`` saying why not (a directory where a file is expected, a
file where a directory is expected, a missing or unwritable parent). The write itself can still
fail (a full disk); the command line reports that as a clean error too (:mod:`rnnkit.errors`).

The rule for a file named on the command line is cp's: it is written whether or not it exists,
atomically (the old file stays whole until the new one is complete: :mod:`rnnkit.files`). A
command whose file holds a model (``classify``/``forecast --save``, ``export``) says when it
replaced one (:func:`replacing`). A run directory is another matter: ``rnnkit train`` refuses an
``--out`` that holds a run unless told ``--resume`` or ``--overwrite``
(:meth:`rnnkit.lm.rundir.RunDirectory.claim`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _refuse(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists (the current directory at worst)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_dir(directory: Path, target: str) -> None:
    if not directory.is_dir():
        raise _refuse(f"cannot write {target!r}: {str(directory)!r} is a file, not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            raise _refuse(f"cannot write {target!r}: {str(directory)!r} is on a read-only file system")
        raise _refuse(f"cannot write {target!r}: no permission to write in {str(directory)!r}")


def output_file(text: str) -> str:
    """A file to write: not a directory; its directory must exist and be writable."""
    if not text:
        raise _refuse("must be a file name, got ''")
    path = Path(text)
    try:
        if path.is_dir():
            raise _refuse(f"{text!r} is a directory; give the name of a file to write")
        parent = path.parent
        if not parent.exists():
            existing = _nearest_existing(parent)
            raise _refuse(f"cannot write {text!r}: " + (
                f"the directory {str(parent)!r} does not exist" if existing.is_dir()
                else f"{str(existing)!r} is a file, not a directory"))
        _writable_dir(parent, text)
        if path.exists() and not os.access(path, os.W_OK):
            raise _refuse(f"cannot write {text!r}: the file is read-only")
    except OSError as exc:          # e.g. a parent we may not even look into
        raise _refuse(f"cannot write {text!r}: {(exc.strerror or str(exc)).lower()}") from None
    return text


def replacing(path) -> str:
    """" (it replaced the file that was there)" if ``path`` exists now, else "": asked before a
    command writes a model file, for its closing line."""
    return " (it replaced the file that was there)" if Path(path).is_file() else ""


def output_file_or_stdout(text: str) -> str:
    """``-`` (standard output) or a file to write."""
    return text if text == "-" else output_file(text)


def output_dir(text: str) -> str:
    """A directory to write into, created if missing: not a file; its nearest existing
    ancestor must be a writable directory."""
    if not text:
        raise _refuse("must be a directory name, got ''")
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise _refuse(f"{text!r} is a file; give a directory (it is created if missing)")
        _writable_dir(_nearest_existing(path), text)
    except OSError as exc:
        raise _refuse(f"cannot write {text!r}: {(exc.strerror or str(exc)).lower()}") from None
    return text
