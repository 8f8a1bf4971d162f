"""Run directories: config and vocabulary as JSON, weights and training state as safetensors.

Layout of a run directory::

    config.json          model and training configuration, corpus summary
    vocab.json           the characters (id 0 is the unknown token)
    latest.safetensors   model, optimizer state, carried hidden state; metadata: step, RNG, ...
    best.safetensors     model weights at the best validation score so far
    metrics.jsonl        one JSON object per training step and per evaluation (with its sample)
    timings.jsonl        the seconds of training after each step, and its characters per second

Every file is written to a temporary name in the same directory and renamed into place, so a
crash or Ctrl-C never leaves a half-written checkpoint. Nothing is ever loaded with pickle.
Reading and checking a run directory is :mod:`rnnkit.lm.rundir`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

# Reading lives beside: the formats (with their damage diagnoses) and the run directory as a whole.
from rnnkit.lm.formats import prefixed, read_tensors, unprefixed
from rnnkit.lm.rundir import load_model, load_run

__all__ = ["atomic_write", "write_json", "write_tensors",
           "prefixed", "unprefixed", "read_tensors", "load_model", "load_run"]


def _file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's own is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) and rename the result onto ``path`` (same directory, so atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    atomic_write(path, write)


def write_tensors(path: Path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    # np.require, not np.ascontiguousarray: that one turns a 0-d array (a batch norm's
    # num_batches_tracked) into shape (1,).
    arrays = {k: np.require(v, requirements="C") for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata={"rnnkit": json.dumps(meta)}))
