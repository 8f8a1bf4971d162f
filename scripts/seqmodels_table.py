"""The README's measured tables from the JSON lines of `rnnkit classify --json` / `rnnkit forecast --json`.

    for d in GunPoint ItalyPowerDemand BasicMotions; do for s in 0 1 2; do
        rnnkit classify --dataset $d --seed $s --json $([ $s = 0 ] && echo --dtw); done; done > classify.jsonl
    for s in 0 1 2; do rnnkit forecast --dataset airline --horizon 36 --seed $s --json; done > forecast.jsonl
    python scripts/seqmodels_table.py classify.jsonl forecast.jsonl

Published accuracies (test set, UCR archive splits) quoted beside the measured ones:
FCN — Fawaz et al. 2019, "Deep learning for time series classification: a review", Data Mining
and Knowledge Discovery 33:917-963, mean of 10 runs (results-uea-avg-std.csv of the authors'
dl-4-tsc repository, which holds the paper's UCR-85 table); LSTM-FCN — Karim et al. 2018, "LSTM
fully convolutional networks for time series classification", IEEE Access 6:1662-1669, the
authors' figures with the model chosen by minimum training loss (their repository's
Results/train_loss_old_datasets.csv). "—": the set is not in that paper's archive.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np

FCN = {"GunPoint": "1.000", "ItalyPowerDemand": "0.961", "ArrowHead": "0.843", "OSULeaf": "0.977",
       "JapaneseVowels": "0.993"}   # JapaneseVowels: the review's multivariate table (results-mts-avg-std.csv)
LSTM_FCN = {"GunPoint": "1.000", "ItalyPowerDemand": "0.962", "ArrowHead": "0.897", "OSULeaf": "0.983"}


def classification(rows: list[dict]) -> None:
    by = defaultdict(list)
    for r in rows:
        by[r["dataset"]].append(r)
    print("| data set | train / test, T, F | rnnkit accuracy (3 seeds) | fit s | 1-NN DTW | majority "
          "| FCN (Fawaz 2019) | LSTM-FCN (Karim 2018) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rs in by.items():
        acc = np.array([r["accuracy"] for r in rs])
        tr, te = rs[0]["train"], rs[0]["test"]
        T = str(tr["max_length"]) if tr["min_length"] == tr["max_length"] else f"{tr['min_length']}–{tr['max_length']}"
        dtw = next((r["baselines"]["dtw_1nn"] for r in rs if "dtw_1nn" in r["baselines"]), None)
        print(f"| {name} | {tr['n']} / {te['n']}, {T}, {tr['features']} | **{acc.mean():.3f}** "
              f"± {acc.std():.3f} ({', '.join(f'{a:.3f}' for a in acc)}) | "
              f"{np.mean([r['fit_seconds'] for r in rs]):.1f} | {'' if dtw is None else f'{dtw:.3f}'} | "
              f"{rs[0]['baselines']['majority_class']:.3f} | {FCN.get(name, '—')} | {LSTM_FCN.get(name, '—')} |")


def forecasting(rows: list[dict]) -> None:
    r0 = rows[0]
    mape = np.array([r["rnnkit"]["mape"] for r in rows])
    err = np.array([r["rnnkit"]["rmse"] for r in rows])
    print(f"| forecast of the last {r0['horizon']} values | MAPE | RMSE |")
    print("|---|---|---|")
    print(f"| rnnkit RNNForecaster ({len(rows)} seeds, mean ± sd) | **{mape.mean():.2f}%** ± {mape.std():.2f} "
          f"| **{err.mean():.1f}** ± {err.std():.1f} |")
    for name, m in r0["baselines"].items():
        print(f"| {name.replace('_', ' ')} | {m['mape']:.2f}% | {m['rmse']:.1f} |")


def main() -> None:
    for path in sys.argv[1:]:
        rows = [json.loads(line) for line in open(path) if line.strip()]
        (forecasting if "horizon" in rows[0] else classification)(rows)
        print()


if __name__ == "__main__":
    main()
