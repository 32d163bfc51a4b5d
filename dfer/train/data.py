"""Batches of cached clips for training: the arrays the chosen modalities need, from the store or the device.

Two sources of batches, one interface (`batches(order, batch_size, workers)`, iterated once per epoch):
- `CachedClips` reads one clip at a time from the store in DataLoader workers (`collate` stacks them);
- `ResidentClips` (`dfer train --in-memory`) holds a split's arrays on the training device, as stored (int8 codes
  with their scales, or float16), and draws each batch there by index: no workers, no per-clip Python. The store
  reader gives ~80 base-size audio-visual clips/s; the heads train thousands a second on a GPU.
Both draw the same positions from an `EpochOrder`, cut them into an epoch's batches the same way (`EpochBatches`,
which also gives each torchrun rank its share) and finish a batch the same way (`dfer.inference.batch.finish`), so a
run gives the same batches, and the same result, from either. A batch's arrays, trimming and token decoding are
`dfer.inference.batch`'s, shared with prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dfer.distributed import ALONE, Ranks
from dfer.inference.batch import LENGTH_SUFFIX, collate, finish
from dfer.adapt.store_moments import stored_valid_tokens
from dfer.store.reader import CacheReader
from dfer.store.schema import batch_arrays
from dfer.streams import select
from dfer.train.splits import Split

Statistics = Callable[[dict], dict] | None  # a batch -> the batch with its clips' adaptation statistics
RESIDENT_SHARE = 0.8  # of the device's free memory a resident split may take: the rest is the heads' activations


class EpochOrder(Sampler[int]):
    """The clip positions of one pass over `n` clips: as stored, shuffled (`generator`), or drawn with replacement in
    proportion to `weights` (class-balanced sampling). Drawn when a pass starts, so reseeding `generator` before each
    epoch fixes that epoch's order. The draws are torch's `RandomSampler` and `WeightedRandomSampler`'s."""

    def __init__(self, n: int, generator: torch.Generator | None = None, weights: np.ndarray | None = None):
        self.n, self.generator = n, generator
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)  # (n,)

    def positions(self) -> torch.Tensor:
        """(n,) int64 on the host."""
        if self.generator is not None:  # the draw DataLoader took for its workers' seed before `DiskBatches` had
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # its own: runs keep their orders
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, True, generator=self.generator)
        if self.generator is not None:
            return torch.randperm(self.n, generator=self.generator)
        return torch.arange(self.n)

    def __iter__(self) -> Iterator[int]:
        return iter(self.positions().tolist())

    def __len__(self) -> int:
        return self.n


