"""Run directories: config and vocabulary as JSON, weights and training state as safetensors.

Layout of a run directory::

    config.json          model and training configuration, corpus summary
    vocab.json           the characters (id 0 is the unknown token)
    latest.safetensors   model, optimizer state, carried hidden state; metadata: step, RNG, ...
    best.safetensors     model weights at the best validation score so far
    metrics.jsonl        one JSON object per training step and per evaluation

Every file is written to a temporary name in the same directory and renamed into place, so a
crash or Ctrl-C never leaves a half-written checkpoint. Nothing is ever loaded with pickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from rnnkit.lm.data import Vocab
from rnnkit.lm.errors import CheckpointError
from rnnkit.lm.model import CharLM, ModelConfig


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
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata={"rnnkit": json.dumps(meta)}))


def read_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with safe_open(str(path), framework="np") as f:
        meta = json.loads((f.metadata() or {}).get("rnnkit", "{}"))
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + k: v for k, v in arrays.items()}


def unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_model(run_dir: str | Path, which: str = "best") -> tuple[CharLM, Vocab, dict]:
    """The model of a run directory (``best`` if it exists, else ``latest``), its vocab and config."""
    run = Path(run_dir)
    config_path, vocab_path = run / "config.json", run / "vocab.json"
    candidates = [run / f"{which}.safetensors", run / "latest.safetensors"]
    weights = next((p for p in candidates if p.is_file()), None)
    if not (config_path.is_file() and vocab_path.is_file() and weights is not None):
        raise CheckpointError(f"{run}: no checkpoint here (expected config.json, vocab.json and "
                              "best.safetensors or latest.safetensors, as written by 'rnnkit train')")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    vocab = Vocab.from_json(json.loads(vocab_path.read_text(encoding="utf-8")))
    model = CharLM(ModelConfig(**config["model"]), rng=0).eval()
    tensors, _ = read_tensors(weights)
    model.load_state_dict(unprefixed("model.", tensors))
    return model, vocab, config
