"""Training steps per second of the full and the adaptive softmax on the same text, measured back
to back in one process (so a busy machine slows both alike): the figures behind
rnnkit.lm.softmax.AUTO_ADAPTIVE and docs/language_model.md.

    python scripts/softmax_speed.py CORPUS [--tokens char|word|bpe] [--vocab-size N ...] [--steps 6]

Each (vocab size, softmax) pair builds `rnnkit train`'s Trainer with the default model, compiles,
then times --steps training steps, alternating full and adaptive for --rounds rounds; the
median step time of each is printed with their ratio. For --tokens char the vocabulary is the
text's own; --vocab-size sizes word or BPE vocabularies (one line each).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from rnnkit.lm.config import TrainConfig
from rnnkit.lm.train import Trainer


def trainer(corpus: str, tokens: str, size: int, softmax: str, out: str) -> Trainer:
    cfg = TrainConfig(paths=(corpus,), tokens=tokens, vocab_size=size, softmax=softmax, max_steps=10_000,
                      sample_chars=0, out=out)
    t = Trainer(cfg, log=lambda msg: None)
    t.warm_up()
    return t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("--tokens", default="char")
    p.add_argument("--vocab-size", type=int, nargs="*", default=[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.vocab_size:
            runs = {s: trainer(a.corpus, a.tokens, size, s, f"{tmp}/{s}{size}") for s in ("full", "adaptive")}
            times = {s: [] for s in runs}
            for _ in range(a.rounds):
                for s, t in runs.items():
                    for _ in range(a.steps):
                        start = time.perf_counter()
                        t.train_step()
                        times[s].append(time.perf_counter() - start)
            full, adaptive = (statistics.median(times[s]) for s in ("full", "adaptive"))
            cutoffs = runs["adaptive"].model.cfg.cutoffs
            print(f"{a.tokens} V={runs['full'].text.vocab.size} cutoffs={list(cutoffs)}: full {full * 1e3:.0f} ms, "
                  f"adaptive {adaptive * 1e3:.0f} ms a step: {full / adaptive:.2f}x", flush=True)


if __name__ == "__main__":
    main()
