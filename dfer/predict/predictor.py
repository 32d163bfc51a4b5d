"""Predictor: one trained run, all stages, on raw video files (the core of `dfer predict` and `dfer serve`).

A file goes through exactly what extraction did to the run's training clips, then the run's heads:

    file --decode_clip--> T frames + frame_time, 16 kHz mono audio (same span)
         --FaceCropper--> (T, 3, S, S) face crops + landmarks
         --encode_batch (the run's encoders)--> one store row: video/tokens (T, N, D), audio/tokens (Ta_max, Da), ...
         --collate--> a batch of one --heads--> probabilities (C,)

The encoders are rebuilt from the run's fingerprint (same specs, random seed, frames, crop margin, sample rate and
window), or taken from `RUN/vision` and `RUN/audio` when a fine-tune saved its encoders there. Only the streams the
heads read are built: an audio-only run never loads the vision encoder nor runs face detection. Everything heavy is
built once in `__init__`; `predict_file` may then be called for any number of files, and `predict_clip` for clips
decoded elsewhere (the windows of `dfer.predict.timeline`). `predict_file` is `decode` then `predict_decoded`, two
calls so that a caller can decode the next file while this one is predicted (`predict_paths`, `dfer serve`).

Bad input raises `ClipError` (the file cannot be decoded) or its subclass `UnusableClip` (it decodes, but gives the
model nothing to work with, e.g. a silent clip for an audio-only model), so callers can report it per file.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dfer.adapt.batches import attach
from dfer.adapt.moments import Moments, row_moments
from dfer.adapt.saved import encoder_key
from dfer.adapt.settings import run_adaptation
from dfer.encoders import rebuild_encoder
from dfer.encoders.base import Encoder
from dfer.encoders.face_actions import mediapipe_vision
from dfer.extract.batch import ClipInput, encode_batch
from dfer.faces import FaceCropper, FaceTrace, FaceTrack
from dfer.streams import MODES, read_by, select
from dfer.inference.batch import collate
from dfer.inference.score import predict as run_heads
from dfer.media.clip_error import ClipError, as_clip_error
from dfer.media.decode import DecodedClip, decode_clip
from dfer.media.probe import is_audio_only
from dfer.media.find import AUDIO_SUFFIXES, STILL_SUFFIXES, VIDEO_SUFFIXES, find_media
from dfer.media.prefetch import prefetched
from dfer.media.still import decode_still, is_still
from dfer.predict.action_words import read_actions
from dfer.runs.folder import resolve_run
from dfer.runs.load import load_run, run_display_names
from dfer.store.fingerprint import Fingerprint
from dfer.store.schema import batch_arrays, blank_row


@dataclass
class EncodedFile:
    """One file after decoding, faces and encoders: what the heads read, and the face crops they came from."""

    path: Path
    row: dict  # store row name -> array, as extraction writes it (video/tokens (T, N, D), audio/tokens, ...)
    track: FaceTrack | None  # the face crops (T, 3, S, S) and landmarks; None for an audio-only model
    seconds: dict[str, float]  # per stage so far


GroupOf = Callable[[object], dict[str, Moments]]  # an encoded clip -> the moments of its group (dfer.adapt)


class UnusableClip(ClipError):
    """The file decodes, but holds nothing this run's model can use (or the encoders reject what it holds)."""


