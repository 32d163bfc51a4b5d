"""The Zarr v3 token cache: one store per (dataset, encoder configuration), its clips grouped into shards.

Why this layout: every per-clip array has the clip as its first axis, one inner chunk per clip (a reader gets a
clip with one small read per array) and one shard file per `shard_clips` consecutive clips (chosen at creation
by `shard_clips`). A store of C clips then holds at most 100 + C/2 files instead of ~20 per clip, and a shard is
the unit of writing:

- One writer per shard. A writer buffers its shard's finished clips in memory and writes each array's shard file
  once, whole, when every clip of the shard is done or failed (or when it moves to another shard, or `flush`).
  Under torchrun, shard s belongs to rank s % world, so two ranks never write the same file.
- Whole files, atomically. zarr's LocalStore writes every file as a temporary `*.partial` file and renames it
  (checked in zarr 3.1.6, the pinned version), so a kill -9 leaves each shard file either old or new, never torn;
  `remove_torn_writes` deletes the temporary files a kill leaves behind. (A write of one clip into a sharded array makes zarr read, merge and
  rewrite the whole shard: correct, but up to `shard_clips` times the bytes, hence the buffer.)
- In flight: a kill -9 loses the clips a writer has buffered and not yet flushed, at most `shard_clips` per rank
  (plus, in `dfer extract`, the encoder batch in progress).
- `done` last: a flush writes the data arrays, then `error`, then `done`, so a clip counts only once its done flag
  is on disk after its data. A re-run skips done clips and redoes the rest of their shard, keeping the done ones.
- One extraction at a time: `writer_lock` (held by rank 0 for the whole run) refuses a second one on the store.

Stores of formats 1 and 2 (one chunk per clip, no `shard_clips` attribute) read as shards of one clip, so they stay
readable and resumable. The arrays, dtypes and encodings are in `dfer.store.schema` and `cache/README.md`.
"""

from __future__ import annotations

import fcntl
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from dfer.data.clip import DatasetListing
from dfer.errors import DferError
from dfer.store import fingerprint as fp
from dfer.store.schema import INFO_PREFIX, LISTING_DTYPES, READABLE_FORMATS, Layout, array_specs


FORMAT_1_DEFAULTS = {"token_dtype": "float16"}  # what a store of format 1 holds without saying so
FILES_FIXED, FILES_PER_CLIP = 100, 0.5  # a store of C clips holds at most 100 + C/2 files


class StoreLocked(DferError, RuntimeError):
    """Another process holds the store's lock: it is extracting into this store now."""


