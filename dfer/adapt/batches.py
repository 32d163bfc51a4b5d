"""Adaptation statistics attached to the heads' batches: `{stream}_mean` and `{stream}_std`, (B, D) float32 each.

A model that standardises its tokens (`DferHeads`, an adapted `LinearProbe`) reads these keys when a batch has
them, and its own training-set statistics otherwise, so one model serves groups and lone clips alike.

`GroupStatistics` gives each clip the statistics of its group (a test speaker's clips, never a training clip).
`MixedStatistics` is what adapted training sees, so that the run still answers a lone clip well: a share `lone` of
the clips keeps the training set's statistics, as a lone clip at prediction does; the rest get the statistics of a
random group of their speaker's training clips that holds the clip itself, of 2, 4, 8 or all of them, shrunk
toward the training set's as a group of that size is at prediction. Trained on one protocol only, the heads fall
from 75.8 UAR to 24.5 on lone clips (the speech recipe, docs/adapt.md): the mixture is the fallback's training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dfer.adapt.moments import Moments
from dfer.adapt.store_moments import ClipMoments, moments_by_speaker
from dfer.store.reader import CacheReader

GROUP_SIZES = (2, 4, 8, 0)  # the random groups adapted training draws (0: all of the speaker's clips)
Prior = dict[str, tuple[np.ndarray, np.ndarray]]  # stream -> the training set's (mean (D,), std (D,))


def prior_of(moments: dict[str, Moments]) -> Prior:
    """The training set's statistics from its moments (no shrinking: it is the prior)."""
    return {stream: (m.mean, np.sqrt(m.var)) for stream, m in moments.items()}


def attach(batch: dict, statistics: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """batch with `{stream}_mean` / `{stream}_std` (B, D) from stacked per-clip statistics (mean (B, D), std (B, D))."""
    device = batch["label"].device
    for stream, (mean, std) in statistics.items():
        batch[f"{stream}_mean"] = torch.as_tensor(mean, dtype=torch.float32).to(device)
        batch[f"{stream}_std"] = torch.as_tensor(std, dtype=torch.float32).to(device)
    return batch


class GroupStatistics:
    """Each clip row of `groups` standardised with its whole group's statistics (shrunk; a group of one keeps the
    prior). Computed once: evaluation and validation batches look them up by `clip_row`."""

    def __init__(self, moments: ClipMoments, groups: Sequence[Sequence[int]], prior: Prior, shrink: float):
        self.table: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for group in groups:
            standardisers = {stream: m.standardiser(prior[stream], shrink) for stream, m in moments.of(group).items()}
            self.table.update({int(row): standardisers for row in group})

    def __call__(self, batch: dict) -> dict:
        rows = batch["clip_row"].tolist()
        return attach(batch, {stream: tuple(np.stack([self.table[r][stream][k] for r in rows]) for k in (0, 1))
                              for stream in self.table[rows[0]]})


class MixedStatistics:
    """Training batches' statistics, drawn anew for every batch from torch's random generator (seeded per epoch
    and batch by the training loop, so a run is reproducible): see the module docstring."""

    def __init__(self, moments: ClipMoments, groups: Sequence[Sequence[int]], prior: Prior, shrink: float,
                 lone: float, sizes: Sequence[int] = GROUP_SIZES):
        self.moments, self.prior, self.shrink, self.lone, self.sizes = moments, prior, shrink, lone, tuple(sizes)
        self.group_of = {int(row): [int(r) for r in group] for group in groups for row in group}

    def draw(self, row: int) -> list[int]:
        """A random group of `row`'s speaker that holds `row`: just itself (a lone clip) with probability `lone`."""
        group = self.group_of[row]
        if float(torch.rand(())) < self.lone or len(group) < 2:
            return [row]
        size = self.sizes[int(torch.randint(len(self.sizes), ()))] or len(group)
        others = [r for r in group if r != row]
        chosen = torch.randperm(len(others))[:max(size, 2) - 1].tolist()
        return [row, *(others[i] for i in chosen)]

    def __call__(self, batch: dict) -> dict:
        drawn = [self.moments.of(self.draw(row)) for row in batch["clip_row"].tolist()]
        return attach(batch, {stream: tuple(np.stack(parts) for parts in zip(
            *(m[stream].standardiser(self.prior[stream], self.shrink) for m in drawn))) for stream in self.prior})


def split_statistics(moments: ClipMoments, groups: dict[str, list[list[int]]], shrink: float,
                     lone: float, prior: Prior | None = None) -> tuple[Prior, dict]:
    """An adapted run's statistics on one split: the prior (its training clips' statistics, the heads' own), and
    part -> the batches' statistics: the mixture for "train", each speaker's own group for the others (`groups`:
    part -> its clips grouped by speaker). A held-out speaker is standardised with their own clips alone.
    A given `prior` replaces the training clips' own: a channel view's clips (`dfer.train.views`) keep the store's,
    as a lone clip from an unknown channel meets the heads' statistics at prediction."""
    prior = prior or prior_of(moments.of([row for group in groups["train"] for row in group]))
    return prior, {part: MixedStatistics(moments, parts, prior, shrink, lone) if part == "train"
                   else GroupStatistics(moments, parts, prior, shrink) for part, parts in groups.items() if parts}


def speaker_split(reader: CacheReader, streams: Sequence[str], parts: dict[str, list[int]], shrink: float,
                  lone: float, prior: Prior | None = None) -> tuple[Prior, dict]:
    """`split_statistics` of a store's split (`parts`: "train", "val", "test" -> clip rows) grouped by speaker id,
    its clips' moments read once. Refuses a store whose training clips have no speaker ids."""
    return split_statistics(*moments_by_speaker(reader, streams, parts, "train"), shrink, lone, prior)
