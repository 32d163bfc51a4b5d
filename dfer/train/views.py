"""Views: stores of a training store's clips recorded through other channels or played at other speeds, which
training reads each batch from at random.

Why: a new microphone or codec moves every token dimension, and the heads read the shift as emotion. On the speech
recipe, the same recordings through a +10 dB treble tilt cost a lone clip 16 UAR (recipes/ravdess_speech/RESULTS.md,
"Another channel"). The encoders are frozen and their tokens cached, so the waveform cannot be filtered at training
time: a view is the cached tokens of the clips' waveforms through one channel, or sped up or slowed down as speech
recognition's speed perturbation does (`bench/channel_copy.py` makes such copies), extracted exactly as the store
was. Each batch comes whole from one view, drawn from torch's generator (which the training loop seeds per epoch,
so a run stays reproducible), with that view's own adaptation statistics: a speaker's recordings share a channel.
Validation and test clips are the store's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dfer.distributed import ALONE, Ranks
from dfer.store.fingerprint import TOKEN_FIELDS, check
from dfer.store.reader import CacheReader, open_cache
from dfer.train.data import EpochBatches, EpochOrder, ResidentBatches, ResidentClips


def open_views(reader: CacheReader, paths: Sequence[str | Path]) -> list[CacheReader]:
    """The stores `paths`, each refused in one message naming it unless it holds `reader`'s clips (ids and labels,
    in the same order) as tokens of the same encoders and settings."""
    clip_ids, labels = reader.read_all("clip_id").astype(str), reader.read_all("label")
    views = []
    for path in paths:
        view = open_cache(Path(path))
        check(path, reader.fingerprint, view.fingerprint, TOKEN_FIELDS)
        if not (np.array_equal(view.read_all("clip_id").astype(str), clip_ids)
                and np.array_equal(view.read_all("label"), labels)):
            raise ValueError(f"{path}: a view must hold the store's clips, with their labels, in its order "
                             f"({reader.path} has {len(clip_ids)} clips); extract the copy with the same "
                             "dataset adapter and recipe")
        views.append(view)
    return views


class ViewedClips:
    """One split's training clips in several views, `ResidentClips` each (the store's own first), batched as
    `ResidentBatches` batches resident clips: each batch is gathered from one view, drawn at random."""

    def __init__(self, views: Sequence[ResidentClips]):
        self.views = list(views)
        self.labels = self.views[0].labels  # (n,): every view holds the same clips

    def __len__(self) -> int:
        return len(self.views[0])

    def batch(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """The clips at `positions` (B,) from a random view, with that view's adaptation statistics."""
        return self.views[int(torch.randint(len(self.views), ()))].batch(positions)

    def batches(self, order: EpochOrder, batch_size: int, workers: int = 0, ranks: Ranks = ALONE) -> ResidentBatches:
        return ResidentBatches(self, EpochBatches(order, batch_size, ranks))
