"""The Zarr v3 token cache: one store per (dataset, encoder configuration), one chunk per clip.

Why this layout: every array has the clip as its first axis and a chunk of exactly one clip, so writing clip
i touches only files that belong to clip i. Processes filling disjoint clips never write the same file, an
interrupted run loses at most the clips in flight, and a reader gets a whole clip with one chunk read per
array. A clip counts only once its `done` flag is set, and that flag is written after everything else.
The full schema is documented in `cache/README.md`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from dfer.data.clip import DatasetListing
from dfer.store import fingerprint as fp

FORMAT = "dfer-cache/1"
TOKENS_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")  # shuffled float16 compresses ~1.3-2x
MEDIA_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")  # fast on images and int16 audio


@dataclass(frozen=True)
class Layout:
    """The sizes that fix the arrays' shapes, derived from the encoders and the extraction settings."""

    frames: int  # T
    image_size: int  # S, the vision encoder's input side
    num_tokens: int  # N patch tokens per frame
    vision_dim: int  # D
    audio_dim: int  # Da
    audio_frames: int  # Ta_max, encoder frames in `max_seconds`
    samples: int  # S_max, waveform samples in `max_seconds`
    keep_media: bool

    @classmethod
    def from_settings(cls, frames: int, vision: dict, audio: dict, max_seconds: float, keep_media: bool) -> Layout:
        return cls(
            frames=frames,
            image_size=vision["image_size"],
            num_tokens=vision["num_tokens"],
            vision_dim=vision["dim"],
            audio_dim=audio["dim"],
            # +1: a span of exactly max_seconds can round up to one more encoder frame
            audio_frames=math.ceil(max_seconds / audio["frame_seconds"]) + 1,
            samples=round(max_seconds * audio["sample_rate"]),
            keep_media=keep_media,
        )


def _array_specs(layout: Layout) -> dict[str, tuple[tuple[int, ...], Any, Any]]:
    """Per-clip arrays: name -> (shape after the clip axis, dtype, fill value)."""
    T, L = layout.frames, layout
    specs: dict[str, tuple[tuple[int, ...], Any, Any]] = {
        "done": ((), "bool", False),
        "error": ((), str, ""),
        "note": ((), str, ""),  # why a finished clip is partly masked, e.g. "no audio stream"
        "duration": ((), "float32", 0.0),
        "span": ((2,), "float32", 0.0),
        "has_video": ((), "bool", False),
        "has_audio": ((), "bool", False),
        "video/tokens": ((T, L.num_tokens, L.vision_dim), "float16", 0.0),
        "video/frame_time": ((T,), "float32", 0.0),
        "video/box": ((T, 4), "float32", 0.0),
        "video/landmarks": ((T, 5, 2), "float32", 0.0),
        "video/face_found": ((T,), "bool", False),
        "video/track_rank": ((), "int16", -1),  # the cropped face track: 0 the largest; -1 none (no face, pre-cropped)
        "video/track_count": ((), "int16", 0),  # face tracks found in the clip
        "video/speaker_score": ((), "float32", float("nan")),  # the chosen track's mouth motion while voiced
        "audio/tokens": ((L.audio_frames, L.audio_dim), "float16", 0.0),
        "audio/length": ((), "int32", 0),
        "audio/num_samples": ((), "int32", 0),
    }
    if layout.keep_media:
        specs["video/faces"] = ((T, 3, L.image_size, L.image_size), "uint8", 0)
        specs["audio/waveform"] = ((L.samples,), "int16", 0)
    return specs


# Written once at creation from the dataset listing, so they can share a chunk: only the creator writes them.
LISTING_ARRAYS = ("clip_id", "label", "speaker", "fold", "split")


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
        if group.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not a dfer cache (format {group.attrs.get('format')!r}, expected {FORMAT!r})")
        return cls(path, group)

    @classmethod
    def _create(cls, path: Path, fingerprint: dict, layout: Layout, listing: DatasetListing) -> ClipStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(str(path), mode="w-")
        C = len(listing.clips)
        for name, (shape, dtype, fill) in _array_specs(layout).items():
            big = name in ("video/tokens", "audio/tokens")
            media = name in ("video/faces", "audio/waveform")
            group.create_array(
                name, shape=(C, *shape), chunks=(1, *shape), dtype=dtype, fill_value=fill,
                compressors=TOKENS_CODEC if big else MEDIA_CODEC if media else "auto",
            )
        clips = listing.clips
        listing_values = {
            "clip_id": (str, [c.clip_id for c in clips]),
            "label": ("int16", [c.label for c in clips]),
            "speaker": (str, [c.speaker for c in clips]),
            "fold": ("int8", [c.fold for c in clips]),
            "split": (str, [c.split for c in clips]),
        }
        for key in sorted({key for clip in clips for key in clip.info}):
            listing_values[f"info/{key}"] = (str, [clip.info.get(key, "") for clip in clips])
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
        fp.check(self.path, {"layout": layout.__dict__}, {"layout": dict(self.attrs["layout"])})
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
        return dict(self.group.attrs["fingerprint"])

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
