"""The Zarr v3 token cache: one store per (dataset, encoder configuration), one chunk per clip.

Why this layout: every array has the clip as its first axis and a chunk of exactly one clip, so writing clip
i touches only files that belong to clip i. Processes filling disjoint clips never write the same file, an
interrupted run loses at most the clips in flight, and a reader gets a whole clip with one chunk read per
array. A clip counts only once its `done` flag is set, and that flag is written after everything else.
The arrays, dtypes and encodings are defined in `dfer.store.schema` and documented in `cache/README.md`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from dfer.data.clip import DatasetListing
from dfer.store import fingerprint as fp
from dfer.store.schema import FORMAT, INFO_PREFIX, LISTING_DTYPES, READABLE_FORMATS, Layout, array_specs


FORMAT_1_DEFAULTS = {"token_dtype": "float16"}  # what a store of format 1 holds without saying so


class ClipStore:
    """A cache on disk. Create it once (rank 0), open it anywhere, write clips independently."""

    def __init__(self, path: Path, group: zarr.Group):
        self.path = Path(path)
        self.group = group

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
        C = len(listing.clips)
        for name, spec in array_specs(layout).items():
            group.create_array(name, shape=(C, *spec.shape), chunks=(1, *spec.shape), dtype=spec.dtype,
                               fill_value=spec.fill, compressors=spec.compressor)
        clips = listing.clips
        listing_values = {name: (dtype, [getattr(c, name) for c in clips]) for name, dtype in LISTING_DTYPES.items()}
        for key in sorted({key for clip in clips for key in clip.info}):
            listing_values[INFO_PREFIX + key] = (str, [clip.info.get(key, "") for clip in clips])
        for name, (dtype, values) in listing_values.items():
            array = group.create_array(name, shape=(C,), chunks=(max(C, 1),), dtype=dtype)
            array[:] = np.array(values, dtype=dtype)
        # Attributes last: a store without them is treated as unfinished creation and refused on open.
        group.attrs.update(
            {
                "dataset": listing.name,
                "classes": list(listing.classes),
                "protocol": listing.protocol,
                "layout": layout.__dict__,
                "fingerprint": fingerprint,
                "format": FORMAT,
            }
        )
        return cls(path, group)

    def check_matches(self, fingerprint: dict, layout: Layout, listing: DatasetListing) -> None:
        fp.check(self.path, fingerprint, self.fingerprint)
        fp.check(self.path, {"layout": layout.__dict__}, {"layout": self.layout.__dict__})
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

    # ----- reading -----

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def fingerprint(self) -> dict:
        return {**FORMAT_1_DEFAULTS, **self.group.attrs["fingerprint"]}

    @property
    def layout(self) -> Layout:
        return Layout(**self.group.attrs["layout"])

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

    # ----- writing one clip -----

    def write_clip(self, index: int, values: dict[str, np.ndarray]) -> None:
        """Write one finished clip: its arrays, a cleared error, and `done` last."""
        for name, value in values.items():
            self.group[name][index] = value
        self.group["error"][index] = ""
        self.group["done"][index] = True

    def write_failure(self, index: int, message: str) -> None:
        """Record why a clip failed; `done` stays False so a later run retries it."""
        self.group["done"][index] = False
        self.group["error"][index] = message
