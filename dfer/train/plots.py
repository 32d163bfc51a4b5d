"""The PNGs of one evaluation: the confusion matrix, per-class recall bars and the reliability diagram.

Axes and bars are named by the classes' display names (`dfer.data.names`). Each figure is drawn on a bare Agg
canvas, not pyplot, so no global backend or figure state is touched (a server or a test can draw in any thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dfer.train.metrics import ECE_BINS, expected_calibration_error, reliability_bins


def save_confusion_png(confusion: Sequence[Sequence[int]], classes: list[str], path: str | Path, title: str) -> Path:
    """Write the confusion matrix (rows = true class) as a PNG and return its path.

    Colours are row-normalised (recall per true class), so rare classes are as legible as common ones; the cells
    show the raw counts.
    """
    cm = np.asarray(confusion, dtype=np.int64)  # (C, C)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)  # (C, C), empty rows stay 0
    size = 1.5 + 0.6 * len(classes)
    fig, ax = _figure(size + 1.0, size)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    for i, j in np.ndindex(cm.shape):
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black")  # light text on dark cells
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def save_recall_png(metrics: dict, classes: list[str], path: str | Path, title: str) -> Path:
    """One horizontal bar per class: its recall (`metrics` from `classification_metrics`, `classes` the names of
    its per_class entries in order), with the class's clip count beside it and UAR, their mean, as a dashed line.
    A class without test clips has no bar and says so."""
    per_class = list(metrics["per_class"].values())
    recall = np.array([s["recall"] for s in per_class])  # (C,)
    support = [s["support"] for s in per_class]
    fig, ax = _figure(6.0, 1.2 + 0.35 * len(classes))
    rows = np.arange(len(classes))[::-1]  # the first class on top
    ax.barh(rows, 100 * recall, color="#6b8fd6")
    for row, r, n in zip(rows, recall, support):
        ax.text(100 * r + 1, row, f"{100 * r:.0f}% of {n}" if n else "no clips", va="center", fontsize=8)
    ax.axvline(100 * metrics["UAR"], color="#b00020", linestyle="--")
    ax.set_yticks(rows, classes)
    ax.set_xlim(0, 115)  # room for the text right of a full bar
    ax.set_xlabel(f"recall (%); dashed: UAR {100 * metrics['UAR']:.1f}%")
    ax.set_title(title)
    return _save(fig, path)


def save_reliability_png(labels: np.ndarray, probs: np.ndarray, path: str | Path, title: str,
                         n_bins: int = ECE_BINS) -> Path:
    """The reliability diagram of `probs` (n, C) against `labels` (n,): per ECE bin of top-1 confidence, the
    accuracy of its clips (bars) against the diagonal a calibrated model would follow, the bins' mean confidence
    (dots) and clip counts (at the bars' feet); ECE in the title. An empty bin has no bar."""
    bins = reliability_bins(labels, probs, n_bins)
    filled = bins["count"] > 0
    width = 1.0 / n_bins
    left = np.arange(n_bins) * width  # (n_bins,) each bin's lower edge
    fig, ax = _figure(5.0, 5.0)
    ax.bar(left[filled], bins["accuracy"][filled], width=width, align="edge", color="#6b8fd6", edgecolor="white",
           label="accuracy")
    ax.plot(bins["confidence"][filled], bins["accuracy"][filled], "o", color="#222", markersize=3,
            label="mean confidence")
    ax.plot([0, 1], [0, 1], color="#b00020", linestyle="--", linewidth=1, label="calibrated")
    for x, n in zip(left[filled], bins["count"][filled]):
        ax.text(x + width / 2, 0.01, str(n), ha="center", fontsize=6)  # at the foot: clear of the dots
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"top-1 confidence ({n_bins} bins; numbers: clips)")
    ax.set_ylabel("accuracy")
    # under the x axis, where it hides no bar (inside, it would for some model or other)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    ax.set_title(f"{title}\nECE {100 * expected_calibration_error(labels, probs, n_bins):.2f}%")
    return _save(fig, path)


def _figure(width: float, height: float):
    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
