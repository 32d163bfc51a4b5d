"""What makes two caches interchangeable, and a readable answer when they are not.

Tokens from different encoders, frame counts or crop margins must never be mixed in one store, and a run
trained on one cache must not be scored on tokens of another. A store records its fingerprint as a nested dict of
plain JSON values in its root attributes, and a run copies it into its config.json; comparing two gives the dotted
names of the fields that differ, so the error can say which one.

`Fingerprint` is that record typed, and the one place that knows its formats: what extraction writes (`to_dict`),
every record a store or run has ever held read back (`from_dict`: older ones lack the fields added since, which read
as what those stores did), and the settings it maps back to, to extract as a store was (`extract_settings`) or to
decode and encode a file as its clips were (`prediction_layout`, `decode_short_side`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dfer.encoders.build import seed_of
from dfer.encoders.presets import RANDOM_PREFIX
from dfer.faces.settings import FRAME_SHORT_SIDE, LEGACY_FACES, FaceSettings
from dfer.store.schema import Layout
from dfer.streams import HISTORIC, INPUTS, Stream


TOKEN_FIELDS = ("vision", "audio", "streams", "frames", "sample_rate", "crop_margin")  # what decides a store's tokens
# Fields added after the first stores, with what a record without them meant: stores before the speaker choice cropped
# the largest face, stores before int8 tokens held float16, adapters had no options. The face settings' absence is
# FaceSettings' own (LEGACY_FACES).
LATER_FIELDS = {"token_dtype": "float16", "face_track": "largest", "dataset_options": {}}


class FingerprintMismatch(ValueError):
    """Raised when a store is opened with settings that would produce different tokens."""


@dataclass(frozen=True)
class Fingerprint:
    """The settings a store's tokens (and the media it keeps) were made with."""

    dfer_version: str
    # A store of the two historic streams records their encoders' `describe()` (spec `id`, revision, token shapes) as
    # `vision` (the stream `video`) and `audio` (the stream `audio`), as every store before streams were data did;
    # any other store records `streams`: stream -> {"kind": its encoder's kind, **its `describe()`}, in name order.
    vision: dict | None
    audio: dict | None
    frames: int
    sample_rate: int
    crop_margin: float
    max_seconds: float  # as recorded: 8 where a recipe gave an int
    keep_media: bool
    token_dtype: str = LATER_FIELDS["token_dtype"]
    face_track: str = LATER_FIELDS["face_track"]
    faces: FaceSettings = LEGACY_FACES
    dataset_options: dict = field(default_factory=dict)
    streams: dict | None = None
    unrecorded: frozenset[str] = frozenset()  # LATER_FIELDS its record lacks: `to_dict` leaves them out again

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Fingerprint:
        """Any fingerprint a store or run holds, of any format; fields it lacks read as LATER_FIELDS says."""
        known = {f.name for f in dataclasses.fields(cls)} - {"faces", "unrecorded"}
        unknown = set(record) - known - {"face_detect", "frame_short_side"}
        if unknown:
            raise ValueError(f"a fingerprint with fields this dfer does not know: {', '.join(sorted(unknown))}")
        values = {"vision": None, "audio": None, **{key: value for key, value in record.items() if key in known}}
        return cls(**values, faces=FaceSettings.of(record), unrecorded=frozenset(LATER_FIELDS) - set(record))

    @classmethod
    def of_encoders(cls, encoders: dict[str, tuple[str, dict]], **settings) -> Fingerprint:
        """The fingerprint of a store of these streams (stream -> (encoder kind, its `describe()`)): the historic two
        in their own fields, any others in `streams`."""
        if {name: kind for name, (kind, _) in encoders.items()} == {HISTORIC[kind]: kind for kind in HISTORIC}:
            return cls(vision=encoders["video"][1], audio=encoders["audio"][1], **settings)
        streams = {name: {"kind": kind, **entry} for name, (kind, entry) in sorted(encoders.items())}
        return cls(vision=None, audio=None, streams=streams, **settings)

    def to_dict(self) -> dict[str, Any]:
        """The record as extraction writes it, key for key and in its order: a record read back gives itself."""
        encoders = {"streams": self.streams} if self.streams is not None else {"vision": self.vision, "audio": self.audio}
        record = {
            "dfer_version": self.dfer_version,
            **encoders,
            "frames": self.frames,
            "sample_rate": self.sample_rate,
            "crop_margin": self.crop_margin,
            "max_seconds": self.max_seconds,
            "keep_media": self.keep_media,
            "token_dtype": self.token_dtype,
            "face_track": self.face_track,
            **self.faces.record(),  # nothing for LEGACY_FACES, so a store made before them keeps its old fingerprint
            "dataset_options": self.dataset_options,
        }
        return {key: value for key, value in record.items() if key not in self.unrecorded}

    @property
    def encoders(self) -> dict[str, tuple[str, dict]]:
        """Stream -> (its encoder's kind, "vision" or "audio"; its entry, what `dfer.encoders.rebuild_encoder` takes)."""
        if self.streams is None:
            return {"audio": ("audio", self.audio), "video": ("vision", self.vision)}
        return {name: (entry["kind"], {key: value for key, value in entry.items() if key != "kind"})
                for name, entry in self.streams.items()}

    def stream_shapes(self) -> tuple[Stream, ...]:
        """The store's streams as heads are built for them, in name order."""
        return tuple(Stream.of_encoder(name, kind, entry) for name, (kind, entry) in self.encoders.items())

    @property
    def seed(self) -> int:
        """The one `--seed` that rebuilds the store's random encoders (extraction takes a single seed for all)."""
        seeds = {seed_of(entry) for _, entry in self.encoders.values() if str(entry["id"]).startswith(RANDOM_PREFIX)}
        if len(seeds) > 1:
            raise ValueError(f"the store's encoders were built with different seeds {sorted(seeds)}")
        return seeds.pop() if seeds else 0

    def layout(self) -> Layout:
        """The arrays of the store these settings make."""
        return Layout.from_settings(self.frames, self.encoders, self.max_seconds, self.keep_media, self.sample_rate,
                                    self.token_dtype)

    def prediction_layout(self) -> Layout:
        """What a file is encoded into to be predicted: the tokens only (no face crops nor waveform), in float16."""
        return Layout.from_settings(self.frames, self.encoders, self.max_seconds, False, self.sample_rate)

    @property
    def decode_short_side(self) -> int:
        """The shorter side frames are decoded to for prediction: the store's, or FRAME_SHORT_SIDE for a store that
        decoded at full size (before face settings were recorded), so one upload never takes gigabytes; every file
        such a store was tested on is at most that size, and decodes exactly as it did."""
        return self.faces.frame_short_side or FRAME_SHORT_SIDE

    def extract_settings(self, same_dataset: bool) -> dict[str, Any]:
        """`dfer.extract.pipeline.ExtractConfig` fields that extract clips as this store's were: its encoders (random
        ones with its seed), frames, audio, crops and exact face settings, and its adapter's options when the clips
        are listed by the same adapter (`same_dataset`; another adapter would not know them). The token dtype is
        left to ExtractConfig's default."""
        encoders = ({"streams": {name: f"{INPUTS[kind]}:{entry['id']}" for name, (kind, entry) in self.encoders.items()}}
                    if self.streams is not None else {"vision": self.vision["id"], "audio": self.audio["id"]})
        return {
            **encoders, "seed": self.seed,
            "frames": self.frames, "sample_rate": self.sample_rate, "crop_margin": self.crop_margin,
            "max_seconds": self.max_seconds, "keep_media": self.keep_media,
            "face_track": self.face_track, "faces": self.faces,
            "dataset_options": self.dataset_options if same_dataset else {},
        }


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"vision": {"id": "x"}} -> {"vision.id": "x"}; lists are compared as whole values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Human-readable lines `field: store has A, this run has B`, sorted by field name."""
    want, have = flatten(expected), flatten(found)
    lines = []
    for name in sorted(set(want) | set(have)):
        if want.get(name, "<absent>") != have.get(name, "<absent>"):
            lines.append(f"{name}: store has {have.get(name, '<absent>')!r}, this run has {want.get(name, '<absent>')!r}")
    return lines


def check(store_path: object, expected: dict[str, Any], found: dict[str, Any],
          fields: tuple[str, ...] | None = None) -> None:
    """Raise FingerprintMismatch naming every differing field (of the top-level `fields` only, when given)."""
    if fields is not None:
        expected, found = ({key: tree[key] for key in fields if key in tree} for tree in (expected, found))
    lines = differences(expected, found)
    if lines:
        raise FingerprintMismatch(
            f"{store_path}: the store was made with different settings:\n  " + "\n  ".join(lines)
            + "\nUse another --out, or the store's own settings."
        )
