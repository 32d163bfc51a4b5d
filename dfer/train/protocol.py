"""A model over every split of a store's protocol: one run folder per split, the files each holds, and the
cross-validation summary. `dfer train` (the heads), `dfer probe` (the linear probe) and `dfer finetune` write their
run folders through here, so their splits, metrics and files cannot drift apart.

RUN/ is itself the run for a single split (`--fold 3`, official splits, `--fold none`); with `--fold all` under a
k-fold protocol each fold is RUN/foldK/ and RUN/summary.json + RUN/results.md hold the cross-validation figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

import dfer
from dfer.store.reader import CacheReader, open_cache
from dfer.train.checkpoint import write_json
from dfer.train.metrics import classification_metrics
from dfer.train.report import metrics_table, save_confusion_png, write_folds_summary
from dfer.train.splits import Split, plan

console = Console()


@dataclass
class ProtocolResult:
    runs: dict[str, dict]  # split name -> test metrics (empty without a test set)
    folders: dict[str, Path]  # split name -> its run folder
    summary: dict | None  # mean ± std over folds, when there are several
    skipped: list[str]  # notes on folds the store has no clips for


def reported_metrics(reader: CacheReader) -> list[str]:
    """What the dataset's papers report (RAVDESS WAR and UAR, MELD weighted F1), as the store's protocol says."""
    return reader.attrs["protocol"].get("report", ["WAR", "UAR"])


def run_protocol(store: Path, out: Path, settings, model: str,
                 run_split: Callable[[CacheReader, Split, Path], dict], show: bool = True) -> ProtocolResult:
    """Plan the splits of `settings` (a TrainConfig or ProbeConfig: fold, modalities, seed, val_fraction, to_dict)
    and call `run_split(reader, split, folder)` for each, which writes that split's run folder and returns its test
    metrics ({} without a test set). `model` names the rows ("ravdess av liquid", "ravdess av probe")."""
    reader = open_cache(store)
    splits, skipped = plan(reader, settings.fold, settings.modalities, settings.seed, settings.val_fraction)
    if show:
        for note in skipped:
            console.print(f"[yellow]{note}[/]")
    if not splits:
        raise ValueError(f"{store}: no split of fold {settings.fold!r} has both training and test clips")
    nested = len(splits) > 1 or (settings.fold == "all" and reader.attrs["protocol"]["kind"] == "kfold")
    folders = {split.name: Path(out) / split.name if nested else Path(out) for split in splits}
    runs = {split.name: run_split(reader, split, folders[split.name]) for split in splits}
    summary = None
    name, reported = f"{reader.attrs['dataset']} {settings.modalities} {model}", reported_metrics(reader)
    if nested and all(runs.values()):
        summary = write_folds_summary(Path(out), runs, name, reported, settings.to_dict(), show)
    elif show and len(runs) == 1 and next(iter(runs.values())):
        (split, metrics), = runs.items()
        console.print(f"{name} {split} test: " + ", ".join(f"{key} {100 * metrics[key]:.2f}" for key in reported))
    return ProtocolResult(runs, folders, summary, skipped)


def run_config(reader: CacheReader, split: Split, **sections) -> dict:
    """A run's config.json: `sections` (the model's own: "model", "train", "heads", ...) and what every run records,
    the classes, the dataset, the store's path and fingerprint, and the split by clip id."""
    clip_ids = reader.read_all("clip_id").astype(str)
    return {
        "dfer_version": dfer.__version__,
        **sections,
        "classes": reader.classes,
        "dataset": reader.attrs["dataset"],
        "store": str(Path(reader.path).resolve()),
        "fingerprint": reader.fingerprint,
        "split": {"name": split.name, "notes": split.notes,
                  **{part: [str(clip_ids[i]) for i in getattr(split, part)] for part in ("train", "val", "test")}},
    }


def write_test_results(run: Path, reader: CacheReader, split: str, labels: np.ndarray, probs: np.ndarray,
                       title: str, show: bool = True, **extra) -> dict:
    """The test metrics of `probs` (n, C) against `labels` (n,), plus `extra` (e.g. best_epoch), into
    RUN/results.json and RUN/confusion.png (titled `title`); printed as a table when `show`. Returns the metrics."""
    metrics = {**classification_metrics(labels, probs, reader.classes), **extra}
    write_json(run / "results.json", {"test": metrics, "split": split})
    save_confusion_png(metrics["confusion"], reader.classes, run / "confusion.png", title)
    if show:
        console.print(metrics_table(metrics))
    return metrics