class EpochBatches(Sampler[list[int]]):
    """One epoch's batches: `order`'s positions `batch_size` at a time (the last may be smaller). With `ranks`, only
    this rank's share: batch j goes to rank j % world. Every rank draws the same order from the same seed, so the
    shares are disjoint, cover the epoch, and each batch holds the clips one process would give it."""

    def __init__(self, order: EpochOrder, batch_size: int, ranks: Ranks = ALONE):
        self.order, self.batch_size, self.ranks = order, batch_size, ranks

    @property
    def total(self) -> int:
        """The epoch's batches over all ranks."""
        return -(-len(self.order) // self.batch_size)

    def chunks(self) -> Iterator[torch.Tensor]:
        """This rank's batches as (B,) int64 position tensors."""
        positions = self.order.positions()  # (n,)
        for j in range(self.ranks.rank, self.total, self.ranks.world):
            yield positions[j * self.batch_size:(j + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        return (chunk.tolist() for chunk in self.chunks())

    def __len__(self) -> int:
        return len(range(self.ranks.rank, self.total, self.ranks.world))


class CachedClips(Dataset):
    """Clip rows `indices` of a cache, read one clip at a time (in DataLoader workers). Each row carries its
    `clip_row` (its index in the store), by which `statistics` (adaptation, `dfer.adapt.batches`; None: none) gives
    each batch its clips' statistics, in the main process, after collation."""

    def __init__(self, reader: CacheReader, indices: list[int], modalities: str, statistics: Statistics = None):
        self.reader, self.indices, self.statistics = reader, list(indices), statistics
        self.fields = fields_for(reader, modalities)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, np.ndarray]:
        index = self.indices[position]
        return {"clip_row": np.int64(index), **{key: self.reader.read(array, index) for key, array in self.fields.items()}}

    @property
    def labels(self) -> np.ndarray:
        return self.reader.read_all("label")[np.asarray(self.indices, dtype=np.int64)].astype(np.int64)  # (n,)

    def batches(self, order: EpochOrder, batch_size: int, workers: int = 0, ranks: Ranks = ALONE) -> DiskBatches:
        return DiskBatches(self, EpochBatches(order, batch_size, ranks), workers)


class DiskBatches:
    """`CachedClips` in `plan`'s batches through a DataLoader (persistent workers): host batches for `to_device`.

    The workers' seed comes from a generator of its own, seeded from the order's when a pass starts: drawn from the
    order's generator (DataLoader's default), it would shift the order away from `ResidentClips`' for the same seed."""

    def __init__(self, clips: CachedClips, plan: EpochBatches, workers: int):
        self.plan, self.seeds = plan, torch.Generator()
        self.loader = DataLoader(clips, batch_sampler=plan, generator=self.seeds, num_workers=workers,
                                 collate_fn=collate, persistent_workers=workers > 0)

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        generator = self.plan.order.generator
        self.seeds.manual_seed(generator.initial_seed() if generator is not None else 0)
        statistics = self.loader.dataset.statistics
        return iter(self.loader) if statistics is None else map(statistics, self.loader)


class ResidentClips:
    """Clip rows `indices` of a cache with the arrays a `modalities` model needs on `device`, as the store holds them
    (int8 codes and their scales, or float16), audio tokens cut to these clips' longest span.

    Refuses, before reading any tokens, a split that would take more than `RESIDENT_SHARE` of the device's free
    memory (`resident_bytes`, `free_bytes`), saying both figures: `--from-disk` trains from the store instead.
    A silent fallback would change a run's speed by orders of magnitude without a word. Loading reads each array
    whole (`CacheReader.read_all`) and keeps these rows, one array at a time: the host briefly holds one array of
    the whole store."""

    def __init__(self, reader: CacheReader, indices: list[int], modalities: str, device: torch.device | str,
                 statistics: Statistics = None):
        self.reader, self.indices, self.device = reader, list(indices), torch.device(device)
        self.statistics = statistics
        fields = fields_for(reader, modalities)
        check_fits(resident_bytes(reader, self.indices, modalities), self.device)
        rows = np.asarray(self.indices, dtype=np.int64)
        self.arrays = {}
        for key, name in fields.items():
            values = reader.read_all(name)[rows]  # (n, ...)
            if key in sequence_keys(fields):
                values = values[:, :span(reader, fields, key, rows)]  # (n, Ta_split, D)
            self.arrays[key] = torch.from_numpy(np.ascontiguousarray(values)).to(self.device)
        self.arrays["clip_row"] = torch.from_numpy(rows).to(self.device)
        self.labels = self.arrays["label"].cpu().numpy().astype(np.int64)  # (n,)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """The clips at `positions` (B,), gathered on the device, as `collate` would give them from the store."""
        positions = positions.to(self.device, non_blocking=True)
        # index_select: on a CPU ~5x faster than `values[positions]` on int8 (B, T, N, D) rows
        batch = finish({key: values.index_select(0, positions) for key, values in self.arrays.items()})
        return batch if self.statistics is None else self.statistics(batch)

    def batches(self, order: EpochOrder, batch_size: int, workers: int = 0, ranks: Ranks = ALONE) -> ResidentBatches:
        return ResidentBatches(self, EpochBatches(order, batch_size, ranks))


class ResidentBatches:
    """`ResidentClips` (or `dfer.train.views.ViewedClips`: any clips with `batch(positions)`) in `plan`'s batches,
    gathered on the device; there are no workers here."""

    def __init__(self, clips: ResidentClips, plan: EpochBatches):
        self.clips, self.plan = clips, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for positions in self.plan.chunks():
            yield self.clips.batch(positions)


def clip_sets(reader: CacheReader, split: Split, modalities: str, resident: bool, device: torch.device | str,
              statistics: dict[str, Statistics] | None = None) -> dict:
    """A split's "train", "val" and "test" clips; with `resident` the training and validation clips on `device`
    (the test clips are read once: from the store). The two resident parts must fit together. `statistics`: part ->
    its batches' adaptation statistics (`dfer.adapt.batches.split_statistics`), for an adapted run."""
    parts = {part: getattr(split, part) for part in ("train", "val", "test")}
    statistics = statistics or {}
    if not resident:
        return {part: CachedClips(reader, indices, modalities, statistics.get(part))
                for part, indices in parts.items()}
    check_fits(sum(resident_bytes(reader, parts[part], modalities) for part in ("train", "val")), torch.device(device))
    return {part: ResidentClips(reader, indices, modalities, device, statistics.get(part))
            if part != "test" and indices else CachedClips(reader, indices, modalities, statistics.get(part))
            for part, indices in parts.items()}


def fields_for(reader: CacheReader, modalities: str) -> dict[str, str]:
    """Batch key -> store array for a model of the store's streams `modalities` selects (`dfer.streams.select`)."""
    return batch_arrays(select(reader.streams, modalities), token_dtype=reader.token_dtype)


def sequence_keys(fields: dict[str, str]) -> set[str]:
    """The batch keys of sequence streams' tokens (`<stream>_tokens` beside a `<stream>_length`)."""
    return {key.removesuffix(LENGTH_SUFFIX) + "_tokens" for key in fields if key.endswith(LENGTH_SUFFIX)}


def span(reader: CacheReader, fields: dict[str, str], key: str, rows: np.ndarray) -> int:
    """The longest valid span of the sequence tokens `key` over clip `rows` (at least 1: a batch always has a time
    axis)."""
    lengths = fields[key.removesuffix("_tokens") + LENGTH_SUFFIX]
    return max(int(reader.read_all(lengths)[rows].max(initial=0)), 1)


def resident_bytes(reader: CacheReader, indices: list[int], modalities: str) -> int:
    """Device bytes of `ResidentClips(reader, indices, modalities)`, from the arrays' shapes and dtypes alone (no
    tokens read): per clip, each needed array's row, the audio tokens up to these clips' longest span."""
    rows = np.asarray(indices, dtype=np.int64)
    total = 0
    fields = fields_for(reader, modalities)
    for key, name in fields.items():
        array = reader.handle[name]
        shape = list(array.shape[1:])
        if key in sequence_keys(fields):
            shape[0] = span(reader, fields, key, rows)
        total += math.prod(shape) * np.dtype(array.dtype).itemsize
    return (total + np.dtype(np.int64).itemsize) * len(rows)  # and each clip's `clip_row`


def free_bytes(device: torch.device) -> int:
    """Memory free for new tensors on `device`: CUDA's free bytes, or the host's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        import psutil
    except ImportError:  # not a dependency; Linux says it in /proc/meminfo
        with open("/proc/meminfo") as file:
            fields = dict(line.split(":", 1) for line in file)
        return int(fields["MemAvailable"].split()[0]) * 1024  # kB
    return psutil.virtual_memory().available


def check_fits(needed: int, device: torch.device) -> None:
    free = free_bytes(device)
    if needed > RESIDENT_SHARE * free:
        raise MemoryError(
            f"--in-memory: the clips need {needed / 2**30:.2f} GiB on {device}, which has {free / 2**30:.2f} GiB "
            f"free (a resident split may take {RESIDENT_SHARE:.0%} of it, the rest is for the heads); "
            f"train with --from-disk to read them from the store")


def token_statistics(reader: CacheReader, indices: list[int], modalities: str,
                     max_clips: int = 256) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-dimension mean and std of each stream's valid tokens (`dfer.adapt.moments.valid_tokens`: a sequence's
    frames inside its length, a grid's tokens of frames with a detected face) over (an evenly spaced subset of) the
    training clips."""
    streams = select(reader.streams, modalities)
    chosen = [indices[i] for i in np.linspace(0, len(indices) - 1, min(max_clips, len(indices))).astype(int)]
    sums: dict[str, list] = {}
    for index in chosen:
        for stream in streams:
            x = stored_valid_tokens(reader, stream, index).astype(np.float64)  # (M, D)
            if not len(x):
                continue
            total = sums.setdefault(stream.name, [0, 0.0, 0.0])
            total[0] += len(x)
            total[1] = total[1] + x.sum(0)
            total[2] = total[2] + (x * x).sum(0)
    statistics = {}
    for stream, (n, s1, s2) in sums.items():
        if n:
            mean = s1 / n
            std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
            statistics[stream] = (torch.from_numpy(mean).float(), torch.from_numpy(std).float())
    return statistics
