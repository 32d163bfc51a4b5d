"""Streams: the named encoder outputs a store holds and heads read, as data rather than as two hard-wired names.

A stream is a name, the input its encoder reads and the shape of its tokens. The input fixes the token kind:

| input | encoder kind | token kind | a clip's tokens |
|---|---|---|---|
| `face` (the face crops of the T sampled frames) | vision | a grid per frame | (T, N, D), N = grid x grid |
| `waveform` (the clip's audio track) | audio | a sequence in time | (Ta, D), token j over [j, j + 1) x frame_seconds |
| `frame` (the T sampled frames whole, and the face dfer tracks on them) | actions | a vector per frame | (T, D) |

A `frame` stream reads what a `face` one is cut from: its encoder (face actions, `dfer.encoders.actions`) needs the
whole picture, and the track only says which face to read. It may miss the face on a frame where the track has it:
such a stream records its own frames read, `<stream>/found` (`dfer.store.schema.found_array`), where a grid's are the
track's `video/face_found`.

Heads keep one adapter per token kind (a grid through the ROI compressor and the temporal encoder, a vector through
a projection and the temporal encoder, a sequence through segment attention pooling, `dfer.heads.model`), so a store
of any streams trains one set of heads.

Every store and run made before streams were data has two: `video` (the vision encoder's) and `audio` (the audio
encoder's). `modalities` selects among a store's streams: "av", "audio" and "video" keep their meaning as the streams
that read the picture and the sound, the waveform, or the picture (face crops or whole frames); any other value is a
comma-separated list of stream names. The selected streams are always in name order, the order fusions concatenate
them in, which for the two historic streams is the order they always had ("audio", "video").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

INPUTS = {"vision": "face", "audio": "waveform", "actions": "frame"}  # encoder kind -> the input a stream of it reads
TOKEN_KINDS = {"face": "grid", "waveform": "sequence", "frame": "vector"}  # input -> the shape of its tokens
# the modes named by their inputs: "video" is what the picture gives, face crops or whole frames
MODES = {"av": ("face", "frame", "waveform"), "audio": ("waveform",), "video": ("face", "frame")}
# input -> the store array / batch key of the clips that have it
PRESENT = {"face": "has_video", "waveform": "has_audio", "frame": "has_video"}
HISTORIC = {"vision": "video", "audio": "audio"}  # encoder kind -> its stream's name in stores of formats 1-3
# mode -> the names of the historic streams it reads, in name order
HISTORIC_STREAMS = {mode: tuple(sorted(name for kind, name in HISTORIC.items() if INPUTS[kind] in inputs))
                    for mode, inputs in MODES.items()}
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Stream:
    """One stream's name, input and token shape: what heads are built for (a fingerprint entry holds more: the
    encoder's spec and revision). Grid fields are 0 but for a grid, `frame_seconds` 0 but for a sequence (a vector's
    shape is its width alone); a linear probe, which pools every token alike, records the width alone."""

    name: str
    input: str  # one of TOKEN_KINDS
    dim: int  # D, the token width
    grid: int = 0  # patches per side of the crop
    num_tokens: int = 0  # N = grid * grid
    image_size: int = 0  # the crop's side in pixels (the unit of the landmarks)
    frame_seconds: float = 0.0  # the time one sequence token covers

    def __post_init__(self):
        check_name(self.name)
        if self.input not in TOKEN_KINDS:
            raise ValueError(f"stream {self.name!r}: input must be one of {tuple(TOKEN_KINDS)}, not {self.input!r}")
        if self.tokens == "grid" and self.grid * self.grid != self.num_tokens:
            raise ValueError(f"stream {self.name!r}: num_tokens={self.num_tokens} is not grid*grid={self.grid}*{self.grid}")

    @property
    def tokens(self) -> str:
        """The token kind: "grid", "sequence" or "vector"."""
        return TOKEN_KINDS[self.input]

    @classmethod
    def of_encoder(cls, name: str, kind: str, entry: dict) -> Stream:
        """The stream an encoder of `kind` ("vision", "audio" or "actions") makes, from its `describe()` record."""
        if kind == "vision":
            return cls(name, "face", entry["dim"], entry.get("grid", 0), entry.get("num_tokens", 0),
                       entry.get("image_size", 0))
        if kind == "actions":
            return cls(name, "frame", entry["dim"])
        return cls(name, "waveform", entry["dim"], frame_seconds=entry.get("frame_seconds", 0.0))

    def to_dict(self) -> dict:
        return {key: value for key, value in dataclasses.asdict(self).items() if value or key in ("name", "input")}

    @classmethod
    def from_dict(cls, record: dict) -> Stream:
        return cls(**record)


def found_key(stream: Stream) -> str:
    """The batch key of the frames whose tokens hold the face, of a grid or vector stream: the face track's
    `face_found` for face crops, a frame stream's own `<stream>_found` (`dfer.store.schema.found_array`)."""
    return "face_found" if stream.input == "face" else f"{stream.name}_found"


def check_name(name: str) -> str:
    """A stream's name is an array group of the store and a prefix of batch keys: lower case, digits, underscores."""
    if not NAME.fullmatch(name):
        raise ValueError(f"stream name {name!r}: use 1-32 lower-case letters, digits and underscores, from a letter")
    return name


def check_modalities(modalities: str) -> str:
    """A selection's spelling, before a store says which streams exist: a mode, or stream names."""
    if modalities not in MODES:
        for name in modalities.split(","):
            check_name(name.strip())
    return modalities


def read_by(heads: dict) -> tuple[str, ...]:
    """The names of the streams a run reads, from its config.json "heads" (of a run of any kind and age)."""
    if "streams" in heads:
        return tuple(stream["name"] for stream in heads["streams"])
    return HISTORIC_STREAMS[heads["modalities"]]


def select(streams: Iterable[Stream], modalities: str) -> tuple[Stream, ...]:
    """The streams `modalities` names among `streams`, in name order (see the module docstring)."""
    streams = {stream.name: stream for stream in streams}
    if modalities in MODES:
        chosen = [stream for stream in streams.values() if stream.input in MODES[modalities]]
        if not chosen:
            raise ValueError(f"modalities {modalities!r} reads {' or '.join(MODES[modalities])}, which none of the "
                             f"streams {', '.join(sorted(streams))} reads")
        return tuple(sorted(chosen, key=lambda stream: stream.name))
    names = [name.strip() for name in modalities.split(",") if name.strip()]
    unknown = [name for name in names if name not in streams]
    if not names or unknown:
        raise ValueError(f"modalities {modalities!r}: choose av, audio, video or stream names among "
                         f"{', '.join(sorted(streams))}")
    return tuple(streams[name] for name in sorted(set(names)))


def mode_of(inputs: Iterable[str]) -> str:
    """The narrowest mode that reads the inputs some streams read: "av", "audio" or "video"."""
    inputs = set(inputs)
    return min((mode for mode, read in MODES.items() if inputs <= set(read)), key=lambda mode: len(MODES[mode]))


def historic(vision: dict, audio: dict, modalities: str = "av") -> tuple[Stream, ...]:
    """The streams `modalities` reads of a store of formats 1-3, or of a run trained on one, from its two encoders'
    records (a probe's config kept their widths alone). Only those read are built: a run of one stream kept the other
    encoder's sizes unchecked."""
    kinds = {"face": ("vision", vision), "waveform": ("audio", audio)}
    streams = [Stream.of_encoder(HISTORIC[kind], kind, entry) for need, (kind, entry) in kinds.items()
               if need in MODES[modalities]]
    return tuple(sorted(streams, key=lambda stream: stream.name))
