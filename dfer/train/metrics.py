"""Evaluation metrics for one run and their summary over folds (docs/design.md, "Metrics").

Every value returned is a plain Python int/float/list/dict, so a run's metrics go straight into its results JSON.
Rates are fractions in [0, 1]; the report module turns them into the percentages DFER papers print.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

ECE_BINS = 15  # Guo et al. 2017 ("On calibration of modern neural networks") use 15 equal-width bins


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Top-1 confidence binned as ECE bins it: per bin (n_bins,) the clip count, accuracy and mean confidence
    (NaN where a bin is empty). The reliability diagram draws these; `expected_calibration_error` sums them.

    Bins are (k/n_bins, (k+1)/n_bins] as in Guo et al.; a confidence of exactly 0 goes to the first bin.
    """
    conf = probs.max(axis=1)  # (n,)
    correct = probs.argmax(axis=1) == labels  # (n,)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)  # (n,) bin index
    count = np.bincount(bins, minlength=n_bins)  # (n_bins,)
    with np.errstate(invalid="ignore"):  # 0 / 0 in an empty bin: NaN, "no clips"
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count  # (n_bins,)
        confidence = np.bincount(bins, weights=conf, minlength=n_bins) / count  # (n_bins,)
    return {"count": count, "accuracy": accuracy, "confidence": confidence}


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-1 ECE: sum over the `reliability_bins` of (bin share) * |accuracy - mean confidence|.

    scikit-learn has no ECE, hence this.
    """
    bins = reliability_bins(labels, probs, n_bins)
    filled = bins["count"] > 0
    share = bins["count"][filled] / bins["count"].sum()
    return float(np.sum(share * np.abs(bins["accuracy"][filled] - bins["confidence"][filled])))


def classification_metrics(labels: np.ndarray, probs: np.ndarray, classes: list[str],
                           names: list[str] | None = None) -> dict:
    """WAR, UAR, F1s, ECE, NLL, per-class scores and the confusion matrix of one evaluation.

    labels: (n,) int class indices; probs: (n, C) class probabilities (softmax outputs), C == len(classes).
    classes: the store's codes; names: their display names (`dfer.data.names`), the same order, by default the codes.

    WAR (weighted average recall) is plain accuracy. UAR (unweighted average recall) is the mean of the per-class
    recalls over the classes present in `labels`, the DFER literature's definition: a class with no test samples
    (e.g. in a small fold) has no recall to average, so it must not count as 0. macro_f1 is averaged over the same
    present classes for the same reason; weighted_f1 weights by support, so absent classes weigh nothing anyway.
    `per_class` and `confusion` cover all C classes (absent ones get support 0 and zero_division=0 scores).
    `per_class` is keyed by the display names, the words every table and plot shows, with each class's code beside
    its scores ({"fearful": {"code": "FEA", "precision": ...}}), in class order.
    """
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    n, n_classes = probs.shape
    names = list(classes) if names is None else list(names)
    if labels.shape != (n,) or n_classes != len(classes) or len(names) != len(classes):
        raise ValueError(f"labels {labels.shape} / probs {probs.shape} / {len(classes)} classes / {len(names)} names "
                         "do not match")
    preds = probs.argmax(axis=1)  # (n,)
    present = np.unique(labels).tolist()
    everything = list(range(n_classes))

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=everything, zero_division=0
    )
    p_true = np.clip(probs[np.arange(n), labels], 1e-12, None)  # (n,) floor keeps a confident miss finite
    return {
        "WAR": float(accuracy_score(labels, preds)),
        "UAR": float(recall_score(labels, preds, labels=present, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(labels, preds, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, preds, labels=everything, average="weighted", zero_division=0)),
        "ece": expected_calibration_error(labels, probs),
        "nll": float(-np.log(p_true).mean()),
        "per_class": {
            name: {"code": code, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, (code, name) in enumerate(zip(classes, names))
        },
        "confusion": confusion_matrix(labels, preds, labels=everything).astype(int).tolist(),  # (C, C), rows = true
        "n": int(n),
    }


def summarise_folds(results: list[dict], keys: Sequence[str] = ("WAR", "UAR", "macro_f1", "weighted_f1")) -> dict:
    """{key: {"mean", "std", "values"}} over the folds' metrics dicts, for the "mean ± std" of a k-fold protocol.

    std is the sample standard deviation (ddof=1), the spread one would expect of another fold split, and 0.0 for
    a single fold (where ddof=1 is undefined).
    """
    summary = {}
    for key in keys:
        values = [float(r[key]) for r in results]
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary[key] = {"mean": float(np.mean(values)), "std": std, "values": values}
    return summary
