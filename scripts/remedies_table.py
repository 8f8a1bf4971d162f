"""The training remedies on the default `rnnkit train` run: the same corpus and the same time
budget, one option set at a time, each in its own process, one after another (run it on a quiet
machine: the budget is seconds, so a busy machine costs every row steps). The figures behind
docs/training_remedies.md's "On the default run" table.

    python scripts/remedies_table.py [--time-budget 180] [--seeds 0] [--out DIR] [--only NAME ...]

Each row is `rnnkit train --time-budget B --seed S --out DIR/NAME-S OPTIONS`; the table gives the
steps reached, the best validation bits per character and the characters per second of each, and
the difference from the plain run of the same seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROWS: dict[str, list[str]] = {
    "plain": [],
    "layer-norm": ["--layer-norm"],
    "recurrent-dropout 0.1": ["--recurrent-dropout", "0.1"],
    "zoneout 0.1": ["--zoneout", "0.1"],
    "norm-between layer": ["--norm-between", "layer"],
    "norm-between batch": ["--norm-between", "batch"],
    "init kaiming": ["--init", "kaiming"],
}


def figures(run: Path) -> dict:
    """Steps, best validation bits/char and characters/s of a finished run, from its files."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [m["val_bpc"] for m in lines if "val_bpc" in m]
    steps = max(m["step"] for m in lines if "loss" in m)
    train = json.loads((run / "config.json").read_text())["train"]
    seconds = json.loads((run / "timings.jsonl").read_text().splitlines()[-1])["train_seconds"]
    return {"steps": steps, "val_bpc": min(vals),
            "chars_per_s": steps * train["batch_size"] * train["seq_len"] / seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--time-budget", type=float, default=180)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default="runs/remedies")
    p.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    a = p.parse_args()
    results = []
    for seed in a.seeds:
        for name in a.only:
            run = Path(a.out) / f"{name.replace(' ', '-')}-{seed}"
            cmd = [sys.executable, "-m", "rnnkit.cli", "train", "--time-budget", str(a.time_budget), "--seed",
                   str(seed), "--out", str(run), "--overwrite", "--sample-chars", "0", *ROWS[name]]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            results.append({"name": name, "seed": seed, **figures(run)})
            print(json.dumps(results[-1]), flush=True)
    plain = {r["seed"]: r["val_bpc"] for r in results if r["name"] == "plain"}
    print(f"\n{'option':24s} {'seed':>4s} {'steps':>6s} {'val bits/char':>14s} {'vs plain':>9s} {'chars/s':>9s}")
    for r in results:
        diff = f"{r['val_bpc'] - plain[r['seed']]:+.3f}" if r["seed"] in plain else ""
        print(f"{r['name']:24s} {r['seed']:4d} {r['steps']:6d} {r['val_bpc']:14.3f} {diff:>9s} {r['chars_per_s']:9,.0f}")


if __name__ == "__main__":
    main()
