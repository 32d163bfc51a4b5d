"""`dfer train`: every split of the protocol, one run folder each, and the mean ± std the papers report.

RUN/ is itself the run for a single split (`--fold 3`, official splits, `--fold none`); with `--fold all` under a
k-fold protocol each fold is RUN/foldK/ and RUN/summary.json + RUN/results.md hold the cross-validation figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

import dfer
from dfer.heads import DferHeads
from dfer.store.reader import CacheReader, open_cache
from dfer.train import checkpoint
from dfer.train.config import TrainConfig, head_config
from dfer.train.data import CachedClips, token_statistics
from dfer.train.loop import fit, loader_for, predict
from dfer.train.metrics import classification_metrics
from dfer.train.progress import TrainProgress
from dfer.train.report import metrics_table, save_confusion_png, write_folds_summary
from dfer.train.splits import Split, plan

console = Console()


@dataclass
class TrainResult:
    runs: dict[str, dict]  # split name -> test metrics (empty without a test set)
    summary: dict | None  # mean ± std over folds, when there are several


def train(store: Path, out: Path, cfg: TrainConfig, resume: bool = False, show: bool = True) -> TrainResult:
    reader = open_cache(store)
    splits, skipped = plan(reader, cfg.fold, cfg.modalities, cfg.seed, cfg.val_fraction)
    for note in skipped:
        console.print(f"[yellow]{note}[/]")
    if not splits:
        raise ValueError(f"{store}: no split of fold {cfg.fold!r} has both training and test clips")
    nested = len(splits) > 1 or (cfg.fold == "all" and reader.attrs["protocol"]["kind"] == "kfold")
    runs = {}
    for split in splits:
        run = Path(out) / split.name if nested else Path(out)
        runs[split.name] = _train_split(reader, split, run, cfg, resume, show)
    summary = None
    reported = reader.attrs["protocol"].get("report", ["WAR", "UAR"])  # what the dataset's papers report
    if nested and all(runs.values()):
        name = f"{reader.attrs['dataset']} {cfg.modalities} {cfg.fusion}"
        summary = write_folds_summary(Path(out), runs, name, reported, cfg.to_dict(), show)
    elif show and len(runs) == 1 and next(iter(runs.values())):
        (split, metrics), = runs.items()
        console.print(f"{reader.attrs['dataset']} {split} test: " + ", ".join(
            f"{key} {100 * metrics[key]:.2f}" for key in reported))
    return TrainResult(runs, summary)


def _train_split(reader: CacheReader, split: Split, run: Path, cfg: TrainConfig, resume: bool, show: bool) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    classes = reader.classes
    heads_config = head_config(reader.fingerprint, classes, cfg)
    clip_ids = reader.read_all("clip_id").astype(str)
    config = {
        "dfer_version": dfer.__version__,
        "train": cfg.to_dict(),
        "heads": heads_config.to_dict(),
        "classes": classes,
        "dataset": reader.attrs["dataset"],
        "store": str(Path(reader.path).resolve()),
        "fingerprint": reader.fingerprint,
        "split": {"name": split.name, "notes": split.notes,
                  **{part: [str(clip_ids[i]) for i in getattr(split, part)] for part in ("train", "val", "test")}},
    }
    if resume and (run / "config.json").exists():
        previous = json.loads((run / "config.json").read_text())
        if previous["split"] != config["split"] or previous["heads"] != config["heads"]:
            raise ValueError(f"{run}: --resume needs the same store, split and heads as the run it continues")
    checkpoint.write_json(run / "config.json", config)
    if show:
        console.print(f"[bold]{run}[/]: {len(split.train)} train, {len(split.val)} val, {len(split.test)} test clips")
        for note in split.notes:
            console.print(f"  {note}")

    torch.manual_seed(cfg.seed)  # the same seed builds the same initial heads
    model = DferHeads(heads_config)
    for stream, (mean, std) in token_statistics(reader, split.train, cfg.modalities).items():
        model.set_input_statistics(stream, mean, std)
    datasets = {part: CachedClips(reader, getattr(split, part), cfg.modalities, cfg.in_memory)
                for part in ("train", "val", "test")}
    steps = cfg.epochs * -(-len(split.train) // cfg.batch_size)
    with TrainProgress(split.name, steps, enabled=show) as progress:
        state = fit(model, datasets["train"], datasets["val"], cfg, run, classes, resume, progress)
    if not split.test:
        return {}
    model, _ = checkpoint.load_run(run, "best", cfg.device)
    labels, probs = predict(model, loader_for(datasets["test"], cfg), torch.device(cfg.device))
    metrics = classification_metrics(labels, probs, classes)
    metrics["best_epoch"] = state["best_epoch"]
    checkpoint.write_json(run / "results.json", {"test": metrics, "split": split.name})
    save_confusion_png(metrics["confusion"], classes, run / "confusion.png", f"{reader.attrs['dataset']} {split.name}")
    if show:
        console.print(metrics_table(metrics))
    return metrics
