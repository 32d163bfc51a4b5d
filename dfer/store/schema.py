"""The token store's schema in one place: which arrays a store holds, how values are encoded in them, and which
of them each stage's batches read.

Stage 1 writes these arrays (`dfer.extract.batch`), `ClipStore` creates them, stage 2 and stage 3 read them
(`dfer.train.data`, `dfer.finetune.data`) and `dfer predict` fills the rows of a clip without a stream as a store
would. Keeping the names, shapes, dtypes, fills and encodings here means a change to the layout is one edit, and
a reader cannot disagree with the writer. Changing any spec changes what existing stores hold: bump `FORMAT`.
`cache/README.md` documents every array listed here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from zarr.codecs import BloscCodec

FORMAT = "dfer-cache/1"  # the root attribute `format`; written last, so a store without it is unfinished

# ----------------------------------------------------------------------------------------------- arrays


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


class ArraySpec(NamedTuple):
    """One per-clip array: its shape after the clip axis, dtype and fill value (what a clip never written holds,
    and what a clip without the stream keeps), and its compressor."""

    shape: tuple[int, ...]
    dtype: Any
    fill: Any
    compressor: Any = "auto"


TOKEN_DTYPE = "float16"  # see encode_tokens
TOKENS_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")  # shuffled float16 compresses ~1.3-2x
MEDIA_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")  # fast on images and int16 audio
MEDIA_ARRAYS = {"video": "video/faces", "audio": "audio/waveform"}  # stream -> the media stage 3 reads (--keep-media)


def array_specs(layout: Layout) -> dict[str, ArraySpec]:
    """Per-clip arrays, each chunked one clip per chunk: name -> spec."""
    T, L = layout.frames, layout
    specs = {
        "done": ArraySpec((), "bool", False),
        "error": ArraySpec((), str, ""),
        "note": ArraySpec((), str, ""),  # why a finished clip is partly masked, e.g. "no audio stream"
        "duration": ArraySpec((), "float32", 0.0),
        "span": ArraySpec((2,), "float32", 0.0),
        "has_video": ArraySpec((), "bool", False),
        "has_audio": ArraySpec((), "bool", False),
        "video/tokens": ArraySpec((T, L.num_tokens, L.vision_dim), TOKEN_DTYPE, 0.0, TOKENS_CODEC),
        "video/frame_time": ArraySpec((T,), "float32", 0.0),
        "video/box": ArraySpec((T, 4), "float32", 0.0),
        "video/landmarks": ArraySpec((T, 5, 2), "float32", 0.0),
        "video/face_found": ArraySpec((T,), "bool", False),
        "video/track_rank": ArraySpec((), "int16", -1),  # the cropped face track: 0 the largest; -1 none (no face, pre-cropped)
        "video/track_count": ArraySpec((), "int16", 0),  # face tracks found in the clip
        "video/speaker_score": ArraySpec((), "float32", float("nan")),  # the chosen track's mouth motion while voiced
        "audio/tokens": ArraySpec((L.audio_frames, L.audio_dim), TOKEN_DTYPE, 0.0, TOKENS_CODEC),
        "audio/length": ArraySpec((), "int32", 0),
        "audio/num_samples": ArraySpec((), "int32", 0),
    }
    if layout.keep_media:
        specs[MEDIA_ARRAYS["video"]] = ArraySpec((T, 3, L.image_size, L.image_size), "uint8", 0, MEDIA_CODEC)
        specs[MEDIA_ARRAYS["audio"]] = ArraySpec((L.samples,), "int16", 0, MEDIA_CODEC)
    return specs


# Per-clip columns of the dataset listing, written once at creation in one chunk (only the creator writes them):
# name -> dtype. Plus one string column `info/<key>` per extra key the adapter gives (`Clip.info`).
LISTING_DTYPES = {"clip_id": str, "label": "int16", "speaker": str, "fold": "int8", "split": str}
INFO_PREFIX = "info/"


def blank_row(layout: Layout, names: Iterable[str]) -> dict[str, np.ndarray]:
    """What the store holds in `names` for a clip without that stream (the fill values), so a clip built outside a
    store (`dfer predict`) looks like one read from it. Listing columns (e.g. `label`) have no blank and are left out."""
    specs = array_specs(layout)
    return {name: np.full(specs[name].shape, specs[name].fill, specs[name].dtype) for name in names if name in specs}


# -------------------------------------------------------------------------------------------- encodings

WAVE_SCALE = 32767.0  # int16 full scale: a waveform in -1..1 is stored as round(wave * 32767)


def encode_waveform(wave: np.ndarray, samples: int) -> np.ndarray:
    """A float waveform (S,) in -1..1 as `audio/waveform` stores it: int16, clipped, zero padded to (S_max,)."""
    padded = np.zeros(samples, np.int16)  # (S_max,)
    wave = wave[:samples]
    padded[: len(wave)] = np.round(np.clip(wave, -1.0, 1.0) * WAVE_SCALE).astype(np.int16)
    return padded


def decode_waveform(stored: np.ndarray) -> np.ndarray:
    """`audio/waveform` rows (..., S_max) int16 back to float32 in -1..1."""
    return stored.astype(np.float32) / WAVE_SCALE


def encode_tokens(tokens: np.ndarray) -> np.ndarray:
    """Encoder tokens (..., D) as `video/tokens` and `audio/tokens` store them: float16, half the bytes of float32
    at about 1e-3 relative error. A smaller encoding (e.g. int8 codes with a per-token scale) would change this,
    `decode_tokens`, `TOKEN_DTYPE` and the specs above together, with a new `FORMAT`."""
    return tokens.astype(TOKEN_DTYPE)


def decode_tokens(stored: np.ndarray) -> np.ndarray:
    """Stored tokens back to float32 for the heads."""
    return stored.astype(np.float32)


# ---------------------------------------------------------------------------------------------- batches


class Field(NamedTuple):
    """Where a batch key comes from: the store array, and the stream whose models need it (None: every model)."""

    array: str
    stream: str | None


# Stage 2 (`dfer train`, `dfer predict`): batch key -> field.
TOKEN_BATCH = {
    "video_tokens": Field("video/tokens", "video"),
    "landmarks": Field("video/landmarks", "video"),
    "face_found": Field("video/face_found", "video"),
    "audio_tokens": Field("audio/tokens", "audio"),
    "audio_length": Field("audio/length", "audio"),
    "has_video": Field("has_video", None),
    "has_audio": Field("has_audio", None),
    "frame_time": Field("video/frame_time", None),
    "label": Field("label", None),
}
TOKEN_KEYS = ("video_tokens", "audio_tokens")  # the batch keys holding encoded tokens (decode_tokens)

# Stage 3 (`dfer finetune`): stage 2's keys with the tokens swapped for the media the encoders turn into them.
MEDIA_BATCH = {
    **{key: field for key, field in TOKEN_BATCH.items() if key not in (*TOKEN_KEYS, "audio_length")},
    "faces": Field(MEDIA_ARRAYS["video"], "video"),
    "waveform": Field(MEDIA_ARRAYS["audio"], "audio"),
    "num_samples": Field("audio/num_samples", "audio"),
}


def batch_arrays(streams: Iterable[str], media: bool = False) -> dict[str, str]:
    """Batch key -> store array for a model reading `streams` (e.g. ("video", "audio")): stage 3's fields with
    `media`, else stage 2's. Arrays of other streams are never read (an audio model skips `video/tokens`)."""
    streams = set(streams)
    fields = MEDIA_BATCH if media else TOKEN_BATCH
    return {key: field.array for key, field in fields.items() if field.stream is None or field.stream in streams}