class FilePredictor:
    """Whole files in, predictions out: what a Predictor and an Ensemble (`dfer.predict.ensemble`) share. A file is
    decoded (`decode`), then predicted (`predict_decoded`); the two are apart so that the next file's decoding can run
    while this one is predicted (`predict_paths`, `dfer serve`). A subclass has `check_readable`, `predict_clip`, the
    decoding settings (frames, sample_rate, max_seconds, frame_short_side) and `hears` (whether it reads sound)."""

    def predict_file(self, path: Path | str) -> dict:
        """Class probabilities for one file (its central `max_seconds`), as a JSON-ready dict:

        path, labels (the display names of the run's classes, in order), classes (their codes, as the store keeps
        them), probs (aligned with both), top1 (the most probable label), face_found_ratio (share of the T sampled
        frames with a detected face; None without video or for an audio-only model), has_video, has_audio, notes
        and seconds (per stage); an Ensemble's also has `members`. Raises ClipError / UnusableClip for bad input.
        """
        path = Path(path)
        return self.predict_decoded(path, *self.decode(path))

    def decode(self, path: Path) -> tuple[DecodedClip, float]:
        """The central window of a whole file as this model reads it: its frames, and its audio when the model hears
        (`check_readable` refuses an audio file a model cannot hear); and the seconds it took. The frames are decoded
        even for a model that only hears: their times cut its audio segments. A photo is a one-frame clip without
        sound (`dfer.media.still`)."""
        started = time.perf_counter()
        with as_clip_error(path):
            if is_still(path):
                decoded = decode_still(path, self.frames, self.frame_short_side)
            else:
                audio_only = self.check_readable(path)
                decoded = decode_clip(None if audio_only else path, path if self.hears else None,
                                      self.frames, self.sample_rate, self.max_seconds,
                                      max_short_side=self.frame_short_side)
        return decoded, time.perf_counter() - started

    def predict_decoded(self, path: Path, decoded: DecodedClip, decode_seconds: float,
                        group_of: GroupOf | None = None) -> dict:
        """The `predict_file` result of a file decoded already (`decode`, and the seconds it took); `group_of` as in
        `Predictor.predict_clip`."""
        return self.predict_clip(path, decoded, seconds={"decode": decode_seconds}, group_of=group_of)[0]


