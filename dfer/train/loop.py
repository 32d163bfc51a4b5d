"""One training run of the heads on one split: AdamW, warm-up + cosine, early stopping on a validation metric.

Reproducible by construction: every epoch reseeds the shuffling from (seed, epoch), and every batch reseeds the
randomness it is read (augmented) and trained with, dropout and modality dropout included, from (seed, epoch, its
index in the epoch). So a run resumed after epoch e continues exactly as if it had never stopped, and ranks that
share an epoch's batches (`ranks`, under DistributedDataParallel) draw what one process would for the same batch.
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Subset, WeightedRandomSampler
from torch.utils.tensorboard import SummaryWriter

from dfer import distributed
from dfer.distributed import ALONE, Ranks
from dfer.heads import DferHeads
from dfer.train import checkpoint
from dfer.train.config import TrainConfig
from dfer.train.data import CachedClips, collate, to_device
from dfer.train.metrics import classification_metrics

LOG_FIELDS = ["epoch", "train_loss", "val_loss", "val_WAR", "val_UAR", "lr", "steps_per_s", "seconds"]


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and class probabilities (n, C) over a loader, in its order."""
    model.eval()
    labels, probs = [], []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device):
            logits = model(batch)["logits"]
        probs.append(logits.float().softmax(-1).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
    return np.concatenate(labels), np.concatenate(probs)


def loader_for(dataset: CachedClips, cfg: TrainConfig, batch_sampler=None, generator=None) -> DataLoader:
    """`dataset` in order, `cfg.batch_size` clips at a time (the last batch may be smaller), or `batch_sampler`'s."""
    batching = {"batch_sampler": batch_sampler} if batch_sampler is not None else {"batch_size": cfg.batch_size}
    return DataLoader(dataset, **batching, generator=generator, num_workers=cfg.workers, collate_fn=collate,
                      persistent_workers=cfg.workers > 0)


class RankBatches:
    """Batch j of an epoch's `batches` goes to rank j % world: the ranks' shards are disjoint, cover the epoch, and
    each holds every world-th batch of the order one process would draw (every rank draws it from the same seed)."""

    def __init__(self, batches: BatchSampler, ranks: Ranks):
        self.batches, self.ranks = batches, ranks

    def __iter__(self):
        for j, batch in enumerate(self.batches):
            if j % self.ranks.world == self.ranks.rank:
                yield batch

    def __len__(self) -> int:
        return len(range(self.ranks.rank, len(self.batches), self.ranks.world))


def predict_shared(model: torch.nn.Module, dataset: CachedClips, cfg: TrainConfig, device: torch.device,
                   ranks: Ranks = ALONE) -> tuple[np.ndarray, np.ndarray]:
    """`predict` over `dataset` with each rank scoring every world-th clip; every rank gets all, in dataset order."""
    n, world = len(dataset), ranks.world
    if world == 1 or n < world:
        return predict(model, loader_for(dataset, cfg), device)
    mine = predict(model, loader_for(Subset(dataset, range(ranks.rank, n, world)), cfg), device)
    shards = distributed.all_gather(mine)  # [(labels (n_r,), probs (n_r, C))] in rank order
    rows = np.argsort(np.concatenate([np.arange(r, n, world) for r in range(world)]))  # (n,) gathered row of each clip
    labels, probs = (np.concatenate([shard[k] for shard in shards])[rows] for k in (0, 1))  # (n,), (n, C)
    return labels, probs


def batch_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 100_003 + epoch) * 1_000_003 + index


