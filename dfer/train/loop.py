"""One training run of the heads on one split: AdamW, warm-up + cosine, early stopping on a validation metric.

Reproducible by construction: every epoch reseeds the shuffling, the dropout and the modality dropout from
(seed, epoch), so a run resumed after epoch e continues exactly as if it had never stopped.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter

from dfer.heads import DferHeads
from dfer.train import checkpoint
from dfer.train.config import TrainConfig
from dfer.train.data import CachedClips, EpochOrder, ResidentClips, to_device
from dfer.train.metrics import classification_metrics

Clips = CachedClips | ResidentClips  # from the store, or resident on the device: `batches` either way
LOG_FIELDS = ["epoch", "train_loss", "val_loss", "val_WAR", "val_UAR", "lr", "steps_per_s", "seconds"]


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and class probabilities (n, C) over a loader (`loader_for`), in its order."""
    model.eval()
    labels, probs = [], []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device):
            logits = model(batch)["logits"]
        probs.append(logits.float().softmax(-1).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
    return np.concatenate(labels), np.concatenate(probs)


def loader_for(dataset: Clips, cfg: TrainConfig, order: EpochOrder | None = None):
    """The batches of `dataset` in `order` (default: as listed), `cfg.batch_size` at a time, for `to_device`."""
    return dataset.batches(order or EpochOrder(len(dataset)), cfg.batch_size, cfg.workers)


def fit(model: DferHeads, train: Clips, val: Clips | None, cfg: TrainConfig, run: Path,
        classes: list[str], resume: bool = False, progress=None, *, param_groups: list[dict] | None = None,
        accumulate: int = 1, save: Callable[[str], None] | None = None, keep_resume: bool = True) -> dict:
    """Train, keep the best checkpoint by validation `select_metric` (or the last one without validation).

    Stage 3 (`dfer.finetune`) reuses this loop with: `param_groups` (AdamW groups with their own `lr`, e.g.
    layer-wise decay; default: one group of every parameter at `cfg.lr`), `accumulate` (batches per optimizer
    step), `save(kind)` writing the "best" / "last" weights (default: the model's state dict to
    RUN/{kind}.safetensors) and `keep_resume=False` (no per-epoch optimizer state for `--resume`).
    """
    device = torch.device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    model.to(device)
    labels = train.labels  # (n,)
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float64)
    class_weight = None
    generator = torch.Generator()
    if cfg.balance == "loss":
        class_weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(classes), dtype=torch.float32, device=device)
    weights = (1.0 / np.maximum(counts, 1))[labels] if cfg.balance == "sampler" else None  # (n,)
    train_loader = loader_for(train, cfg, EpochOrder(len(train), generator, weights))  # shuffled: reseeded per epoch
    val_loader = loader_for(val, cfg) if val is not None and len(val) else None

    save = save or (lambda kind: checkpoint.save_weights(model, run / f"{kind}.safetensors"))
    optimizer = torch.optim.AdamW(param_groups or model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * -(-len(train_loader) // accumulate)  # optimizer steps
    warmup = max(1, int(cfg.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "stale": 0}
    if resume and (run / "resume.json").exists():
        model.load_state_dict(checkpoint.load_weights(run / "last.safetensors", device))
        state = checkpoint.load_resume(run, optimizer, scheduler)
    elif not resume or not (run / "log.csv").exists():
        with open(run / "log.csv", "w", newline="") as file:
            csv.writer(file).writerow(LOG_FIELDS)
    writer = SummaryWriter(str(run / "tensorboard"))

    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["stale"] >= cfg.patience:
            break
        generator.manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        started, losses = time.perf_counter(), []
        model.train()
        optimizer.zero_grad(set_to_none=True)
        for step, batch in enumerate(train_loader):
            batch = to_device(batch, device)
            with autocast(device):
                logits = model(batch)["logits"]
            loss = F.cross_entropy(logits.float(), batch["label"], weight=class_weight,
                                   label_smoothing=cfg.label_smoothing)
            group = min(accumulate, len(train_loader) - step // accumulate * accumulate)  # batches in this step
            (loss / group).backward()
            if (step + 1) % accumulate == 0 or step + 1 == len(train_loader):
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if progress:
                progress.step(epoch, loss=losses[-1])
        seconds = time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
               "steps_per_s": len(losses) / seconds, "seconds": seconds, "val_loss": "", "val_WAR": "", "val_UAR": ""}
        if val_loader is not None:
            y, p = predict(model, val_loader, device)
            metrics = classification_metrics(y, p, classes)
            row.update(val_loss=metrics["nll"], val_WAR=metrics["WAR"], val_UAR=metrics["UAR"])
            improved = metrics[cfg.select_metric] > state["best_score"]
        else:
            improved = True  # no validation: the latest epoch is the one we keep
        if improved:
            state.update(best_score=metrics[cfg.select_metric] if val_loader is not None else -1.0, best_epoch=epoch,
                         stale=0)
            save("best")
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        save("last")
        if keep_resume:
            checkpoint.save_resume(run, optimizer, scheduler, state)
        with open(run / "log.csv", "a", newline="") as file:
            csv.DictWriter(file, LOG_FIELDS).writerow(row)
        for key in ("train_loss", "val_loss", "val_UAR", "val_WAR", "lr"):
            if row[key] != "":
                writer.add_scalar(key, row[key], epoch)
        if progress:
            progress.epoch_done(row)
    writer.close()
    return state
