"""How the sequence models' defaults were chosen: variants of RNNClassifier on the bundled sets.

    python scripts/tune_seqmodels.py --variants base lstm last mean --datasets ArrowHead OSULeaf \
        --seeds 0 1 --out tune.jsonl
    python scripts/tune_seqmodels.py --report tune.jsonl

Each run fits on the set's train split with the given seed and records the test accuracy and
the fit time as one JSON line. Defaults were picked on the development sets (DEV); the sets the
README reports (GunPoint, ItalyPowerDemand, BasicMotions) were not used to choose them.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict

import numpy as np

# The README's tuning table also used PickupGestureWiimoteZ, which aeon bundled and sktime (the
# ucr extra now) does not; PLAID is the bundled variable-length univariate set that could stand in.
DEV = ["ArrowHead", "OSULeaf", "JapaneseVowels", "ACSF1", "UnitTest"]
VARIANTS = {
    "base": {},
    "lstm": {"cell": "lstm"}, "rnn": {"cell": "rnn"},
    "last": {"pooling": "last"}, "mean": {"pooling": "mean"}, "max": {"pooling": "max"},
    "bidir": {"bidirectional": True}, "layers2": {"num_layers": 2},
    "h32": {"hidden_size": 32}, "h128": {"hidden_size": 128},
    "lr1e-3": {"lr": 1e-3}, "lr1e-2": {"lr": 1e-2},
    "bs16": {"batch_size": 16}, "bs64": {"batch_size": 64},
    "val0.1": {"validation_fraction": 0.1}, "val0": {"validation_fraction": 0.0, "epochs": 150},
    "pat15": {"patience": 15}, "pat50": {"patience": 50},
    "drop0.2": {"dropout": 0.2}, "wd1e-4": {"weight_decay": 1e-4},
    "frame1": {"frame": 1, "time_budget": 600}, "steps25": {"frame_steps": 25},
    "pat60": {"patience": 60, "epochs": 600},
    # round 2: from max pooling
    "M": {"pooling": "max"}, 
    "M-bs16": {"pooling": "max", "batch_size": 16}, "M-lr1e-2": {"pooling": "max", "lr": 1e-2},
    "M-val0": {"pooling": "max", "validation_fraction": 0.0}, "M-h128": {"pooling": "max", "hidden_size": 128},
    "M-bidir": {"pooling": "max", "bidirectional": True}, "M-lstm": {"pooling": "max", "cell": "lstm"},
    "M-pat60": {"pooling": "max", "patience": 60, "epochs": 600},
    "M-steps100": {"pooling": "max", "frame_steps": 100}, "M-steps25": {"pooling": "max", "frame_steps": 25},
    "M-drop0.2": {"pooling": "max", "dropout": 0.2}, "M-val0.1": {"pooling": "max", "validation_fraction": 0.1}, "bs16pat60": {"batch_size": 16, "patience": 60, "epochs": 600},
    "steps100": {"frame_steps": 100},
}


def run(variant: str, dataset: str, seed: int) -> dict:
    from rnnkit.models import RNNClassifier, config
    from rnnkit.models.datasets import load_ucr
    params = dict(VARIANTS[variant])
    steps = params.pop("frame_steps", None)
    old = config.AUTO_FRAME_STEPS
    if steps:
        config.AUTO_FRAME_STEPS = steps
    train, test = load_ucr(dataset)
    clf = RNNClassifier(verbose=0, random_state=seed, **params)
    t = time.perf_counter()
    try:
        clf.fit(train.X, train.y)
    finally:
        config.AUTO_FRAME_STEPS = old
    seconds = time.perf_counter() - t
    acc = float(np.mean(clf.predict(test.X) == test.y))
    return {"variant": variant, "dataset": dataset, "seed": seed, "accuracy": acc, "seconds": seconds,
            "epochs": clf.n_epochs_, "best_epoch": clf.history_.best_epoch, "frame": clf.frame_}


def report(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    acc, sec = defaultdict(list), defaultdict(list)
    for r in rows:
        acc[r["variant"], r["dataset"]].append(r["accuracy"])
        sec[r["variant"], r["dataset"]].append(r["seconds"])
    datasets = sorted({r["dataset"] for r in rows})
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    print("| variant | " + " | ".join(datasets) + " | mean accuracy | mean fit s |")
    print("|---" * (len(datasets) + 3) + "|")
    for v in variants:
        cells, means, times = [], [], []
        for d in datasets:
            a = acc.get((v, d))
            cells.append(f"{np.mean(a):.3f}" if a else "")
            if a:
                means.append(np.mean(a))
                times.append(np.mean(sec[v, d]))
        complete = len(means) == len(datasets)
        print(f"| {v} | " + " | ".join(cells) + f" | {np.mean(means):.3f}{'' if complete else ' (partial)'}"
              f" | {np.mean(times):.1f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", nargs="+", default=["base"], choices=list(VARIANTS))
    p.add_argument("--datasets", nargs="+", default=DEV)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--out", default="tune.jsonl")
    p.add_argument("--report", metavar="JSONL")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    warnings.filterwarnings("ignore")
    for v in args.variants:
        for d in args.datasets:
            for s in args.seeds:
                r = run(v, d, s)
                print(json.dumps(r), flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