def fit(model: DferHeads, train: CachedClips, val: CachedClips | None, cfg: TrainConfig, run: Path,
        classes: list[str], resume: bool = False, progress=None, *, param_groups: list[dict] | None = None,
        accumulate: int = 1, save: Callable[[str], None] | None = None, keep_resume: bool = True,
        ranks: Ranks = ALONE) -> dict:
    """Train, keep the best checkpoint by validation `select_metric` (or the last one without validation).

    Stage 3 (`dfer.finetune`) reuses this loop with: `param_groups` (AdamW groups with their own `lr`, e.g.
    layer-wise decay; default: one group of every parameter at `cfg.lr`), `accumulate` (batches per optimizer
    step), `save(kind)` writing the "best" / "last" weights (default: the model's state dict to
    RUN/{kind}.safetensors), `keep_resume=False` (no per-epoch optimizer state for `--resume`) and `ranks` (the
    processes training this one model: DistributedDataParallel, see below; default alone).

    With W ranks, `cfg.batch_size` is each rank's batch: rank r trains on batches r, r + W, ... of the epoch's order,
    an optimizer step averages the gradients of accumulate x W batches, and the steps, learning rates and logged
    losses are those of one process with `accumulate` x W. Only rank 0 writes (log, TensorBoard, checkpoints) and
    reports `progress`. What still differs from one process: a buffer the forward updates (the heads' input
    statistics in stage 3) follows rank 0's batches only, as BatchNorm's running statistics do under DDP.
    """
    device = distributed.local_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    model.to(device)
    labels = np.array([int(train.reader.read("label", i)) for i in train.indices]) if train.memory is None \
        else train.memory["label"].astype(int)
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float64)
    class_weight = None
    generator = torch.Generator()
    if cfg.balance == "loss":
        class_weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(classes), dtype=torch.float32, device=device)
    if cfg.balance == "sampler":
        sampler = WeightedRandomSampler((1.0 / np.maximum(counts, 1))[labels], len(labels), generator=generator)
    else:
        sampler = RandomSampler(train, generator=generator)
    batches = BatchSampler(sampler, cfg.batch_size, drop_last=False)  # the epoch's batches, the same on every rank
    train_loader = loader_for(train, cfg, RankBatches(batches, ranks), generator)
    validate = val is not None and len(val) > 0
    world, per_step = ranks.world, accumulate * ranks.world  # batches per optimizer step, over all ranks
    if len(batches) < world:
        raise ValueError(f"{len(train)} training clips make {len(batches)} batches of {cfg.batch_size}, fewer than "
                         f"the {world} ranks: lower --batch-size or run fewer ranks")
    steps = -(-len(batches) // per_step)  # optimizer steps per epoch, the same on every rank
    # A rank one batch short of the others' last step repeats its last batch at weight 0 (a None below), so that
    # every rank takes part in every gradient all-reduce and optimizer step.
    padding = max(0, (steps - 1) * accumulate + 1 - len(train_loader))
    micro_batches = len(train_loader) + padding
    net = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True)  # a clip without a stream, or its modality dropped, leaves weights unused

    main = ranks.is_main
    save = save or (lambda kind: checkpoint.save_weights(model, run / f"{kind}.safetensors"))
    optimizer = torch.optim.AdamW(param_groups or model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps  # optimizer steps
    warmup = max(1, int(cfg.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "stale": 0}
    if resume and (run / "resume.json").exists():
        model.load_state_dict(checkpoint.load_weights(run / "last.safetensors", device))
        state = checkpoint.load_resume(run, optimizer, scheduler)
    elif main and (not resume or not (run / "log.csv").exists()):
        with open(run / "log.csv", "w", newline="") as file:
            csv.writer(file).writerow(LOG_FIELDS)
    writer = SummaryWriter(str(run / "tensorboard")) if main else None

    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["stale"] >= cfg.patience:
            break
        generator.manual_seed(cfg.seed * 100_003 + epoch)
        started, losses = time.perf_counter(), []
        model.train()
        optimizer.zero_grad(set_to_none=True)
        # The RNG is seeded for batch j of the epoch just before this rank reads it, so its augmentation (when read
        # here, without workers), dropout and crops draw from (seed, epoch, j) alone, whichever rank trains it.
        torch.manual_seed(batch_seed(cfg.seed, epoch, ranks.rank))
        batch = None
        for i, loaded in enumerate(itertools.chain(train_loader, itertools.repeat(None, padding))):
            weight = 0.0 if loaded is None else 1.0
            batch = batch if loaded is None else to_device(loaded, device)
            in_step = min(per_step, len(batches) - i // accumulate * per_step)  # batches in this step, all ranks
            last = (i + 1) % accumulate == 0 or i + 1 == micro_batches  # this rank's last batch of the step
            with net.no_sync() if world > 1 and not last else nullcontext():
                with autocast(device):
                    logits = net(batch)["logits"]
                loss = F.cross_entropy(logits.float(), batch["label"], weight=class_weight,
                                       label_smoothing=cfg.label_smoothing)
                (loss * (weight * world / in_step)).backward()  # DDP averages over the W ranks: a mean over the step
            if last:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if loaded is not None:
                losses.append(loss.item())
                if progress and main:
                    progress.step(epoch, loss=losses[-1])
            torch.manual_seed(batch_seed(cfg.seed, epoch, (i + 1) * world + ranks.rank))  # this rank's next batch
        if world > 1:
            losses = [x for shard in distributed.all_gather(losses) for x in shard]  # every batch of the epoch
            distributed.broadcast_buffers(model)  # every rank validates (and rank 0 saves) the same model
        seconds = time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
               "steps_per_s": len(losses) / seconds, "seconds": seconds, "val_loss": "", "val_WAR": "", "val_UAR": ""}
        if validate:
            y, p = predict_shared(model, val, cfg, device, ranks)
            metrics = classification_metrics(y, p, classes)
            row.update(val_loss=metrics["nll"], val_WAR=metrics["WAR"], val_UAR=metrics["UAR"])
            improved = metrics[cfg.select_metric] > state["best_score"]
        else:
            improved = True  # no validation: the latest epoch is the one we keep
        if improved:
            state.update(best_score=metrics[cfg.select_metric] if validate else -1.0, best_epoch=epoch, stale=0)
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        if not main:
            continue
        if improved:
            save("best")
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
    if main:
        writer.close()
    return state

