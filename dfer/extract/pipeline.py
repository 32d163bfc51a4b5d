"""Stage 1 end to end: list a dataset, decode each clip once, crop faces, run the frozen encoders, fill the cache.

Clips are independent units of work: a clip that fails is recorded with its reason and the run goes on, a
finished clip is never rewritten, and a re-run (after a kill, or on more processes) only does what is left.
The store's shards are the units of writing: rank r of N fills the shards s % N == r, in order, each written
once it is settled (`dfer.store.clip_store`), and rank 0 holds the store's lock for the whole run, so a second
extraction into the same store stops at once with an error naming it.
Decoding may run in DataLoader workers; face detection and the encoders run in the main process, where the
device is, and the encoders see batches of several clips.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

import dfer
from dfer.recipe import settings_from
from dfer.data import list_dataset
from dfer.data.clip import Clip
from dfer.encoders import build_encoder, resolve_preset, stream_encoder
from dfer.encoders.base import Encoder, ImageEncoder
from dfer.encoders.presets import DEFAULT_PRESET, FACE_CROP_MARGIN
from dfer import distributed
from dfer.extract.batch import ClipInput, encode_batch
from dfer.extract.progress import ExtractProgress
from dfer.faces import FACE_TRACKS, FaceCropper, FaceTrack, whole_frame_track
from dfer.faces.settings import FACE_DETECT_CHOICES, FaceSettings
from dfer.media.clip_error import ClipError, as_clip_error
from dfer.media.decode import DecodedClip, decode_clip
from dfer.media.frames import decode_frame_folder
from dfer.store.clip_store import ClipStore, writer_lock
from dfer.store.fingerprint import Fingerprint
from dfer.store.reader import ZarrReader
from dfer.store.schema import MEDIA_ARRAYS, TOKEN_DTYPES
from dfer.streams import check_name


@dataclass
class ExtractConfig:
    dataset: str
    root: Path
    out: Path
    preset: str = DEFAULT_PRESET
    vision: str | None = None  # overrides the preset's vision encoder (a spec: dfer.encoders.build)
    audio: str | None = None  # overrides the preset's audio encoder (a spec: dfer.encoders.build)
    # stream -> its spec (`dfer.encoders.build.stream_encoder`), in place of the preset's two streams `video` and
    # `audio` (which `vision` and `audio` name): any number, of either input (dfer.streams)
    streams: dict[str, str] | None = None
    frames: int = 16
    batch: int = 8  # clips per encoder call
    device: str = "cpu"
    limit: int | None = None  # the first N clips of the sorted listing
    keep_media: bool = True  # store face crops and waveforms for stage 3
    token_dtype: str = "float16"  # or "int8": a quarter of float32 (dfer.store.schema.encode_tokens, cache/README.md)
    seed: int = 0  # random-init encoders only
    crop_margin: float | None = None  # context around the face per side; None: what the vision encoder asks for
    face_track: str = "largest"  # or "speaker": the face whose mouth moves while the audio is voiced (MELD)
    # "large-first", "full" or "legacy" (dfer.faces.settings); None: the store's own settings when it exists (one that
    # records none: "legacy", the full method on frames decoded at full size), else "large-first"
    face_detect: str | None = None
    faces: FaceSettings | None = None  # exact settings, overriding face_detect: a run's own, to extract as it was
    max_seconds: float = 16.0  # longer clips are analysed over their central window
    sample_rate: int = 16000
    workers: int = 0  # decoding processes
    dataset_options: dict = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self):
        if self.face_track not in FACE_TRACKS:
            raise ValueError(f"face_track {self.face_track!r} is not one of {', '.join(FACE_TRACKS)}")
        if self.face_detect is not None and self.face_detect not in FACE_DETECT_CHOICES:
            raise ValueError(f"face_detect {self.face_detect!r} is not one of {', '.join(FACE_DETECT_CHOICES)}")
        if self.faces is not None and not isinstance(self.faces, FaceSettings):
            raise ValueError(f"faces {self.faces!r} is not a FaceSettings (a recipe names its settings: face_detect)")
        if self.token_dtype not in TOKEN_DTYPES:
            raise ValueError(f"token_dtype {self.token_dtype!r} is not one of {', '.join(TOKEN_DTYPES)}")
        if self.streams is not None:
            if self.vision or self.audio:
                raise ValueError("name the encoders either as streams or as --vision / --audio, not both")
            if not self.streams:
                raise ValueError("a store needs at least one stream")
            for name in self.streams:
                check_name(name)

    def stream_specs(self) -> dict[str, tuple[str, str]]:
        """stream -> (encoder kind, encoder spec): the streams given, or the preset's `video` and `audio` with the
        `vision` and `audio` overrides (today's stores, the historic two)."""
        if self.streams is not None:
            return {name: stream_encoder(spec) for name, spec in sorted(self.streams.items())}
        return resolve_preset(self.preset).streams(self.vision, self.audio)


def extract_config(recipe: Path | None = None, **settings) -> ExtractConfig:
    return settings_from(ExtractConfig, recipe, "extraction", **settings)


@dataclass
class ExtractSummary:
    store: Path
    clips: int
    done: int
    failures: list[tuple[str, str]]  # (clip_id, error) over the whole store
    problems: list[str]  # files the adapter could not list
    is_main: bool = True  # rank 0 (or a plain process): the one that reports


def run(cfg: ExtractConfig) -> ExtractSummary:
    ranks = distributed.init()
    # Only rank 0 locks: the ranks of one job share the store by shards, and the lock keeps any other job out.
    with writer_lock(cfg.out) if ranks.is_main else nullcontext():
        return _run(cfg, ranks)


def _run(cfg: ExtractConfig, ranks: distributed.Ranks) -> ExtractSummary:
    listing = list_dataset(cfg.dataset, Path(cfg.root), **cfg.dataset_options)
    if cfg.limit is not None:
        listing.clips = listing.clips[: cfg.limit]
    device = distributed.local_device(cfg.device)
    encoders = load_encoders(cfg, device)
    if cfg.crop_margin is None:  # the crops the vision family was trained on (faceapi: tight; SigLIP2: 1.5x)
        cfg = dataclasses.replace(cfg, crop_margin=crop_margin(encoders))

    def store_fingerprint() -> Fingerprint:
        return Fingerprint.of_encoders(
            {name: (encoder.kind, encoder.describe()) for name, encoder in encoders.items()},
            dfer_version=dfer.__version__, frames=cfg.frames, sample_rate=cfg.sample_rate, crop_margin=cfg.crop_margin,
            max_seconds=cfg.max_seconds, keep_media=cfg.keep_media, token_dtype=cfg.token_dtype,
            face_track=cfg.face_track, faces=face_settings(cfg), dataset_options=listing.options,
        )

    # Rank 0 creates (or checks) the store and clears a killed run's temporary files while the others wait, then
    # everyone opens it. The others make their fingerprint only then: the face settings may be read from the store,
    # and one half made by rank 0 has no fingerprint yet.
    if ranks.is_main:
        fingerprint = store_fingerprint()
        ClipStore.create_or_open(cfg.out, fingerprint.to_dict(), fingerprint.layout(), listing).remove_torn_writes()
    distributed.barrier()
    if not ranks.is_main:
        fingerprint = store_fingerprint()
    layout, faces = fingerprint.layout(), fingerprint.faces
    store = ClipStore.create_or_open(cfg.out, fingerprint.to_dict(), layout, listing)

    done = store.array("done")[:]
    todo = [i for i in range(len(listing.clips)) if store.shard_of(i) % ranks.world == ranks.rank and not done[i]]
    cropper = (FaceCropper(image_size=layout.image_size, margin=cfg.crop_margin, device=str(device),
                           face_track=cfg.face_track, detect=faces.detect) if layout.sees else None)
    with ExtractProgress(total=len(todo), enabled=cfg.progress and ranks.is_main) as progress:
        try:
            _extract_clips(cfg, listing, todo, store, cropper, encoders, device, progress, faces.frame_short_side)
        finally:  # a run stopped by an error or Ctrl-C still keeps the finished clips of its last shard
            store.flush()

    distributed.barrier()
    summary = summarise(store, listing.problems, ranks.is_main)
    distributed.shutdown()
    return summary


def face_settings(cfg: ExtractConfig) -> FaceSettings:
    """The face settings to extract with: `cfg.faces`, or `cfg.face_detect`'s, or without either the existing store's
    own (so a store that records no face settings resumes as it began), or for a new store the current default."""
    if cfg.faces is not None:
        return cfg.faces
    if cfg.face_detect is not None:
        return FaceSettings.named(cfg.face_detect)
    if (Path(cfg.out) / "zarr.json").exists():
        return Fingerprint.from_dict(ZarrReader(Path(cfg.out)).fingerprint).faces
    return FaceSettings()


def summarise(store: ClipStore, problems: list[str], is_main: bool = True) -> ExtractSummary:
    done = store.array("done")[:]
    errors = store.array("error")[:]
    ids = store.clip_ids
    failures = [(ids[i], str(errors[i])) for i in range(len(ids)) if not done[i] and errors[i]]
    return ExtractSummary(store.path, len(ids), int(done.sum()), failures, problems, is_main)


def load_encoders(cfg: ExtractConfig, device: torch.device) -> dict[str, Encoder]:
    """stream -> its frozen encoder; face readers first, as the historic pair was built (seeded random weights)."""
    specs = sorted(cfg.stream_specs().items(), key=lambda item: item[1][0] != "vision")
    return {name: build_encoder(kind, spec, seed=cfg.seed, device=device).requires_grad_(False)
            for name, (kind, spec) in specs}


def crop_margin(encoders: dict[str, Encoder]) -> float:
    """The context around the face the face streams' families were trained on; one store has one crop."""
    margins = {encoder.crop_margin for encoder in encoders.values() if isinstance(encoder, ImageEncoder)}
    if len(margins) > 1:
        raise ValueError(f"the face streams' encoders ask for different crop margins {sorted(margins)}: give one "
                         "--crop-margin")
    return margins.pop() if margins else FACE_CROP_MARGIN


class _DecodeClips(Dataset):
    """Decodes clips by store index; errors come back as values so a worker never dies on a bad file."""

    def __init__(self, clips: list[Clip], indices: list[int], frames: int, sample_rate: int, max_seconds: float,
                 short_side: int | None = None):
        self.clips, self.indices = clips, indices
        self.frames, self.sample_rate, self.max_seconds, self.short_side = frames, sample_rate, max_seconds, short_side

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, DecodedClip | str]:
        index = self.indices[position]
        clip = self.clips[index]
        try:
            with as_clip_error(clip.video or clip.audio):  # an unforeseen failure is still one clip's, not the run's
                if clip.precropped:  # a dataset's own face crops, already small
                    return index, decode_frame_folder(clip.video, clip.audio, self.frames, self.sample_rate,
                                                      self.max_seconds)
                return index, decode_clip(clip.video, clip.audio, self.frames, self.sample_rate, self.max_seconds,
                                          max_short_side=self.short_side)
        except ClipError as error:
            return index, str(error)


