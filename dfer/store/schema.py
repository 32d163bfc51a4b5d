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

from dfer.streams import MODES, Stream, found_key

FORMAT = "dfer-cache/4"  # the root attribute `format`; written last, so a store without it is unfinished
# A store of the two historic streams, `video` of a vision encoder and `audio` of an audio encoder (`dfer.streams`),
# is written in format 3, array for array and attribute for attribute as before streams were data, so today's
# commands give today's stores; any other set of streams takes format 4, which records its streams (`Layout.tokens`).
HISTORIC_FORMAT = "dfer-cache/3"
# Formats this code reads (and resumes, each in its own format): 2 is 3 with a chunk file per clip instead of shards
# (3 added the root attribute `shard_clips`); 1 is 2 with float16 tokens (2 added `token_dtype` int8).
READABLE_FORMATS = ("dfer-cache/1", "dfer-cache/2", HISTORIC_FORMAT, FORMAT)

# ----------------------------------------------------------------------------------------------- arrays


class TokenArray(NamedTuple):
    """One stream's tokens in a store: the input it reads and its per-clip shape, (T, N, D) for a grid, (Ta_max, D)
    for a sequence, (T, D) for a vector; and the 3-D points a frame stream's encoder locates per frame, kept beside
    its tokens (`landmarks_array`: face actions' 478 landmarks), 0 for none."""

    input: str
    shape: tuple[int, ...]
    points: int = 0


@dataclass(frozen=True)
class Layout:
    """The sizes that fix the arrays' shapes, derived from the streams' encoders and the extraction settings."""

    frames: int  # T
    image_size: int  # S, the face crops' side (0: no stream reads faces)
    samples: int  # S_max, waveform samples in `max_seconds`
    keep_media: bool
    tokens: dict[str, TokenArray]  # stream -> its tokens, in name order
    token_dtype: str = "float16"  # one of TOKEN_DTYPES; stores of format 1 have no such field and hold float16

    def __post_init__(self):
        if self.token_dtype not in TOKEN_DTYPES:
            raise ValueError(f"token dtype {self.token_dtype!r} is not one of {', '.join(TOKEN_DTYPES)}")

    @classmethod
    def from_settings(cls, frames: int, encoders: dict[str, tuple[str, dict]], max_seconds: float, keep_media: bool,
                      sample_rate: int = 16000, token_dtype: str = "float16") -> Layout:
        """encoders: stream -> (its encoder's kind, "vision", "audio" or "actions"; its `describe()` record)."""
        tokens, image_size = {}, 0
        for name, (kind, entry) in sorted(encoders.items()):
            if kind == "vision":
                if image_size and entry["image_size"] != image_size:
                    raise ValueError(f"stream {name!r} takes {entry['image_size']} px face crops and another stream "
                                     f"{image_size} px: the streams of one store share its crops")
                image_size = entry["image_size"]
                tokens[name] = TokenArray("face", (frames, entry["num_tokens"], entry["dim"]))
            elif kind == "actions":
                tokens[name] = TokenArray("frame", (frames, entry["dim"]), entry.get("points", 0))
            else:
                # +1: a span of exactly max_seconds can round up to one more encoder frame
                tokens[name] = TokenArray("waveform", (math.ceil(max_seconds / entry["frame_seconds"]) + 1, entry["dim"]))
                sample_rate = entry["sample_rate"]
        return cls(frames=frames, image_size=image_size, samples=round(max_seconds * sample_rate),
                   keep_media=keep_media, tokens=tokens, token_dtype=token_dtype)

    @property
    def inputs(self) -> set[str]:
        """The inputs the streams read: some of "face", "waveform" and "frame"."""
        return {array.input for array in self.tokens.values()}

    @property
    def sees(self) -> bool:
        """A stream reads the picture (face crops or whole frames): faces are tracked, and the track is kept."""
        return bool(self.inputs & set(MODES["video"]))

    @property
    def historic(self) -> bool:
        """The two streams of every store before format 4 (see HISTORIC_FORMAT)."""
        return {name: array.input for name, array in self.tokens.items()} == {"audio": "waveform", "video": "face"}

    @property
    def format(self) -> str:
        return HISTORIC_FORMAT if self.historic else FORMAT

    def record(self) -> dict:
        """The store's root attribute `layout`: format 3's fields for the historic streams, key for key."""
        if self.historic:
            (audio_frames, audio_dim), (_, num_tokens, vision_dim) = self.tokens["audio"].shape, self.tokens["video"].shape
            return {"frames": self.frames, "image_size": self.image_size, "num_tokens": num_tokens,
                    "vision_dim": vision_dim, "audio_dim": audio_dim, "audio_frames": audio_frames,
                    "samples": self.samples, "keep_media": self.keep_media, "token_dtype": self.token_dtype}
        return {"frames": self.frames, "image_size": self.image_size, "samples": self.samples,
                "keep_media": self.keep_media, "token_dtype": self.token_dtype,
                "tokens": {name: {"input": array.input, "shape": list(array.shape),
                                  **({"points": array.points} if array.points else {})}
                           for name, array in self.tokens.items()}}

    @classmethod
    def from_record(cls, record: dict) -> Layout:
        """A store's `layout` attribute, of any format (format 1's lacks the token dtype: float16)."""
        record = {"token_dtype": "float16", **record}
        if "tokens" in record:
            tokens = {name: TokenArray(array["input"], tuple(array["shape"]), array.get("points", 0))
                      for name, array in record["tokens"].items()}
        else:
            tokens = {"audio": TokenArray("waveform", (record["audio_frames"], record["audio_dim"])),
                      "video": TokenArray("face", (record["frames"], record["num_tokens"], record["vision_dim"]))}
        return cls(frames=record["frames"], image_size=record["image_size"], samples=record["samples"],
                   keep_media=record["keep_media"], tokens=tokens, token_dtype=record["token_dtype"])


