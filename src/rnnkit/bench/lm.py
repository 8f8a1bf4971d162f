"""``rnnkit bench --lm SECONDS``: the same character LSTM trained by rnnkit and by PyTorch.

Both train a 2-layer, 256-unit LSTM (embedding 64) on 32 streams × 64 characters, Adam 2e-3,
gradient-norm clip 1.0, constant rate, for the same seconds of training steps, on the same text,
split, vocabulary and batches (:mod:`rnnkit.lm.data`), each in its own process; both are scored
by the same held-out pass (:func:`rnnkit.lm.infer.score`'s streams). Reported: characters per
second and held-out bits per character.

``python -m rnnkit.bench.lm rnnkit|torch SECONDS DIR [PATH ...]`` is one contender (default text:
the standard library, as for ``rnnkit train``); it prints one JSON line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from rnnkit.bench.contenders import Skipped, import_torch
from rnnkit.bench.runner import thread_env
from rnnkit.lm.config import TrainConfig

# The reference configuration, the same for both contenders.
LM_CONFIG = {"cell": "lstm", "layers": 2, "hidden": 256, "embed": 64, "dropout": 0.0, "seq_len": 64,
             "batch_size": 32, "optimizer": "adam", "lr": 2e-3, "schedule": "constant", "warmup": 0,
             "clip": 1.0, "seed": 0}


def lm_config(seconds: float, out: str, paths: tuple[str, ...]) -> TrainConfig:
    return TrainConfig(**LM_CONFIG, paths=paths, time_budget=seconds, eval_every=10**9, sample_chars=0, out=out)


def rnnkit_lm(cfg: TrainConfig) -> dict:
    from rnnkit.lm.train import Trainer
    result = Trainer(cfg, log=lambda msg: print(msg, file=sys.stderr)).run()
    chars = result.steps * cfg.batch_size * cfg.seq_len
    return {"steps": result.steps, "chars": chars, "train_seconds": result.train_seconds,
            "chars_per_s": chars / result.train_seconds, "bits_per_char": result.val.bits_per_char}


def _torch_model(vocab_size: int, embed: int = LM_CONFIG["embed"], hidden: int = LM_CONFIG["hidden"],
                 layers: int = LM_CONFIG["layers"]):
    """rnnkit's CharLM (without dropout) in PyTorch, with the same parameter names."""
    import torch

    class TorchCharLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab_size, embed)
            self.rnn = torch.nn.LSTM(embed, hidden, layers)
            self.head = torch.nn.Linear(hidden, vocab_size)

        def forward(self, x, state=None):
            out, state = self.rnn(self.embed(x), state)
            return self.head(out), state
    return TorchCharLM()


def _torch_score(model, ids: np.ndarray) -> float:
    """Held-out bits per character with rnnkit's evaluation streams (batch 64 × 256)."""
    import torch

    from rnnkit.lm.data import eval_streams
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for x, y, mask in eval_streams(ids, 64, 256):
            logits, state = model(torch.from_numpy(x.astype(np.int64)), state)
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                    torch.from_numpy(y.astype(np.int64)).reshape(-1),
                                                    reduction="none")
            total += float((nll * torch.from_numpy(mask.reshape(-1))).sum())
            count += int(mask.sum())
    return total / count / math.log(2)


def torch_lm(cfg: TrainConfig) -> dict:
    from rnnkit.lm.data import Streams, Vocab, split_text
    from rnnkit.lm.text import load_corpus
    torch = import_torch()
    torch.manual_seed(cfg.seed)
    text, _, _ = load_corpus(cfg)
    train_text, val_text = split_text(text, cfg.val_fraction)
    vocab = Vocab.from_text(train_text)
    streams = Streams(vocab.encode(train_text)[0], cfg.batch_size, cfg.seq_len)
    model = _torch_model(vocab.size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    trained, step, state = 0.0, 0, None
    while trained < cfg.time_budget:
        start = time.perf_counter()
        k = step % streams.num_chunks
        x, y = (torch.from_numpy(a.astype(np.int64)) for a in streams.chunk(k))
        if k == 0:
            state = None
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab.size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        step += 1
        trained += time.perf_counter() - start
    model.eval()
    chars = step * cfg.batch_size * cfg.seq_len
    return {"steps": step, "chars": chars, "train_seconds": trained, "chars_per_s": chars / trained,
            "bits_per_char": _torch_score(model, vocab.encode(val_text)[0])}


def run_lm_bench(seconds: float, threads: int, out_dir: str, paths: tuple[str, ...] = ()) -> dict:
    """Both contenders, one process each, one after the other."""
    results = {}
    for name in ("rnnkit", "torch"):
        env = thread_env(threads)
        proc = subprocess.run([sys.executable, "-m", "rnnkit.bench.lm", name, str(seconds),
                               os.path.join(out_dir, name), *paths], env=env, stdout=subprocess.PIPE, text=True,
                              check=False)
        lines = proc.stdout.strip().splitlines()
        results[name] = json.loads(lines[-1]) if proc.returncode == 0 and lines else \
            {"error": f"exit code {proc.returncode}"}
    return {"seconds": seconds, "config": LM_CONFIG, "paths": list(paths), "results": results}


def main(argv: list[str]) -> int:
    name, cfg = argv[0], lm_config(float(argv[1]), argv[2], tuple(argv[3:]))
    try:
        result = {"rnnkit": rnnkit_lm, "torch": torch_lm}[name](cfg)
    except Skipped as exc:
        result = {"skipped": str(exc)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
