"""One training run of the heads on one split: AdamW, warm-up + cosine, early stopping on a validation metric.

Reproducible by construction: every epoch reseeds the shuffling from (seed, epoch), and the randomness batches are
read (augmented) and trained with, dropout and modality dropout included, from (seed, epoch) too. When an optimizer
step spans several batches (`accumulate`, or ranks sharing an epoch's batches under DistributedDataParallel), every
batch is reseeded from (seed, epoch, its index in the epoch) instead, so it draws what it would in one process with
the same step. So a run resumed after epoch e continues exactly as if it had never stopped, and W ranks with
`accumulate` A train as one process with A x W.
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

from dfer import distributed
from dfer.distributed import ALONE, Ranks
from dfer.extras import installed
from dfer.heads import DferHeads
from dfer.host_memory import keep_freed_memory
from dfer.inference.batch import to_device
from dfer.inference.score import autocast, predict
from dfer.runs.files import load_weights, save_weights
from dfer.train import checkpoint
from dfer.train.config import TrainConfig
from dfer.train.data import CachedClips, EpochBatches, EpochOrder, ResidentClips
from dfer.train.metrics import classification_metrics

Clips = CachedClips | ResidentClips  # from the store, or resident on the device: `batches` either way
LOG_FIELDS = ["epoch", "train_loss", "val_loss", "val_WAR", "val_UAR", "lr", "steps_per_s", "seconds"]


def loader_for(dataset: Clips, cfg: TrainConfig, order: EpochOrder | None = None, ranks: Ranks = ALONE):
    """The batches of `dataset` in `order` (default: as listed), `cfg.batch_size` at a time, for `to_device`; with
    `ranks`, this rank's share of them (`dfer.train.data.EpochBatches`)."""
    return dataset.batches(order or EpochOrder(len(dataset)), cfg.batch_size, cfg.workers, ranks)


def predict_shared(model: torch.nn.Module, dataset: Clips, cfg: TrainConfig, device: torch.device,
                   ranks: Ranks = ALONE) -> tuple[np.ndarray, np.ndarray]:
    """`predict` over `dataset` with each rank scoring every world-th batch; every rank gets all, in dataset order."""
    plans = [EpochBatches(EpochOrder(len(dataset)), cfg.batch_size, Ranks(r, ranks.world, 0, 1))
             for r in range(ranks.world)]
    if ranks.world == 1 or plans[0].total < ranks.world:
        return predict(model, loader_for(dataset, cfg), device)
    mine = predict(model, loader_for(dataset, cfg, ranks=ranks), device)
    shards = distributed.all_gather(mine)  # [(labels (n_r,), probs (n_r, C))] in rank order
    gathered = torch.cat([chunk for plan in plans for chunk in plan.chunks()]).numpy()  # (n,) position of each row
    rows = np.argsort(gathered)  # (n,) the gathered row of each clip
    labels, probs = (np.concatenate([shard[k] for shard in shards])[rows] for k in (0, 1))  # (n,), (n, C)
    return labels, probs


def batch_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 100_003 + epoch) * 1_000_003 + index


def fit(model: DferHeads, train: Clips, val: Clips | None, cfg: TrainConfig, run: Path,
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
        keep_freed_memory()  # every batch's large blocks reuse the last one's pages (dfer.host_memory)
    model.to(device)
    labels = train.labels  # (n,)
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float64)
    class_weight = None
    generator = torch.Generator()
    if cfg.balance == "loss":
        class_weight = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(classes), dtype=torch.float32, device=device)
    weights = (1.0 / np.maximum(counts, 1))[labels] if cfg.balance == "sampler" else None  # (n,)
    order = EpochOrder(len(train), generator, weights)  # shuffled, the same on every rank: reseeded per epoch
    train_loader = loader_for(train, cfg, order, ranks)  # this rank's share of the epoch's batches
    validate = val is not None and len(val) > 0
    world, per_step = ranks.world, accumulate * ranks.world  # batches per optimizer step, over all ranks
    epoch_batches = train_loader.plan.total  # over all ranks
    if epoch_batches < world:
        raise ValueError(f"{len(train)} training clips make {epoch_batches} batches of {cfg.batch_size}, fewer than "
                         f"the {world} ranks: lower --batch-size or run fewer ranks")
    steps = -(-epoch_batches // per_step)  # optimizer steps per epoch, the same on every rank
    # A rank one batch short of the others' last step repeats its last batch at weight 0 (a None below), so that
    # every rank takes part in every gradient all-reduce and optimizer step.
    padding = max(0, (steps - 1) * accumulate + 1 - len(train_loader))
    micro_batches = len(train_loader) + padding
    # Batches split over ranks or accumulated are seeded one by one, so a batch draws the same wherever it is
    # trained; a plain run seeds once per epoch, as the published figures (RESULTS.md) were made.
    seed_each_batch = per_step > 1
    net = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True)  # a clip without a stream, or its modality dropped, leaves weights unused

    main = ranks.is_main
    save = save or (lambda kind: save_weights(model, run / f"{kind}.safetensors"))
    optimizer = torch.optim.AdamW(param_groups or model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps  # optimizer steps
    warmup = max(1, int(cfg.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "stale": 0}
    if resume and (run / "resume.json").exists():
        model.load_state_dict(load_weights(run / "last.safetensors", device))
        state = checkpoint.load_resume(run, optimizer, scheduler)
    elif main and (not resume or not (run / "log.csv").exists()):
        with open(run / "log.csv", "w", newline="") as file:
            csv.writer(file).writerow(LOG_FIELDS)
    writer = tensorboard_writer(run) if main else None

    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["stale"] >= cfg.patience:
            break
        generator.manual_seed(cfg.seed * 100_003 + epoch)
        started, losses = time.perf_counter(), []
        model.train()
        optimizer.zero_grad(set_to_none=True)
        # With `seed_each_batch`, the RNG is seeded for batch j of the epoch just before this rank reads it, so its
        # augmentation (when read here, without workers), dropout and crops draw from (seed, epoch, j) alone, whichever
        # rank trains it.
        torch.manual_seed(batch_seed(cfg.seed, epoch, ranks.rank) if seed_each_batch else cfg.seed * 100_003 + epoch)
        batch = None
        for i, loaded in enumerate(itertools.chain(train_loader, itertools.repeat(None, padding))):
            weight = 0.0 if loaded is None else 1.0
            batch = batch if loaded is None else to_device(loaded, device)
            in_step = min(per_step, epoch_batches - i // accumulate * per_step)  # batches in this step, all ranks
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
            if seed_each_batch:
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
            if writer and row[key] != "":
                writer.add_scalar(key, row[key], epoch)
        if progress:
            progress.epoch_done(row)
    if writer:
        writer.close()
    return state


def tensorboard_writer(run: Path):
    """A TensorBoard writer of RUN/tensorboard, or None without the `[tensorboard]` extra: RUN/log.csv has the same
    figures either way, so training needs nothing more than the core."""
    if not installed("tensorboard"):
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run / "tensorboard"))
