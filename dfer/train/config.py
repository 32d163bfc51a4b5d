"""Training settings: defaults here, a recipe YAML over them, command-line flags over that."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from dfer.adapt.settings import LONE, SHRINK, check_adapt
from dfer.heads import FUSIONS, HeadConfig
from dfer.streams import Stream, check_modalities, select
from dfer.recipe import settings_from

SELECT_METRICS = ("UAR", "WAR", "macro_f1", "weighted_f1")  # what may pick a best epoch (or a probe's C)


@dataclass(kw_only=True)
class TrainConfig:
    fusion: str = "liquid"
    modalities: str = "av"
    fold: str = "all"  # a fold number, "all", or "none" (every clip trains: a final model)
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3  # heads are small and inputs frozen: a high rate converges in few epochs
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05  # of all steps, linear warm-up before the cosine decay
    label_smoothing: float = 0.1
    balance: str = "none"  # "sampler" (class-balanced sampling), "loss" (class-weighted loss) or "none"
    grad_clip: float = 1.0
    patience: int = 10  # epochs without a better validation score before stopping
    select_metric: str = "UAR"  # the validation metric that picks the best epoch (MELD: weighted_f1)
    seed: int = 0
    members: int = 1  # heads trained per split, from seeds seed, seed + 1, ...: they answer with their mean
    # log-probability (dfer.heads.members); each trains as a run of that seed would, K times the time
    val_fraction: float = 0.15  # training speakers held out for validation when the protocol has none (0: none,
    # the last epoch is kept: for small data, where 2 held-out speakers pick epochs noisily and cost training data)
    workers: int = 0  # DataLoader workers reading the cache
    in_memory: bool = False  # the training and validation clips' arrays on `device` (`dfer.train.data.ResidentClips`):
    # batches drawn there by index, no loader workers; refused, before loading, when they would not fit
    device: str = "cpu"
    threads: int = 1  # CPU threads for the heads: they are small, and OpenMP threads spinning beside loader
    # workers or another job slow each tiny op down by orders of magnitude
    heads: dict = field(default_factory=dict)  # HeadConfig fields: d_model, roi_queries, temporal_layers, ...
    adapt: str = "none"  # "speaker": each clip standardised with its speaker's statistics (dfer.adapt)
    adapt_shrink: float = SHRINK  # a group's weight against the training set's statistics: clips / (clips + this)
    adapt_lone: float = LONE  # the share of training clips standardised as lone clips (so lone clips answer well)
    views: list[str] = field(default_factory=list)  # stores of the same clips through other recording channels
    # (dfer.train.views): each training batch is read from one of them or the store, at random; needs in_memory.
    # The linear probe beside the heads reads the store alone.

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {self.fusion!r}")
        check_modalities(self.modalities)
        if self.balance not in ("none", "sampler", "loss"):
            raise ValueError(f"balance must be none, sampler or loss, not {self.balance!r}")
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(f"select_metric must be one of {SELECT_METRICS}, not {self.select_metric!r}")
        check_adapt(self.adapt, self.adapt_shrink, self.adapt_lone)
        if self.members < 1:
            raise ValueError(f"members must be at least 1, not {self.members}")
        if self.views and not self.in_memory:
            raise ValueError("views (channel copies of the store) are read resident: train them --in-memory")
        self.views = [str(view) for view in self.views]
        self.fold = str(self.fold)
        known = {f.name for f in dataclasses.fields(HeadConfig)}
        if set(self.heads) - known:
            raise ValueError(f"unknown heads settings {sorted(set(self.heads) - known)}; known: {sorted(known)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_config(recipe: Path | None = None, **overrides) -> TrainConfig:
    return settings_from(TrainConfig, recipe, "training", **overrides)


def head_config(streams: tuple[Stream, ...], classes: list[str], train: TrainConfig) -> HeadConfig:
    """The heads' input sizes come from the store's streams (`CacheReader.streams`), those `train.modalities`
    selects; their own sizes from the recipe."""
    return HeadConfig(streams=select(streams, train.modalities),
                      num_classes=len(classes), fusion=train.fusion, modalities=train.modalities, **train.heads)
