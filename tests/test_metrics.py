"""Metrics against scikit-learn and hand computations; report outputs (PNG, tables, markdown) are well formed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from sklearn.metrics import (balanced_accuracy_score, classification_report, confusion_matrix, f1_score, log_loss)

from dfer.train.metrics import (ECE_BINS, classification_metrics, expected_calibration_error, reliability_bins,
                                summarise_folds)
from dfer.runs.report import folds_table, markdown_header, markdown_row, metrics_table
from dfer.train.plots import save_confusion_png, save_recall_png, save_reliability_png

CLASSES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


def one_hot(preds: list[int], n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[preds]  # (n, C)


def random_case(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), labels] += 1.0  # better than chance, so every class is also predicted
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def test_agrees_with_sklearn_and_is_json():
    labels, probs = random_case()
    preds = probs.argmax(axis=1)
    m = classification_metrics(labels, probs, CLASSES)
    assert m["WAR"] == pytest.approx(np.mean(preds == labels))
    assert m["UAR"] == pytest.approx(balanced_accuracy_score(labels, preds))  # all classes present here
    assert m["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(labels, preds, average="weighted"))
    assert m["nll"] == pytest.approx(log_loss(labels, probs))
    assert m["confusion"] == confusion_matrix(labels, preds).tolist()
    report = classification_report(labels, preds, target_names=CLASSES, output_dict=True)
    for name in CLASSES:
        for key, sk_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert m["per_class"][name][key] == pytest.approx(report[name][sk_key])
        assert m["per_class"][name]["support"] == report[name]["support"]
    assert m["n"] == len(labels)
    assert json.loads(json.dumps(m)) == m  # plain JSON-able values only


def test_war_uar_by_hand_and_absent_class():
    # 4 of class 0 all right, 2 of class 1 half right: WAR = 5/6, UAR = (1 + 1/2) / 2 = 3/4
    labels = np.array([0, 0, 0, 0, 1, 1])
    m = classification_metrics(labels, one_hot([0, 0, 0, 0, 0, 1], 2), ["a", "b"])
    assert m["WAR"] == pytest.approx(5 / 6)
    assert m["UAR"] == pytest.approx(3 / 4)
    # a third class with no samples (and never predicted) must not count as a recall of 0
    m3 = classification_metrics(labels, one_hot([0, 0, 0, 0, 0, 1], 3), ["a", "b", "c"])
    assert m3["UAR"] == pytest.approx(3 / 4)
    assert m3["macro_f1"] == pytest.approx(m["macro_f1"])
    assert m3["per_class"]["c"] == {"code": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m3["confusion"] == [[4, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_per_class_is_keyed_by_display_name_with_the_code_beside():
    labels = np.array([0, 0, 1, 1])
    m = classification_metrics(labels, one_hot([0, 1, 1, 1], 2), ["FEA", "HAP"], ["fearful", "happy"])
    assert list(m["per_class"]) == ["fearful", "happy"]  # class order kept
    assert m["per_class"]["fearful"] == {"code": "FEA", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                         "support": 2}
    with pytest.raises(ValueError, match="names"):
        classification_metrics(labels, one_hot([0, 1, 1, 1], 2), ["FEA", "HAP"], ["fearful"])


def test_ece():
    labels = np.array([0, 1, 2, 0])
    assert classification_metrics(labels, one_hot(labels.tolist(), 3), ["a", "b", "c"])["ece"] == 0.0
    # confidences 0.9 (right), 0.62 (wrong), 0.7 (right), 0.72 (wrong); 0.7 and 0.72 share bin (10/15, 11/15]
    probs = np.array([[0.9, 0.1], [0.62, 0.38], [0.3, 0.7], [0.72, 0.28]])
    labels = np.array([0, 1, 1, 1])
    expected = 0.25 * 0.1 + 0.25 * 0.62 + 0.5 * abs(0.5 - 0.71)
    assert classification_metrics(labels, probs, ["a", "b"])["ece"] == pytest.approx(expected)


def test_reliability_bins_are_the_ece_s():
    labels, probs = random_case()
    bins = reliability_bins(labels, probs)
    assert bins["count"].shape == (ECE_BINS,) and bins["count"].sum() == len(labels)
    filled = bins["count"] > 0
    assert np.isnan(bins["accuracy"][~filled]).all() and np.isnan(bins["confidence"][~filled]).all()
    conf, correct = probs.max(1), probs.argmax(1) == labels
    low = (conf > 5 / 15) & (conf <= 6 / 15)  # bin 5 by hand
    assert bins["count"][5] == low.sum() and bins["accuracy"][5] == pytest.approx(correct[low].mean())
    ece = sum(n / len(labels) * abs(a - c) for n, a, c in zip(*bins.values()) if n)
    assert expected_calibration_error(labels, probs) == pytest.approx(ece)


def test_recall_and_reliability_pngs(tmp_path):
    labels, probs = random_case()
    m = classification_metrics(labels, probs, CLASSES)
    absent = classification_metrics(np.array([0, 0, 1]), one_hot([0, 1, 1], 3), ["a", "b", "c"])  # c: no clips
    for path in (save_recall_png(m, CLASSES, tmp_path / "recall.png", "fold 1"),
                 save_recall_png(absent, ["a", "b", "c"], tmp_path / "absent.png", "a class with no clips"),
                 save_reliability_png(labels, probs, tmp_path / "reliability.png", "fold 1")):
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.verify()


def test_confusion_png(tmp_path):
    labels, probs = random_case()
    m = classification_metrics(labels, probs, CLASSES)
    path = save_confusion_png(m["confusion"], CLASSES, tmp_path / "sub" / "cm.png", "test fold 1")
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    save_confusion_png([[0, 0], [1, 1]], ["a", "b"], tmp_path / "empty_row.png", "a class with no samples")


def test_summarise_folds():
    folds = [{"WAR": 0.5, "UAR": 0.4}, {"WAR": 0.7, "UAR": 0.6}, {"WAR": 0.6, "UAR": 0.5}]
    s = summarise_folds(folds, keys=("WAR", "UAR"))
    assert s["WAR"]["mean"] == pytest.approx(0.6)
    assert s["WAR"]["std"] == pytest.approx(0.1)  # sample std: sqrt((0.01 + 0.01 + 0) / 2)
    assert s["UAR"]["values"] == [0.4, 0.6, 0.5]
    assert summarise_folds(folds[:1], keys=("WAR",))["WAR"] == {"mean": 0.5, "std": 0.0, "values": [0.5]}


def test_tables_and_markdown():
    labels, probs = random_case()
    m = classification_metrics(labels, probs, CLASSES)
    s = summarise_folds([m, classification_metrics(*random_case(seed=1), CLASSES)])
    console = Console(record=True, width=120)
    console.print(metrics_table(m))
    console.print(folds_table(s))
    console.print(metrics_table(m, [f"word{i}" for i in range(len(CLASSES))]))  # rows named by display names
    text = console.export_text()
    assert "UAR" in text and "disgust" in text and " ± " in text and "word6" in text

    extra = {"fusion": "liquid", "command": "dfer train a|b"}
    header = markdown_header(list(extra))
    assert header.splitlines() == [
        "| name | WAR (%) | UAR (%) | macro-F1 (%) | weighted-F1 (%) | fusion | command |",
        "|---|---|---|---|---|---|---|",
    ]
    row = markdown_row("mafw", s, extra)
    war = s["WAR"]
    assert row.startswith(f"| mafw | {100 * war['mean']:.2f} ± {100 * war['std']:.2f} | ")
    assert row.endswith(r"| liquid | dfer train a\|b |")
    single = markdown_row("one split", m, {})
    assert single == "| one split | " + " | ".join(f"{100 * m[k]:.2f}" for k in
                                                   ("WAR", "UAR", "macro_f1", "weighted_f1")) + " |"
