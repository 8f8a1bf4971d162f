"""Per-class measures of a classification: the confusion matrix, precision, recall and F1.

    C[i, j]  = #{sequences of class i predicted as class j}     rows: true, columns: predicted
    precision_j = C[j, j] / Σ_i C[i, j]        recall_i = C[i, i] / Σ_j C[i, j]
    F1_k = 2 · precision_k · recall_k / (precision_k + recall_k)     support_i = Σ_j C[i, j]

A ratio whose denominator is 0 (a class never predicted, or absent from the test set) is 0, as
scikit-learn's ``precision_recall_fscore_support(zero_division=0)`` gives it. The classes are
those of either argument, sorted, as scikit-learn's ``confusion_matrix`` orders them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassReport:
    labels: np.ndarray          # (K,) the classes: the rows and columns of ``confusion``
    confusion: np.ndarray       # (K, K) int64, rows the true class, columns the predicted one
    precision: np.ndarray       # (K,)
    recall: np.ndarray          # (K,)
    f1: np.ndarray              # (K,)
    support: np.ndarray         # (K,) int64: test sequences of each class

    def to_json(self) -> dict:
        return {"labels": self.labels.tolist(), "confusion": self.confusion.tolist(),
                "precision": self.precision.tolist(), "recall": self.recall.tolist(),
                "f1": self.f1.tolist(), "support": self.support.tolist()}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def class_report(y_true, y_pred) -> ClassReport:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got shapes "
                         f"{y_true.shape} and {y_pred.shape}")
    labels = np.unique(np.concatenate([y_true, y_pred]))
    k = len(labels)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (np.searchsorted(labels, y_true), np.searchsorted(labels, y_pred)), 1)
    hits = np.diag(confusion).astype(np.float64)
    precision = _ratio(hits, confusion.sum(axis=0))
    recall = _ratio(hits, confusion.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return ClassReport(labels, confusion, precision, recall, f1, confusion.sum(axis=1))


def format_report(report: dict, indent: str = "  ") -> str:
    """The per-class table and the confusion matrix as text, from ``ClassReport.to_json()``."""
    names = [str(v) for v in report["labels"]]
    confusion = np.asarray(report["confusion"])
    w = max(5, *map(len, names))
    lines = [f"{indent}{'class':<{w}}  precision  recall     F1  support"]
    for name, p, r, f, n in zip(names, report["precision"], report["recall"], report["f1"],
                                report["support"]):
        lines.append(f"{indent}{name:<{w}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {n:7d}")
    cells = [max(len(n), len(str(confusion[:, j].max()))) for j, n in enumerate(names)]
    lines.append(f"{indent}confusion matrix (rows: true class, columns: predicted)")
    lines.append(f"{indent}{'':<{w}}  " + " ".join(f"{n:>{c}}" for n, c in zip(names, cells)))
    for name, row in zip(names, confusion):
        lines.append(f"{indent}{name:<{w}}  " + " ".join(f"{v:>{c}d}" for v, c in zip(row, cells)))
    return "\n".join(lines)