@contextmanager
def writer_lock(path: Path) -> Iterator[Path]:
    """Hold `<store>.lock` (beside the store, so zarr never sees it) for as long as the block runs, then remove it.

    `fcntl.flock` belongs to the open file: a process that ends, even by kill -9, releases it, so a lock file left
    behind never blocks a re-run. The file is removed, while still locked, when the block ends, however it ends, so
    an extraction that stops on its arguments leaves nothing beside the store. A process that opened the file just
    before that finds, once it holds the lock, that the path no longer names its file, and opens the new one. The
    lock only guards against a second extraction; readers never take it."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreLocked(f"{path}: another extraction is writing this store (it holds {lock}); let it "
                              "finish, or stop it, before running this one again") from None
        try:
            if os.path.samestat(os.stat(lock), os.fstat(handle.fileno())):
                break
        except FileNotFoundError:
            pass
        handle.close()  # the holder removed this file as we opened it
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def shard_clips(clips: int, sharded_arrays: int, other_files: int) -> int:
    """The fewest clips per shard that keep a store of `clips` clips within FILES_FIXED + FILES_PER_CLIP * clips files.

    Fewest, because a shard is what a writer holds in memory and what a kill can lose. The store holds
    `other_files` (metadata, listing columns) plus at most ceil(C / K) files for each of the `sharded_arrays`; K is
    set from the number of shards S per array that fits, so ceil(C / K) <= S. Small stores get small shards (8
    clips: 3), large ones tend to 2 x the per-clip arrays (~40 clips)."""
    shards = max(1, math.floor((FILES_FIXED + FILES_PER_CLIP * clips - other_files) / sharded_arrays))
    return max(1, math.ceil(clips / shards))


class ClipStore:
    """A cache on disk. Create it once (rank 0), open it anywhere; write clips through `write_clip`, which buffers a
    shard at a time (see the module docstring), and `flush` at the end."""

    def __init__(self, path: Path, group: zarr.Group):
        self.path = Path(path)
        self.group = group
        self._shard: int | None = None  # the shard whose clips are buffered
        self._rows: dict[int, dict[str, Any]] = {}  # clip index -> its arrays' values, `error` and `done` included
        self._settled: np.ndarray | None = None  # (K,) bool: clips of the shard done on disk or buffered

    # ----- creation and opening -----

    @classmethod
    def create_or_open(cls, path: Path, fingerprint: dict, layout: Layout, listing: DatasetListing) -> ClipStore:
        """Open `path` if it holds a matching store, create it if it is absent; refuse any mismatch."""
        path = Path(path)
        if (path / "zarr.json").exists():
            store = cls.open(path)
            store.check_matches(fingerprint, layout, listing)
            return store
        return cls._create(path, fingerprint, layout, listing)

    @classmethod
    def open(cls, path: Path, mode: str = "r+") -> ClipStore:
        path = Path(path)
        if not (path / "zarr.json").exists():
            raise FileNotFoundError(f"{path}: no dfer cache here (no zarr.json)")
        group = zarr.open_group(str(path), mode=mode)
        if group.attrs.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{path}: not a dfer cache (format {group.attrs.get('format')!r}, expected one of "
                             f"{', '.join(READABLE_FORMATS)})")
        return cls(path, group)

    @classmethod
    def _create(cls, path: Path, fingerprint: dict, layout: Layout, listing: DatasetListing) -> ClipStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(str(path), mode="w-")
        clips = listing.clips
        C = len(clips)
        listing_values = {name: (dtype, [getattr(c, name) for c in clips]) for name, dtype in LISTING_DTYPES.items()}
        for key in sorted({key for clip in clips for key in clip.info}):
            listing_values[INFO_PREFIX + key] = (str, [clip.info.get(key, "") for clip in clips])
        specs = array_specs(layout)
        names = [*specs, *listing_values]
        groups = {name.rsplit("/", 1)[0] for name in names if "/" in name}
        # metadata: a zarr.json per group and array; data: one chunk file per listing column
        K = shard_clips(C, len(specs), 1 + len(groups) + len(names) + len(listing_values))
        for name, spec in specs.items():
            group.create_array(name, shape=(C, *spec.shape), chunks=(1, *spec.shape), shards=(K, *spec.shape),
                               dtype=spec.dtype, fill_value=spec.fill, compressors=spec.compressor)
        for name, (dtype, values) in listing_values.items():
            array = group.create_array(name, shape=(C,), chunks=(max(C, 1),), dtype=dtype)
            array[:] = np.array(values, dtype=dtype)
        # Attributes last: a store without them is treated as unfinished creation and refused on open.
        group.attrs.update(
            {
                "dataset": listing.name,
                "classes": list(listing.classes),
                "protocol": listing.protocol,
                "layout": layout.record(),
                "fingerprint": fingerprint,
                "shard_clips": K,
                "format": layout.format,
            }
        )
        return cls(path, group)

    def check_matches(self, fingerprint: dict, layout: Layout, listing: DatasetListing) -> None:
        fp.check(self.path, fingerprint, self.fingerprint)
        fp.check(self.path, {"layout": layout.record()}, {"layout": self.layout.record()})
        ids = [c.clip_id for c in listing.clips]
        stored = self.clip_ids
        if (self.attrs["dataset"], ids) != (listing.name, stored):
            missing = sorted(set(stored) - set(ids))[:3]
            extra = sorted(set(ids) - set(stored))[:3]
            raise ValueError(
                f"{self.path}: the store holds {len(stored)} clips of dataset {self.attrs['dataset']!r}; this run "
                f"lists {len(ids)} clips of {listing.name!r} (not listed now: {missing}, new: {extra}). "
                "Use another --out, or the same dataset, root and --limit."
            )

    def remove_torn_writes(self) -> list[Path]:
        """Delete the temporary files of writes a kill interrupted (their targets are intact). Only the lock holder
        may call this, before any rank writes: a `*.partial` file of a live writer is its write in progress."""
        torn = sorted(self.path.rglob("*.partial"))
        for file in torn:
            file.unlink()
        return torn

    # ----- reading -----

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def fingerprint(self) -> dict:
        return {**FORMAT_1_DEFAULTS, **self.group.attrs["fingerprint"]}

    @property
    def layout(self) -> Layout:
        return Layout.from_record(self.group.attrs["layout"])

    @property
    def shard_clips(self) -> int:
        """Clips per shard; stores of formats 1 and 2 have a chunk file per clip: shards of one."""
        return int(self.group.attrs.get("shard_clips", 1))

    def shard_of(self, index: int) -> int:
        return index // self.shard_clips

    def shard_bounds(self, shard: int) -> tuple[int, int]:
        """The clips [start, stop) of a shard; the last shard may be shorter."""
        return shard * self.shard_clips, min((shard + 1) * self.shard_clips, len(self))

    @property
    def classes(self) -> list[str]:
        return list(self.group.attrs["classes"])

    @property
    def clip_ids(self) -> list[str]:
        return [str(x) for x in self.group["clip_id"][:]]

    def __len__(self) -> int:
        return self.group["clip_id"].shape[0]

    def array(self, name: str) -> zarr.Array:
        return self.group[name]

    def array_names(self) -> list[str]:
        names = []
        for key, member in self.group.members(max_depth=None):
            if isinstance(member, zarr.Array):
                names.append(key)
        return sorted(names)

    # ----- writing clips, a shard at a time -----

    def write_clip(self, index: int, values: dict[str, np.ndarray]) -> None:
        """Buffer one finished clip (its arrays, a cleared error, `done`); its shard is written once it is settled."""
        self._buffer(index, {**values, "error": "", "done": True})

    def write_failure(self, index: int, message: str) -> None:
        """Buffer why a clip failed; `done` stays False so a later run retries it."""
        self._buffer(index, {"error": message, "done": False})

    def _buffer(self, index: int, row: dict[str, Any]) -> None:
        shard = self.shard_of(index)
        if shard != self._shard:
            self.flush()
            start, stop = self.shard_bounds(shard)
            self._shard, self._settled = shard, np.asarray(self.group["done"][start:stop], bool)  # (K,)
        self._rows[index] = row
        self._settled[index - self.shard_bounds(shard)[0]] = True
        if self._settled.all():  # nothing more will come for this shard
            self.flush()

    def flush(self) -> None:
        """Write the buffered clips: each array's shard file once, whole, the data first, `error`, then `done`.

        Clips of the shard that are not buffered keep what the file holds (the block is read first), so a re-run
        that redoes a shard's failed clips leaves its done ones as they were."""
        if self._rows:
            start, stop = self.shard_bounds(self._shard)
            data = sorted({name for row in self._rows.values() for name in row} - {"error", "done"})
            for name in [*data, "error", "done"]:
                array = self.group[name]
                block = array[start:stop]  # (K, ...) the shard as the file holds it
                for index, row in self._rows.items():
                    if name in row:
                        block[index - start] = row[name]
                array[start:stop] = block  # one shard file, replaced whole
        self._shard, self._rows, self._settled = None, {}, None
