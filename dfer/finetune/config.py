"""Fine-tune settings: defaults here, a recipe YAML over them, command-line flags over that.

The epoch loop is stage 2's (`dfer.train.loop.fit`), so the settings it shares (epochs, schedule, clipping,
early stopping, balance, seed, device) mean exactly what they mean for `dfer train`; `train_config()` hands
them over. What only stage 3 has: which encoder weights train (`unfreeze`), the encoders' learning rates
(`lr` for the last block, `layer_decay` below it, `head_lr` for the heads), memory savers
(`grad_checkpointing`, `accumulate`, `precision`) and augmentation.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from dfer.distributed import cpu_threads
from dfer.finetune.augment import AugmentConfig
from dfer.recipe import settings_from
from dfer.train.config import TrainConfig

_UNFREEZE = re.compile(r"^(all|last:(\d+)|lora:(\d+))$")


@dataclass(kw_only=True)
class FinetuneConfig:
    unfreeze: str = "all"  # "all", "last:N" (last N blocks + final norm) or "lora:R" (rank-R adapters, rest frozen)
    lr: float = 3e-5  # the encoders' last block; pretrained features are easy to wreck, so 10-100x below the heads
    layer_decay: float = 0.75  # block i of L trains at lr * decay^(L - i): early, generic layers move least
    head_lr: float = 3e-4  # the heads start trained (stage 2): a tenth of their stage-2 rate
    statistics_momentum: float = 0.1  # the heads' input standardisation follows the moving encoders (0: fixed)
    lora_alpha: float | None = None  # LoRA scale alpha / rank; None: alpha = 2 x rank
    grad_checkpointing: bool = False  # recompute block activations in backward: ~3x less activation memory
    accumulate: int = 1  # batches per rank per optimizer step (effective batch = batch_size x accumulate x ranks)
    precision: str = "bf16"  # autocast dtype on CUDA: bf16 or fp32; a CPU always runs fp32
    augment: bool = True  # face and audio augmentation of the training clips
    augmentation: dict = field(default_factory=dict)  # AugmentConfig fields over its defaults
    epochs: int = 10
    batch_size: int = 8  # clips per rank: 8 x 16 frames = 128 face crops per vision forward
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    balance: str = "none"  # "sampler", "loss" or "none", as in stage 2
    grad_clip: float = 1.0
    patience: int = 5
    select_metric: str = "UAR"  # the validation metric that picks the best epoch, as in stage 2
    seed: int = 0
    fold: str | None = None  # None: the init run's own split (its test clips stay unseen); else a fold to plan
    val_fraction: float = 0.15  # only when `fold` plans a new split
    vision: str | None = None  # start from these vision weights instead of the store's encoder (folder / hub id)
    audio: str | None = None  # likewise for audio (any spec of dfer.encoders.build, e.g. a saved folder)
    device: str = "cpu"
    workers: int = 0  # DataLoader workers reading (and augmenting) clips
    threads: int = 0  # CPU threads; 0: all cores, shared by a machine's ranks (the encoders, unlike the heads,
    # are worth parallelising)

    def __post_init__(self):
        if not _UNFREEZE.match(self.unfreeze):
            raise ValueError(f"unfreeze must be all, last:N or lora:R, not {self.unfreeze!r}")
        if self.unfreeze != "all" and int(self.unfreeze.split(":")[1]) < 1:
            raise ValueError(f"unfreeze {self.unfreeze!r}: N and R must be at least 1")
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, not {self.precision!r}")
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be at least 1, not {self.accumulate}")
        if not 0 <= self.statistics_momentum <= 1:
            raise ValueError(f"statistics_momentum must be in [0, 1], not {self.statistics_momentum}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], not {self.layer_decay}")
        self.fold = None if self.fold is None else str(self.fold)
        AugmentConfig(**self.augmentation)  # unknown keys are an error naming them

    @property
    def mode(self) -> tuple[str, int]:
        """("all", 0), ("last", N) or ("lora", R)."""
        name, _, number = self.unfreeze.partition(":")
        return name, int(number or 0)

    def train_config(self, modalities: str, fusion: str) -> TrainConfig:
        """The settings stage 2's epoch loop reads (its `lr` is the heads' group, logged as `lr`)."""
        return TrainConfig(
            fusion=fusion, modalities=modalities, fold=self.fold or "none", epochs=self.epochs,
            batch_size=self.batch_size, lr=self.head_lr, weight_decay=self.weight_decay,
            warmup_fraction=self.warmup_fraction, label_smoothing=self.label_smoothing, balance=self.balance,
            grad_clip=self.grad_clip, patience=self.patience, select_metric=self.select_metric, seed=self.seed,
            val_fraction=self.val_fraction,
            workers=self.workers, device=self.device, threads=self.threads or cpu_threads(),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_finetune_config(recipe: Path | None = None, **overrides) -> FinetuneConfig:
    return settings_from(FinetuneConfig, recipe, "fine-tune", **overrides)
