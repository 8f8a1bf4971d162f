"""The confusion matrix of a classification as a PNG: ``rnnkit classify --plot FILE.png``.

Cell (i, j) counts the test sequences of class i predicted as class j (rows: true class,
columns: predicted), shaded by the share of its row — the recall on the diagonal — so that
classes of different sizes read alike; each cell shows its count.
"""

from __future__ import annotations

import numpy as np

from rnnkit.plots import new_figure, save_png

CELL_INCHES = 0.6           # each class adds this much to the width and height
MIN_INCHES = 4.0            # room for the title and axis labels with two classes


def figure_inches(k: int) -> tuple[float, float]:
    """(width, height) of the figure for k classes: a square matrix plus its colour bar."""
    side = max(MIN_INCHES, 1.5 + CELL_INCHES * k)
    return side + 1.0, side


def plot_confusion(labels, confusion: np.ndarray, path, title: str = "", dpi: int = 100) -> None:
    """Draw ``confusion`` (K, K), rows and columns named by ``labels`` (K,), into ``path``."""
    confusion = np.asarray(confusion)
    names = [str(v) for v in labels]
    k = len(names)
    if confusion.shape != (k, k):
        raise ValueError(f"confusion must be ({k}, {k}) for {k} labels, got {confusion.shape}")
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)   # (K, K)
    fig = new_figure(*figure_inches(k))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    slanted = max(map(len, names)) > 3                      # long names would overlap
    ax.set_xticks(range(k), names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    save_png(fig, path, dpi)
