"""A model over every split of a store's protocol: one run folder per split, the files each holds, and the
cross-validation summary. `dfer train` (the heads), `dfer probe` (the linear probe) and `dfer finetune` write their
run folders through here, so their splits, metrics and files cannot drift apart.

RUN/ is itself the run for a single split (`--fold 3`, official splits, `--fold none`); with `--fold all` under a
k-fold protocol each fold is RUN/foldK/ and RUN/summary.json + RUN/results.md hold the cross-validation figures.
Under `torchrun` the splits are spread over the ranks (the k-th to rank k % world, each trained alone into its own
folder), and rank 0 writes the summary once every rank has handed over its test metrics.

A run with test clips holds results.json (the test metrics) and the clip files `write_clip_files` writes (also
what `dfer evaluate --out` writes): predictions.csv (`dfer.train.predictions`), confusion.png, recall.png and
reliability.png (`dfer.train.plots`). A cross-validation pools its folds' predictions.csv into RUN/predictions.csv,
with the clip files of all its test clips at once beside it (each clip is tested in exactly one fold).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

import dfer
from dfer import distributed
from dfer.runs.files import write_json
from dfer.runs.report import folds_table, markdown_header, markdown_row, metrics_table
from dfer.store.reader import CacheReader, open_cache
from dfer.train.metrics import classification_metrics, summarise_folds
from dfer.train.plots import save_confusion_png, save_recall_png, save_reliability_png
from dfer.train.predictions import Predictions, pool, read_predictions, write_predictions
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
    metrics ({} without a test set). `model` names the rows ("ravdess av liquid", "ravdess av probe"). Every rank
    returns the same result; only rank 0 writes the summary or prints."""
    ranks = distributed.ranks()
    show = show and ranks.is_main
    reader = open_cache(store)
    splits, skipped = plan(reader, settings.fold, settings.modalities, settings.seed, settings.val_fraction)
    if show:
        for note in skipped:
            console.print(f"[yellow]{note}[/]")
    if not splits:
        raise ValueError(f"{store}: no split of fold {settings.fold!r} has both training and test clips")
    nested = len(splits) > 1 or (settings.fold == "all" and reader.attrs["protocol"]["kind"] == "kfold")
    folders = {split.name: Path(out) / split.name if nested else Path(out) for split in splits}
    mine = {split.name: run_split(reader, split, folders[split.name])
            for k, split in enumerate(splits) if k % ranks.world == ranks.rank}
    done = {name: metrics for shard in distributed.all_gather(mine) for name, metrics in shard.items()}  # all folds
    runs = {split.name: done[split.name] for split in splits}
    summary = None
    name, reported = f"{reader.attrs['dataset']} {settings.modalities} {model}", reported_metrics(reader)
    if nested and all(runs.values()):
        if ranks.is_main:  # the gather above waited for every rank's folders
            summary = write_folds_summary(Path(out), runs, name, reported, settings.to_dict(), show)
        summary = distributed.broadcast(summary)
    elif show and len(runs) == 1 and next(iter(runs.values())):
        (split, metrics), = runs.items()
        console.print(f"{name} {split} test: " + ", ".join(f"{key} {100 * metrics[key]:.2f}" for key in reported))
    return ProtocolResult(runs, folders, summary, skipped)


def run_config(reader: CacheReader, split: Split, **sections) -> dict:
    """A run's config.json: `sections` (the model's own: "model", "train", "heads", ...) and what every run records,
    the classes (the store's codes) and their display names, the dataset, the store's path and fingerprint, the
    split by clip id, and `clip_seconds`, the median length of the training clips' analysed spans: the window a
    `dfer predict --timeline` reads a long file in, so each window looks like what the model was trained on."""
    clip_ids = reader.read_all("clip_id").astype(str)
    spans = reader.read_all("span")[np.asarray(split.train, dtype=np.int64)]  # (n, 2) seconds
    return {
        "dfer_version": dfer.__version__,
        **sections,
        "clip_seconds": round(float(np.median(spans[:, 1] - spans[:, 0])), 3) if len(spans) else None,
        "classes": reader.classes,
        "display_names": reader.display_names,
        "dataset": reader.attrs["dataset"],
        "store": str(Path(reader.path).resolve()),
        "fingerprint": reader.fingerprint,
        "split": {"name": split.name, "notes": split.notes,
                  **{part: [str(clip_ids[i]) for i in getattr(split, part)] for part in ("train", "val", "test")}},
    }


def write_test_results(run: Path, reader: CacheReader, split: str, indices: Sequence[int], labels: np.ndarray,
                       probs: np.ndarray, title: str, show: bool = True, **extra) -> dict:
    """The test metrics of `probs` (n, C) against `labels` (n,) of the store rows `indices` (n,), plus `extra`
    (e.g. best_epoch), into RUN/results.json and the clip files (titled `title`); printed as a table when `show`.
    Returns the metrics."""
    metrics = {**classification_metrics(labels, probs, reader.classes, reader.display_names), **extra}
    write_json(run / "results.json", {"test": metrics, "split": split})
    write_clip_files(run, scored_clips(reader, indices, labels, probs, reader.display_names), metrics, title)
    if show:
        console.print(metrics_table(metrics, reader.display_names))
    return metrics


def scored_clips(reader: CacheReader, indices: Sequence[int], labels: np.ndarray, probs: np.ndarray,
                 names: list[str]) -> Predictions:
    """The predictions of the store rows `indices` (n,): their clip ids and speakers beside `labels` (n,) and
    `probs` (n, C), whose classes are called `names`."""
    rows = np.asarray(indices, dtype=np.int64)
    return Predictions(reader.read_all("clip_id").astype(str)[rows].tolist(),
                       reader.read_all("speaker").astype(str)[rows].tolist(), np.asarray(labels).astype(np.int64),
                       np.asarray(probs), names)


def write_clip_files(folder: Path, scored: Predictions, metrics: dict, title: str) -> None:
    """FOLDER/predictions.csv, confusion.png, recall.png and reliability.png of one evaluation (`metrics`, the
    `classification_metrics` of `scored`), named by the classes' display names."""
    folder.mkdir(parents=True, exist_ok=True)
    write_predictions(folder / "predictions.csv", scored)
    save_confusion_png(metrics["confusion"], scored.names, folder / "confusion.png", title)
    save_recall_png(metrics, scored.names, folder / "recall.png", title)
    save_reliability_png(scored.labels, scored.probs, folder / "reliability.png", title)


def write_folds_summary(out: Path, runs: dict[str, dict], name: str, reported: Sequence[str], config: dict,
                        show: bool = True) -> dict:
    """OUT/summary.json and OUT/results.md of a cross-validation (`runs`: fold name -> test metrics of the run in
    OUT/<fold name>), and the clip files of its pooled test clips; printed with the metrics the dataset's papers
    report (`reported`). Returns the `summarise_folds` summary."""
    summary = summarise_folds(list(runs.values()))
    write_json(out / "summary.json", {"folds": runs, "summary": summary, "config": config})
    (out / "results.md").write_text(markdown_header() + "\n" + markdown_row(name, summary) + "\n")
    pooled = pool([read_predictions(out / fold / "predictions.csv") for fold in runs])
    write_clip_files(out, pooled, classification_metrics(pooled.labels, pooled.probs, pooled.names),
                     f"{name}, {len(runs)} folds pooled")
    if show:
        console.print(folds_table(summary))
        console.print(f"{name}, {len(runs)} folds: " + ", ".join(
            f"{key} {100 * summary[key]['mean']:.2f} ± {100 * summary[key]['std']:.2f}" for key in reported))
    return summary