class ArraySpec(NamedTuple):
    """One per-clip array: its shape after the clip axis, dtype and fill value (what a clip never written holds,
    and what a clip without the stream keeps), and its compressor."""

    shape: tuple[int, ...]
    dtype: Any
    fill: Any
    compressor: Any = "auto"


TOKEN_DTYPES = ("float16", "int8")  # see encode_tokens
SCALE_SUFFIXES = ("_scale", "_offset")  # int8 tokens: `<tokens>_scale` and `<tokens>_offset` beside the codes
TOKENS_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")  # shuffled float16 compresses ~1.3-2x
MEDIA_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")  # fast on images and int16 audio
# input -> the media stage 3 reads (--keep-media). The inputs' arrays keep the groups they always had: `video/` holds
# the face track, `audio/` the waveform; each stream's tokens are under its own name.
MEDIA_ARRAYS = {"face": "video/faces", "waveform": "audio/waveform"}


def tokens_array(stream: str) -> str:
    """The store array of a stream's tokens."""
    return f"{stream}/tokens"


def length_array(stream: str) -> str:
    """The store array of a sequence stream's valid tokens per clip."""
    return f"{stream}/length"


def found_array(stream: str, input: str) -> str:
    """The store array of the frames whose tokens hold the face, of a stream reading `input` ("face" or "frame"):
    the face track's `video/face_found` for face crops, a frame stream's own `<stream>/found` (its encoder may miss
    a face the track has)."""
    return "video/face_found" if input == "face" else f"{stream}/found"


def landmarks_array(stream: str) -> str:
    """The store array of the 3-D points a frame stream's encoder located per frame (`TokenArray.points`)."""
    return f"{stream}/landmarks"