class Predictor(FilePredictor):
    """A run's encoders and heads on one device, ready to score files one at a time.

    run: a run folder (config.json + best.safetensors), e.g. `runs/demo` or one fold of a k-fold run.
    which: the checkpoint to load, "best" or "last".
    encoders: encoders already built, shared between predictors (`dfer.predict.ensemble`): an encoder this run needs
    is taken from it when the same fingerprint entry built it, and put in it otherwise.
    """

    def __init__(self, run: Path | str, device: str = "cpu", which: str = "best", encoders: dict | None = None):
        self.run = resolve_run(run)
        self.shared = {} if encoders is None else encoders
        self.device = torch.device(device)
        self.heads, self.config = load_run(self.run, which, str(self.device))
        self.fingerprint = fingerprint = Fingerprint.from_dict(self.config["fingerprint"])
        self.classes: list[str] = list(self.config["classes"])  # the store's codes
        self.labels: list[str] = run_display_names(self.config)  # their display names, what people are shown
        self.modalities: str = self.config["heads"]["modalities"]
        self.frames, self.sample_rate = fingerprint.frames, fingerprint.sample_rate
        self.max_seconds, self.crop_margin = fingerprint.max_seconds, fingerprint.crop_margin
        # the streams the run reads, with their shapes in its store
        self.streams = select(fingerprint.stream_shapes(), ",".join(read_by(self.config["heads"])))
        self.warnings: list[str] = []
        self.encoders: dict[str, str] = {}  # stream -> the spec its encoder was built from
        self.stream_encoders = {stream.name: self._encoder(stream.name) for stream in self.streams}
        self.hears = any(stream.input == "waveform" for stream in self.streams)
        self.sees = any(stream.input in MODES["video"] for stream in self.streams)  # face crops or whole frames
        self.layout = fingerprint.prediction_layout()
        self.faces = fingerprint.faces  # a store that records none: the full pyramid, as it was trained
        self.cropper = (FaceCropper(self.layout.image_size, self.crop_margin, str(self.device),
                                    face_track=fingerprint.face_track, detect=self.faces.detect)
                        if self.sees else None)
        self.frame_short_side = fingerprint.decode_short_side
        # A zero-shot run reads each frame on its own, so a photo is what it knows; heads trained on clips read how a
        # face moves over T frames, and a photo does not move: they refuse it (`encode_track`).
        self.reads_stills = self.config.get("model") == "zeroshot"
        self.fields = batch_arrays(self.streams)  # batch key -> store row name
        # Adaptation (dfer.adapt): the training set's statistics of each stream the model standardises (none for a
        # zero-shot run or an unadapted probe), the run's shrinking, and the key of each stream's statistics.
        self.prior = self.heads.input_statistics()
        self.shrink = run_adaptation(self.config)["shrink"]
        self.encoder_records = {encoder_key(s, fingerprint.encoders[s][1]): fingerprint.encoders[s][1]
                                for s in self.prior}
        self.adapt_keys = dict(zip(self.prior, self.encoder_records))  # stream -> key
        self.trained_adapt = run_adaptation(self.config)["mode"] != "none"  # timelines adapt by default
        # What the store holds for a clip without a stream (its fill values), so such a clip looks as in training.
        self.blank = blank_row(self.layout, self.fields.values())
        # A zero-shot run that reads face actions (`dfer.heads.zeroshot`): they are read on the sampled frames here, a
        # store holds none; a missing mediapipe fails now, in one line, before any file is read.
        self.reads_actions = bool(getattr(self.heads, "reads_actions", False))
        if self.reads_actions:
            mediapipe_vision()

    def _encoder(self, stream: str) -> Encoder:
        """A stream's encoder: the run's own fine-tuned one (RUN/vision, RUN/audio: stage 3 trains the historic
        streams) if saved, else the fingerprint's, checked."""
        kind, recorded = self.fingerprint.encoders[stream]
        saved = self.run / kind
        if not saved.exists() and "finetune" in self.config:  # its fingerprint names the encoders it started from
            raise FileNotFoundError(f"{self.run}: a fine-tuned run without its {kind} encoder folder ({saved})")
        key = (kind, json.dumps(recorded, sort_keys=True), str(saved.resolve()) if saved.exists() else None)
        if key not in self.shared:
            try:
                self.shared[key] = rebuild_encoder(kind, recorded, self.device,
                                                   source=saved if saved.exists() else None).requires_grad_(False)
            except ValueError as error:
                raise ValueError(f"{self.run}: {error}") from error
        encoder = self.shared[key]
        found, spec = encoder.describe(), encoder.spec
        if not saved.exists() and found["revision"] != recorded["revision"]:
            self.warnings.append(f"{kind} encoder {spec}: revision {found['revision']!r} differs from the run's "
                                 f"{recorded['revision']!r}; predictions may differ from its evaluation")
        self.encoders[stream] = spec
        return encoder

    @property
    def suffixes(self) -> set[str]:
        """The files this run can read, by suffix: videos, audio files when it hears, photos when it sees."""
        return VIDEO_SUFFIXES | (AUDIO_SUFFIXES if self.hears else set()) | (STILL_SUFFIXES if self.sees else set())

    def describe(self) -> dict:
        return {
            "run": str(self.run), "classes": self.classes, "labels": self.labels, "modalities": self.modalities,
            "encoders": self.encoders, "frames": self.frames, "device": str(self.device), "warnings": self.warnings,
        }

    def predict_clip(self, path: Path, decoded: DecodedClip, follow: FaceTrace | None = None,
                     seconds: dict | None = None, group_of: GroupOf | None = None) -> tuple[dict, FaceTrack | None]:
        """The `predict_file` result of one decoded clip of `path` (the whole file's, or one window of a long
        file's) and its face track. `follow` (on the clip's clock) continues the face a previous window tracked;
        `seconds` holds the time of the stages already run; `group_of(encoded)` gives the moments of the clip's
        group, to adapt to (`score`; e.g. a server session's, the clip added)."""
        encoded = self.encode_clip(path, decoded, follow, seconds)
        return self.score(encoded, None if group_of is None else group_of(encoded)), encoded.track

    def score(self, encoded: EncodedFile, group: dict[str, Moments] | None = None) -> dict:
        """The heads on one encoded file: its `predict_file` result. `group`: the moments of the clips that share its
        speaker (`moments`, summed; the clip itself included), to standardise it with (`adaptation`)."""
        started = time.perf_counter()
        batch, note = self.batch_for(encoded, group)
        _, probs = run_heads(self.heads, [batch], self.device)  # (1, C)
        encoded.seconds["heads"] = time.perf_counter() - started
        return self.with_note(self.record(encoded, probs[0]), note)

    def batch_for(self, encoded: EncodedFile, group: dict[str, Moments] | None = None) -> tuple[dict, str | None]:
        """A batch of one for the heads, standardised with `group`'s statistics when it has any (`adaptation`), and
        the note saying how (None without a group)."""
        batch = self.batch_of(encoded.row)
        if group is None:
            return batch, None
        statistics, note = self.adaptation(group)
        if statistics:
            attach(batch, {stream: (mean[None], std[None]) for stream, (mean, std) in statistics.items()})
        return batch, note

    @staticmethod
    def with_note(record: dict, note: str | None) -> dict:
        if note:
            record["notes"] = "; ".join(filter(None, [record["notes"], note]))
        return record

    def moments(self, encoded: EncodedFile) -> dict[str, Moments]:
        """Adaptation key -> the moments of one encoded file's tokens, for each stream the model standardises."""
        standardised = tuple(stream for stream in self.streams if stream.name in self.prior)
        return {self.adapt_keys[stream]: m for stream, m in row_moments(encoded.row, standardised).items()}

    def adaptation(self, group: dict[str, Moments]) -> tuple[dict | None, str]:
        """stream -> (mean (D,), std (D,)) to standardise a clip of `group` with (None: the training set's), and a
        note saying which. A group of fewer than two clips adapts nothing."""
        if not self.prior:
            return None, f"not adapted: a {self.config.get('model')} run reads its encoder's tokens as they are"
        mine = {stream: group.get(key) for stream, key in self.adapt_keys.items()}
        if not any(mine.values()):
            return None, "not adapted: the statistics given are of other encoders"
        clips = max(m.clips for m in mine.values() if m is not None)
        if clips < 2:
            return None, "not adapted: a group of one clip (the training set's statistics)"
        return ({stream: m.standardiser(self.prior[stream], self.shrink) for stream, m in mine.items() if m},
                f"adapted to its group of {clips} clips")

    def check_readable(self, path: Path) -> bool:
        """Whether `path` is an audio-only file; raises UnusableClip when it is one and this run does not hear."""
        audio_only = is_audio_only(path)
        if audio_only and not self.hears:
            raise UnusableClip(path, f"an audio file, and this run's model is {self.modalities}-only: it needs a video")
        return audio_only

    def encode_clip(self, path: Path, decoded: DecodedClip, follow: FaceTrace | None = None,
                    seconds: dict | None = None) -> EncodedFile:
        """Faces and encoders for one decoded clip of `path`; `follow` and `seconds` as in `predict_clip`."""
        seconds = dict(seconds or {})
        started = time.perf_counter()
        track = self.face_track(path, decoded, follow)
        seconds["faces"] = time.perf_counter() - started
        return self.encode_track(path, decoded, track, seconds)

    @property
    def crop_settings(self) -> tuple | None:
        """What decides the face crops of a decoded clip (None: this run reads no faces): runs with equal settings
        can share one face track."""
        return None if self.cropper is None else (self.cropper.image_size, self.cropper.margin,
                                                  self.cropper.face_track)

    def face_track(self, path: Path, decoded: DecodedClip, follow: FaceTrace | None = None) -> FaceTrack | None:
        """The face detection, tracking and crops of one decoded clip (None: no frames, or a run without video)."""
        if self.cropper is None or decoded.frames is None:
            return None
        try:
            return self.cropper(decoded.frames, decoded.waveform, decoded.frame_time, self.sample_rate, follow)
        except Exception as error:  # e.g. a frame size MTCNN's pyramid cannot handle: the file's problem
            raise UnusableClip(path, f"face detection failed: {type(error).__name__}: {error}") from error

    def encode_track(self, path: Path, decoded: DecodedClip, track: FaceTrack | None, seconds: dict) -> EncodedFile:
        """The encoders on one decoded clip and its face track (`face_track`): the EncodedFile the heads read. A clip
        decoded with sound for another run (`dfer.predict.ensemble`) is read without it by a run that does not hear.
        A run trained on clips refuses a photo (`reads_stills`)."""
        if decoded.still and self.sees and not self.reads_stills:
            raise UnusableClip(path, f"a still image, and this {self.config.get('model')} run was trained on clips: it "
                               f"reads how a face moves over {self.frames} frames (a zero-shot run such as the bundled "
                               "face model reads photos)")
        if not self.hears and decoded.waveform is not None:
            decoded = dataclasses.replace(decoded, waveform=None)
        started = time.perf_counter()
        try:
            row = encode_batch([ClipInput(0, decoded, track, expects_audio=self.hears)], self.stream_encoders,
                               self.device, self.layout)[0]
        except Exception as error:  # the extraction pipeline treats this as one clip's failure, so do we
            raise UnusableClip(path, f"encoder failed: {type(error).__name__}: {error}") from error
        seconds["encoders"] = time.perf_counter() - started
        if self.reads_actions:
            started = time.perf_counter()
            row["video/face_actions"] = read_actions(decoded, track, len(row["video/face_found"]))  # (T, 52)
            seconds["actions"] = time.perf_counter() - started
        has_video, has_audio = bool(row["has_video"]), bool(row["has_audio"])
        if not (self.sees and has_video or self.hears and has_audio):
            missing = "video or audio" if self.sees and self.hears else "video" if self.sees else "audio"
            raise UnusableClip(path, f"no {missing} stream, and this run's model is {self.modalities}-only")
        return EncodedFile(path, row, track, seconds)

    def batch_of(self, row: dict) -> dict[str, torch.Tensor]:
        """A batch of one for the heads from an encoded store row, missing streams filled as the store fills them."""
        example = {key: row.get(name, self.blank.get(name)) for key, name in self.fields.items() if name != "label"}
        example["label"] = np.int16(-1)  # unknown; collate and the heads' loop expect the key
        if "video/face_actions" in row:
            example["face_actions"] = row["video/face_actions"]
        return collate([example])

    def record(self, encoded: EncodedFile, probs: np.ndarray) -> dict:
        """The JSON-ready prediction (see `predict_file`) of an encoded file and its probabilities (C,)."""
        probs = probs.astype(float)
        row = encoded.row
        face_found = row.get("video/face_found")
        return {
            "path": str(encoded.path),
            "labels": self.labels,
            "classes": self.classes,
            "probs": [round(p, 6) for p in probs.tolist()],
            "top1": self.labels[int(probs.argmax())],
            "face_found_ratio": None if face_found is None else round(float(np.mean(face_found)), 4),
            "has_video": bool(row["has_video"]),
            "has_audio": bool(row["has_audio"]),
            "notes": str(row["note"]),
            "seconds": {stage: round(value, 4) for stage, value in encoded.seconds.items()},
        }


