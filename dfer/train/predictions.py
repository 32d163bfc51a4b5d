"""predictions.csv: what a model said about each clip it scored, for error analysis beyond the summary metrics.

One row per clip, in the order scored; the header is

    clip_id,speaker,label,prediction,p_<name 1>,...,p_<name C>

`label` (the true class) and `prediction` (the most probable class) are display names (`dfer.data.names`), and the
C probability columns follow the classes' order, each `p_` + its display name (the prefix keeps a class called
"label" or "speaker", possible in a manifest, from clashing with the fixed columns). Probabilities are written with
9 significant digits, which round-trips float32 exactly: the CSV's argmax is the recorded prediction and its
accuracy the run's WAR. `pandas.read_csv` reads it as it is; `read_predictions` gives the arrays back.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIXED = ["clip_id", "speaker", "label", "prediction"]
PROB = "p_"  # prefix of the probability columns


@dataclass
class Predictions:
    clip_ids: list[str]  # (n,)
    speakers: list[str]  # (n,)
    labels: np.ndarray  # (n,) int true class indices
    probs: np.ndarray  # (n, C) class probabilities
    names: list[str]  # (C,) the classes' display names

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"class names must be unique to name the probability columns: {self.names}")


def write_predictions(path: Path, predictions: Predictions) -> Path:
    p = predictions
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(FIXED + [PROB + name for name in p.names])
        for clip_id, speaker, label, probs in zip(p.clip_ids, p.speakers, p.labels, p.probs, strict=True):
            writer.writerow([clip_id, speaker, p.names[label], p.names[int(probs.argmax())],
                             *(f"{x:.9g}" for x in probs)])
    return Path(path)


def read_predictions(path: Path) -> Predictions:
    with open(path, newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    if header[: len(FIXED)] != FIXED or not all(column.startswith(PROB) for column in header[len(FIXED):]):
        raise ValueError(f"{path}: not a predictions.csv (header {header})")
    names = [column[len(PROB):] for column in header[len(FIXED):]]
    index = {name: i for i, name in enumerate(names)}
    probs = np.array([[float(x) for x in row[len(FIXED):]] for row in rows], dtype=np.float64).reshape(-1, len(names))
    return Predictions([row[0] for row in rows], [row[1] for row in rows],
                       np.array([index[row[2]] for row in rows], dtype=np.int64), probs, names)


def pool(parts: list[Predictions]) -> Predictions:
    """The rows of several evaluations with the same classes (a cross-validation's folds) as one."""
    names = parts[0].names
    if any(part.names != names for part in parts):
        raise ValueError("cannot pool predictions over different classes")
    return Predictions([c for part in parts for c in part.clip_ids], [s for part in parts for s in part.speakers],
                       np.concatenate([part.labels for part in parts]),
                       np.concatenate([part.probs for part in parts]), names)
