"""How the classifier's defaults were chosen: variants of RNNClassifier on development sets.

    python scripts/tune_seqmodels.py --variants base fcn gru --datasets ArrowHead CBF --seeds 0 1
    python scripts/tune_seqmodels.py --report tune.jsonl

Each run fits on the set's train split with the given seed and records the test accuracy, the
fit time and the plan (epochs, networks, frame) as one JSON line in ``--out``. The development
sets (DEV) are bundled ones (the ucr extra) plus CBF, Saito's synthetic cylinder-bell-funnel
task generated here (30 training and 900 test sequences of 128 steps, a fixed seed); the sets
docs/sequence_models.md reports as held out (GunPoint, ItalyPowerDemand, BasicMotions, PLAID)
chose nothing.
Variants change one thing from the defaults; ``frame_steps`` and ``work`` patch the module
constants behind ``frame="auto"`` and ``epochs="auto"``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict

import numpy as np

DEV = ["ArrowHead", "OSULeaf", "ACSF1", "UnitTest", "JapaneseVowels", "CBF"]
ONE = {"n_estimators": 1}
VARIANTS = {
    "base": {},                                               # the defaults: GRU-16 + FCN-32, ensemble
    "single": ONE,                                            # one network
    "fcn": ONE | {"hidden_size": 0, "dropout": 0.0},          # the convolutional branch alone
    "gru": ONE | {"conv_filters": (), "conv_kernels": (), "hidden_size": 64, "dropout": 0.0},
    "gru64-fcn": ONE | {"hidden_size": 64, "dropout": 0.0},   # a wide recurrent branch, no dropout
    "gru64-fcn-drop": ONE | {"hidden_size": 64},
    "gru16-fcn-nodrop": ONE | {"dropout": 0.0},
    "fcn64": ONE | {"conv_filters": (64, 128, 64)},
    "steps50": ONE | {"frame_steps": 50}, "steps100": ONE | {"frame_steps": 100},
    "frame1": ONE | {"frame": 1},
    "lr1e-3": ONE | {"lr": 1e-3}, "constant": ONE | {"schedule": "constant"},
    "val0.2": ONE | {"validation_fraction": 0.2, "epochs": 300, "schedule": "constant", "lr": 3e-3},
    "bs32": ONE | {"batch_size": 32},
}


def cbf(seed: int = 123, n_train: int = 30, n_test: int = 900, T: int = 128):
    """Cylinder, bell and funnel (Saito 1994): a plateau, a rise or a fall over a random [a, b]
    on noise; the classic synthetic shape task."""
    rng = np.random.default_rng(seed)

    def one(c):
        a = rng.integers(16, 33)
        b = a + rng.integers(32, 97)
        eta, eps, t = rng.normal(), rng.normal(size=T), np.arange(T)
        chi = ((t >= a) & (t <= b)).astype(float)
        shape = [chi, chi * (t - a) / (b - a), chi * (b - t) / (b - a)][c]
        return (6 + eta) * shape + eps

    def make(n):
        y = rng.integers(0, 3, n)
        return np.stack([one(c) for c in y]), np.array(["cylinder", "bell", "funnel"])[y]

    return make(n_train), make(n_test)


def load(dataset: str):
    if dataset == "CBF":
        return cbf()
    from rnnkit.models.datasets import load_ucr
    train, test = load_ucr(dataset)
    return (train.X, train.y), (test.X, test.y)


def run(variant: str, dataset: str, seed: int) -> dict:
    from rnnkit.models import RNNClassifier, budget, config
    params = dict(VARIANTS[variant])
    patches = {(config, "AUTO_FRAME_STEPS"): params.pop("frame_steps", None),
               (budget, "WORK"): params.pop("work", None)}
    old = {key: getattr(*key) for key in patches}
    (X, y), (Xt, yt) = load(dataset)
    clf = RNNClassifier(verbose=0, random_state=seed, **params)
    try:
        for (module, name), value in patches.items():
            if value is not None:
                setattr(module, name, value)
        t = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - t
    finally:
        for (module, name), value in old.items():
            setattr(module, name, value)
    return {"variant": variant, "dataset": dataset, "seed": seed,
            "accuracy": float(np.mean(clf.predict(Xt) == yt)), "seconds": seconds,
            "epochs": clf.n_epochs_, "members": len(clf.net_), "frame": clf.frame_}


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