def _extract_clips(cfg, listing, todo, store, cropper, encoders, device, progress, short_side=None) -> None:
    decoded = DataLoader(
        _DecodeClips(listing.clips, todo, cfg.frames, cfg.sample_rate, cfg.max_seconds, short_side),
        batch_size=None, num_workers=cfg.workers, collate_fn=lambda item: item,
    )
    pending: list[tuple[int, DecodedClip]] = []
    for index, result in decoded:
        if isinstance(result, str):
            store.write_failure(index, result)
            progress.advance(failed=True)
            continue
        pending.append((index, result))
        if len(pending) == cfg.batch:
            _flush(_with_faces(pending, listing.clips, cropper, cfg.sample_rate), store, encoders, device,
                   progress, cfg.keep_media)
            pending = []
    if pending:
        _flush(_with_faces(pending, listing.clips, cropper, cfg.sample_rate), store, encoders, device, progress,
               cfg.keep_media)


def _with_faces(pending: list[tuple[int, DecodedClip]], clips: list[Clip], cropper: FaceCropper | None,
                sample_rate: int) -> list[ClipInput]:
    """A batch of decoded clips with their face tracks: a dataset's own face crops are the face already; any other
    frames go through detection (batched across the clips, `FaceCropper.many`) and the track choice. Without a
    cropper (no stream reads faces) no face is looked for."""
    tracks: dict[int, FaceTrack] = {}
    searched = []
    for index, decoded in pending if cropper is not None else []:
        if decoded.frames is not None and clips[index].precropped:
            tracks[index] = whole_frame_track(decoded.frames, cropper.image_size, cropper.device)
        elif decoded.frames is not None:
            searched.append((index, decoded))
    if searched:
        found = cropper.many([(d.frames, d.waveform, d.frame_time) for _, d in searched], sample_rate)
        tracks.update((index, track) for (index, _), track in zip(searched, found))
    return [ClipInput(index, decoded, tracks.get(index), expects_audio=clips[index].audio is not None)
            for index, decoded in pending]


def _flush(pending, store, encoders, device, progress, keep_media) -> None:
    """Encode and write a batch; if the batch fails, retry clip by clip so one bad clip fails alone."""
    try:
        results = encode_batch(pending, encoders, device, store.layout)
    except Exception as error:
        if len(pending) > 1:
            for item in pending:
                _flush([item], store, encoders, device, progress, keep_media)
            return
        clip_id = store.array("clip_id")[pending[0].index]
        store.write_failure(pending[0].index, f"{clip_id}: encoder failed: {type(error).__name__}: {error}")
        progress.advance(failed=True)
        return
    for item, values in zip(pending, results):
        if not keep_media:
            values = {k: v for k, v in values.items() if k not in MEDIA_ARRAYS.values()}
        store.write_clip(item.index, values)
        missed = 0 if item.track is None else int((~item.track.face_found).sum())
        progress.advance(faces_missed=missed)