def top_k(result: dict, k: int) -> list[tuple[str, float]]:
    """The k most probable (label, probability) pairs of a `predict_file` result, best first."""
    order = np.argsort(result["probs"])[::-1][:k]
    return [(result["labels"][i], result["probs"][i]) for i in order]


class OutputStems:
    """The stems of the files one command writes into one folder: a file's own stem, or `stem-2`, `stem-3`, ... when
    an earlier file had it (a/x.mp4 then b/x.mp4), so no file's outputs overwrite another's. `dfer predict --timeline`,
    `--explain` and `dfer explain` all name their outputs with it."""

    def __init__(self):
        self.taken: set[str] = set()

    def __call__(self, path: Path | str) -> str:
        base = Path(path).stem
        stem, n = base, 1
        while stem in self.taken:
            n += 1
            stem = f"{base}-{n}"
        self.taken.add(stem)
        return stem


def decode_files(model: FilePredictor,
                 files: list[Path]) -> Iterator[tuple[Path, tuple[DecodedClip, float] | ClipError]]:
    """Per file, in order: (path, `model.decode`'s answer, or the ClipError it raised). A file that fails is one answer,
    not the end of the stream, so the files after it are still decoded."""
    for path in files:
        try:
            yield path, model.decode(path)
        except ClipError as error:
            yield path, error


def predict_paths(predictor: FilePredictor, paths: list[Path],
                  score: Callable[[Path, DecodedClip, float], dict] | None = None) -> Iterator[dict]:
    """One record per file, in order (a `predict_file` result, or {"path", "error"}), folders expanded; a bad file
    never stops the others. File k + 1 is decoded in a background thread while file k is faced, encoded and scored
    (`dfer.media.prefetch`). `score(path, decoded, decode_seconds)` replaces `predictor.predict_decoded` (e.g. to
    explain each prediction too)."""
    files, errors = find_media(paths, predictor.suffixes)
    yield from errors
    score = score or predictor.predict_decoded
    for path, decoded in prefetched(decode_files(predictor, files)):
        try:
            if isinstance(decoded, ClipError):
                raise decoded
            yield score(path, *decoded)
        except ClipError as error:
            yield {"path": str(path), "error": error.reason}