def array_specs(layout: Layout) -> dict[str, ArraySpec]:
    """Per-clip arrays, each chunked one clip per chunk, the chunks grouped into shard files (`dfer.store.clip_store`):
    name -> spec. The face track's arrays where a stream reads the picture, its crops where one reads faces, the
    waveform's where one reads it."""
    T, L = layout.frames, layout
    specs = {
        "done": ArraySpec((), "bool", False),
        "error": ArraySpec((), str, ""),
        "note": ArraySpec((), str, ""),  # why a finished clip is partly masked, e.g. "no audio stream"
        "duration": ArraySpec((), "float32", 0.0),
        "span": ArraySpec((2,), "float32", 0.0),
        "has_video": ArraySpec((), "bool", False),
        "has_audio": ArraySpec((), "bool", False),
        "video/frame_time": ArraySpec((T,), "float32", 0.0),
    }
    if layout.sees:
        specs.update({
            "video/box": ArraySpec((T, 4), "float32", 0.0),
            **({"video/landmarks": ArraySpec((T, 5, 2), "float32", 0.0)} if "face" in layout.inputs else {}),  # crop px
            "video/face_found": ArraySpec((T,), "bool", False),
            "video/track_rank": ArraySpec((), "int16", -1),  # the cropped face track: 0 the largest; -1 none (no face, pre-cropped)
            "video/track_count": ArraySpec((), "int16", 0),  # face tracks found in the clip
            "video/speaker_score": ArraySpec((), "float32", float("nan")),  # the chosen track's mouth motion while voiced
        })
    if "waveform" in layout.inputs:
        specs["audio/num_samples"] = ArraySpec((), "int32", 0)
    for stream, array in layout.tokens.items():
        specs[tokens_array(stream)] = ArraySpec(array.shape, L.token_dtype, 0, TOKENS_CODEC)
        if layout.token_dtype == "int8":  # (1, ..., 1, D): broadcasts against a clip's or a batch's codes
            for suffix in SCALE_SUFFIXES:
                specs[tokens_array(stream) + suffix] = ArraySpec((*(1,) * (len(array.shape) - 1), array.shape[-1]),
                                                                 "float32", 0.0)
        if array.input == "waveform":
            specs[length_array(stream)] = ArraySpec((), "int32", 0)
        if array.input == "frame":
            specs[found_array(stream, "frame")] = ArraySpec((T,), "bool", False)
        if array.points:  # NaN where the face was not read
            specs[landmarks_array(stream)] = ArraySpec((T, array.points, 3), "float32", float("nan"), TOKENS_CODEC)
    if layout.keep_media and "face" in layout.inputs:
        specs[MEDIA_ARRAYS["face"]] = ArraySpec((T, 3, L.image_size, L.image_size), "uint8", 0, MEDIA_CODEC)
    if layout.keep_media and "waveform" in layout.inputs:
        specs[MEDIA_ARRAYS["waveform"]] = ArraySpec((L.samples,), "int16", 0, MEDIA_CODEC)
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


def batch_arrays(streams: Iterable[Stream], media: bool = False, token_dtype: str = "float16") -> dict[str, str]:
    """Batch key -> store array for a model reading `streams`: stage 2's (`dfer train`, `dfer predict`) each stream's
    `<stream>_tokens` (with an int8 store's `_scale` and `_offset`), a sequence's `<stream>_length` and a frame
    stream's `<stream>_found` (`dfer.streams.found_key`); stage 3's
    (`media`) the media its encoders read in their place (`faces`, `waveform` and `num_samples`). Beside them, the face
    track where a stream reads faces, and what every model reads. Arrays of other streams are never read (an audio
    model skips `video/tokens`, the largest array by far)."""
    streams = list(streams)
    inputs = {stream.input for stream in streams}
    fields = {}
    if "face" in inputs:
        fields.update(landmarks="video/landmarks", face_found="video/face_found")
    fields.update(has_video="has_video", has_audio="has_audio", frame_time="video/frame_time", label="label")
    if media:
        if "face" in inputs:
            fields["faces"] = MEDIA_ARRAYS["face"]
        if "waveform" in inputs:
            fields.update(waveform=MEDIA_ARRAYS["waveform"], num_samples="audio/num_samples")
        return fields
    for stream in streams:
        fields[f"{stream.name}_tokens"] = tokens_array(stream.name)
        if token_dtype == "int8":
            fields.update({f"{stream.name}_tokens{suffix}": tokens_array(stream.name) + suffix
                           for suffix in SCALE_SUFFIXES})
        if stream.input == "waveform":
            fields[f"{stream.name}_length"] = length_array(stream.name)
        if stream.input == "frame":
            fields[found_key(stream)] = found_array(stream.name, stream.input)
    return fields


def is_tokens_key(key: str) -> bool:
    """A batch key holding a stream's encoded tokens (`decode_tokens`), not their scales."""
    return key.endswith("_tokens")
