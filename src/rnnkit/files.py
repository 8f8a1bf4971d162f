"""The files rnnkit writes and reads back: written atomically, read with what is wrong said in words.

Every file is written to a temporary name in its directory, flushed to the disk and renamed into
place, so a crash, Ctrl-C or a full disk never leaves a half-written file, and a write that fails is
a :class:`~rnnkit.errors.WriteFailed` naming the file (:func:`atomic_write`); nothing is ever loaded
with pickle.
Arrays are safetensors files with rnnkit's metadata as JSON under the ``rnnkit`` key
(:func:`write_tensors`, :func:`read_tensors`); settings are UTF-8 JSON (:func:`write_json`,
:func:`read_json`). The language model's run directories (:class:`rnnkit.lm.rundir.RunDirectory`) and the
estimators' model files (:mod:`rnnkit.models.persist`) are both made of these.

A read that fails raises :class:`~rnnkit.errors.FileError` naming the file and what was found: not
readable, not UTF-8, not JSON; for a safetensors file (:class:`~rnnkit.errors.DamagedFile`) empty,
truncated (and by how much) or not a safetensors file at all. :func:`damage` diagnoses a
safetensors file from its header alone, without reading the tensors.

Safetensors layout: an 8-byte little-endian header length N, N bytes of JSON header
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``), then the
tensor data, whose offsets count from the end of the header.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from rnnkit.errors import DamagedFile, FileError, WriteFailed, os_problem


# -- writing ---------------------------------------------------------------------------------------

def file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's own is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


TMP_SUFFIX = ".tmp"      # the temporary files of atomic_write: .NAME.XXXXXXXX.tmp beside NAME


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) and rename the result onto ``path`` (same directory, so atomic).

    The temporary file is flushed to the disk (fsync) before the rename, so that an error the
    file system reports late (a full disk, a quota) is seen while ``path`` is still the old file,
    and a file is only ever replaced by a complete one; the directory is flushed after it. Any OSError is a
    :class:`~rnnkit.errors.WriteFailed` naming ``path``; the temporary file is always removed.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
        write(tmp)
        _flush_to_disk(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
        tmp = None
        _flush_directory(path.parent)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    finally:
        if tmp is not None:
            _remove(Path(tmp))


def cannot_write(path: Path, exc: OSError) -> WriteFailed:
    """The error of a failed write of ``path``: what the operating system said, and what to do."""
    problem = os_problem(exc)
    error = WriteFailed(f"cannot write {path}: {problem}")
    error.path, error.problem = path, problem
    return error


def _flush_to_disk(tmp: str) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_directory(directory: Path) -> None:
    """Flush the rename itself to the disk (so that a power cut after it keeps the new file);
    best effort: some systems cannot open a directory for that."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:          # e.g. a file system that turned read-only: nothing more can be done
        pass


def stale_temporaries(directory: Path) -> list[Path]:
    """The temporary files atomic_write leaves in ``directory`` only when its process was killed
    (kill -9, a power cut) between creating and renaming one."""
    return sorted(p for p in directory.glob(f".*{TMP_SUFFIX}") if p.is_file())


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_tensors(path: Path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    # np.require, not np.ascontiguousarray: that one turns a 0-d array (a batch norm's
    # num_batches_tracked) into shape (1,).
    arrays = {k: np.require(v, requirements="C") for k, v in tensors.items()}
    # Serialised in memory, then written by Python: a failed write is an OSError with its errno
    # (safetensors' own save_file reports it as a SafetensorError holding only the text).
    data = save(arrays, metadata={"rnnkit": json.dumps(meta)})
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


# -- reading ---------------------------------------------------------------------------------------

MAX_HEADER = 100 * 2**20       # safetensors' own limit on the header: a larger length is not one


def _cannot_read(path: Path, exc: OSError, error=FileError) -> FileError:
    return error(f"{path}: cannot read it ({(exc.strerror or str(exc)).lower()})")


def read_json(path: Path):
    """The parsed content of a JSON file written by rnnkit (UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    try:
        return json.loads(data.decode("utf-8-sig"))     # a byte-order mark from an editor is fine
    except UnicodeDecodeError as exc:
        raise FileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        found = "an empty file" if not data.strip() else f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise FileError(f"{path}: not valid JSON ({found})") from None


def _tensor_end(entry) -> int:
    """Where a header entry says its data ends (0 if the entry is not a tensor description)."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    ok = isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
    return offsets[1] if ok else 0


def damage(path: Path) -> str | None:
    """What is structurally wrong with a safetensors file, as the end of a sentence starting with
    its name ("is truncated (...)"); None if its header and size are consistent."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(9)
        if len(head) < 9:
            return f"is truncated ({size} bytes; a safetensors file starts with an 8-byte length and a header)"
        n = int.from_bytes(head[:8], "little")
        if head[8:9] != b"{" or n > MAX_HEADER:
            return "is not a safetensors file (it does not start with a safetensors header)"
        if 8 + n > size:
            return f"is truncated ({size} bytes; its header alone needs {8 + n})"
        raw = head[8:] + f.read(n - 1)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "has a damaged header (not valid JSON)"
    if not isinstance(header, dict):
        return "has a damaged header (not a JSON object)"
    need = 8 + n + max((_tensor_end(v) for k, v in header.items() if k != "__metadata__"), default=0)
    if need > size:
        return f"is truncated ({size} bytes of the {need} its header describes)"
    return None


def _tensor(f, name: str, path: Path) -> np.ndarray:
    try:
        return f.get_tensor(name)
    except TypeError as exc:            # e.g. bfloat16, which NumPy has no type for
        raise DamagedFile(f"{path} holds {name} in a type NumPy cannot read ({exc}); "
                                "rnnkit writes float32") from None


def read_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors by name, rnnkit's metadata) of a safetensors checkpoint."""
    try:
        problem = damage(path)
        if problem is None:                  # safetensors itself checks more than the header
            with safe_open(str(path), framework="np") as f:
                raw = (f.metadata() or {}).get("rnnkit", "{}")
                tensors = {k: _tensor(f, k, path) for k in f.keys()}
    except OSError as exc:
        raise _cannot_read(path, exc, DamagedFile) from None
    except SafetensorError as exc:
        problem = f"is damaged ({exc})"
    if problem is not None:
        raise DamagedFile(f"{path} {problem}")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise DamagedFile(f"{path} has damaged metadata (its 'rnnkit' entry is not a JSON object)")
    return tensors, meta


def prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + k: v for k, v in arrays.items()}


def unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
