"""The token store's schema in one place: which arrays a store holds, how values are encoded in them, and which
of them each stage's batches read.

Stage 1 writes these arrays (`dfer.extract.batch`), `ClipStore` creates them, stage 2 and stage 3 read them
(`dfer.inference.batch`, `dfer.train.data`, `dfer.finetune.data`) and `dfer predict` fills the rows of a clip without
a stream as a store would. Keeping the names, shapes, dtypes, fills and encodings here means a change to the layout
is one edit, and a reader cannot disagree with the writer. Changing any spec changes what existing stores hold: bump
`FORMAT`.
`cache/README.md` documents every array listed here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from zarr.codecs import BloscCodec

FORMAT = "dfer-cache/3"  # the root attribute `format`; written last, so a store without it is unfinished
# Formats this code reads (and resumes): 2 is 3 with a chunk file per clip instead of shards (3 added the root
# attribute `shard_clips`); 1 is 2 with float16 tokens (2 added `token_dtype` int8).
READABLE_FORMATS = ("dfer-cache/1", "dfer-cache/2", FORMAT)

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
    token_dtype: str = "float16"  # one of TOKEN_DTYPES; stores of format 1 have no such field and hold float16

    def __post_init__(self):
        if self.token_dtype not in TOKEN_DTYPES:
            raise ValueError(f"token dtype {self.token_dtype!r} is not one of {', '.join(TOKEN_DTYPES)}")

    @classmethod
    def from_settings(cls, frames: int, vision: dict, audio: dict, max_seconds: float, keep_media: bool,
                      token_dtype: str = "float16") -> Layout:
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
            token_dtype=token_dtype,
        )


class ArraySpec(NamedTuple):
    """One per-clip array: its shape after the clip axis, dtype and fill value (what a clip never written holds,
    and what a clip without the stream keeps), and its compressor."""

    shape: tuple[int, ...]
    dtype: Any
    fill: Any
    compressor: Any = "auto"


TOKEN_DTYPES = ("float16", "int8")  # see encode_tokens
TOKEN_ARRAYS = {"video": "video/tokens", "audio": "audio/tokens"}  # stream -> its encoder tokens
SCALE_SUFFIXES = ("_scale", "_offset")  # int8 tokens: `<tokens>_scale` and `<tokens>_offset` beside the codes
TOKENS_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")  # shuffled float16 compresses ~1.3-2x
MEDIA_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")  # fast on images and int16 audio
MEDIA_ARRAYS = {"video": "video/faces", "audio": "audio/waveform"}  # stream -> the media stage 3 reads (--keep-media)


def array_specs(layout: Layout) -> dict[str, ArraySpec]:
    """Per-clip arrays, each chunked one clip per chunk, the chunks grouped into shard files (`dfer.store.clip_store`):
    name -> spec."""
    T, L = layout.frames, layout
    specs = {
        "done": ArraySpec((), "bool", False),
        "error": ArraySpec((), str, ""),
        "note": ArraySpec((), str, ""),  # why a finished clip is partly masked, e.g. "no audio stream"
        "duration": ArraySpec((), "float32", 0.0),
        "span": ArraySpec((2,), "float32", 0.0),
        "has_video": ArraySpec((), "bool", False),
        "has_audio": ArraySpec((), "bool", False),
        "video/tokens": ArraySpec((T, L.num_tokens, L.vision_dim), L.token_dtype, 0, TOKENS_CODEC),
        "video/frame_time": ArraySpec((T,), "float32", 0.0),
        "video/box": ArraySpec((T, 4), "float32", 0.0),
        "video/landmarks": ArraySpec((T, 5, 2), "float32", 0.0),
        "video/face_found": ArraySpec((T,), "bool", False),
        "video/track_rank": ArraySpec((), "int16", -1),  # the cropped face track: 0 the largest; -1 none (no face, pre-cropped)
        "video/track_count": ArraySpec((), "int16", 0),  # face tracks found in the clip
        "video/speaker_score": ArraySpec((), "float32", float("nan")),  # the chosen track's mouth motion while voiced
        "audio/tokens": ArraySpec((L.audio_frames, L.audio_dim), L.token_dtype, 0, TOKENS_CODEC),
        "audio/length": ArraySpec((), "int32", 0),
        "audio/num_samples": ArraySpec((), "int32", 0),
    }
    if layout.token_dtype == "int8":
        for name, spec in list(specs.items()):
            if name in TOKEN_ARRAYS.values():  # (1, ..., 1, D): broadcasts against a clip's or a batch's codes
                for suffix in SCALE_SUFFIXES:
                    specs[name + suffix] = ArraySpec((*(1,) * (len(spec.shape) - 1), spec.shape[-1]), "float32", 0.0)
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


INT8_LEVELS = 127  # codes -127..127: symmetric around the offset, so -128 is never used


def encode_tokens(name: str, tokens: np.ndarray, dtype: str, valid: int | None = None) -> dict[str, np.ndarray]:
    """One clip's encoder tokens (..., D) as the store holds them: array name -> value.

    float16: the tokens alone, half the bytes of float32 at about 1e-3 relative error.
    int8: codes plus, per dimension, a scale and an offset fixed per clip (`name_scale`, `name_offset`, (1, ..., D)
    float32): the clip's range of that dimension spread over 255 levels. Per dimension because vision transformers
    have a few outlier dimensions with ~100x the spread of the rest: a per-token scale is set by them and rounds
    every other dimension to a handful of levels, whereas here each dimension keeps 255 levels of its own spread.
    Per clip because a store is written clip by clip (no pass over the dataset first); the error is at most half a
    step, (max - min) / 508 of that dimension in that clip (`cache/README.md` has the measured figures).
    `valid`: the leading rows holding tokens (audio: `audio/length`); the padding after them is left out of the
    range and gets code 0 (it decodes to the offset; readers mask it)."""
    if dtype == "float16":
        return {name: tokens.astype(np.float16)}
    x = np.asarray(tokens, np.float32)  # (..., D)
    held = x[:valid].reshape(-1, x.shape[-1])  # (L, D)
    low, high = (held.min(0), held.max(0)) if len(held) else (np.zeros(x.shape[-1], np.float32),) * 2  # (D,)
    offset = (high + low) / 2  # (D,)
    scale = (high - low) / (2 * INT8_LEVELS)  # (D,)
    inverse = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)  # a constant dimension: code 0
    codes = np.clip(np.rint((x - offset) * inverse), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)  # (..., D)
    if valid is not None:
        codes[valid:] = 0
    shape = (*(1,) * (x.ndim - 1), x.shape[-1])  # (1, ..., D)
    return {name: codes, name + "_scale": scale.reshape(shape), name + "_offset": offset.reshape(shape)}


def decode_tokens(stored, scale=None, offset=None):
    """Stored tokens back to float32 for the heads: float16 as they are, int8 as `codes * scale + offset`.

    The same function decodes numpy rows and torch tensors: a training batch moves to the device
    as int8 codes and is decoded there (`dfer.inference.batch.to_device`), a quarter of the bytes of float32. `scale` and
    `offset` broadcast against the codes (a clip's (1, ..., D), or a batch's (B, 1, ..., D))."""
    if scale is None:
        return stored.float() if hasattr(stored, "float") else stored.astype(np.float32)
    if isinstance(stored, torch.Tensor):
        return torch.addcmul(offset, stored, scale)  # one pass, no (B, ..., D) temporary: a third of `* +`'s time
    return stored * scale + offset


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
# int8 stores add each token key's scale and offset: `video_tokens_scale` <- `video/tokens_scale`, ...
INT8_BATCH = {key + suffix: Field(TOKEN_BATCH[key].array + suffix, TOKEN_BATCH[key].stream)
              for key in TOKEN_KEYS for suffix in SCALE_SUFFIXES}

# Stage 3 (`dfer finetune`): stage 2's keys with the tokens swapped for the media the encoders turn into them.
MEDIA_BATCH = {
    **{key: field for key, field in TOKEN_BATCH.items() if key not in (*TOKEN_KEYS, "audio_length")},
    "faces": Field(MEDIA_ARRAYS["video"], "video"),
    "waveform": Field(MEDIA_ARRAYS["audio"], "audio"),
    "num_samples": Field("audio/num_samples", "audio"),
}


def batch_arrays(streams: Iterable[str], media: bool = False, token_dtype: str = "float16") -> dict[str, str]:
    """Batch key -> store array for a model reading `streams` (e.g. ("video", "audio")): stage 3's fields with
    `media`, else stage 2's (with the scales of a `token_dtype` int8 store). Arrays of other streams are never read
    (an audio model skips `video/tokens`)."""
    streams = set(streams)
    fields = MEDIA_BATCH if media else {**TOKEN_BATCH, **(INT8_BATCH if token_dtype == "int8" else {})}
    return {key: field.array for key, field in fields.items() if field.stream is None or field.stream in streams}
