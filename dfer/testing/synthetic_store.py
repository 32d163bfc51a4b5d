"""A small cache whose class is recoverable from the tokens, written through the real store code.

Like open_clip's `synthetic` dataset: the whole training path (store, reader, splits, loop, metrics) runs in
seconds without media or encoders, and a model that learns nothing is caught because the signal is there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import dfer
from dfer.data.clip import Clip, DatasetListing
from dfer.store.clip_store import ClipStore
from dfer.store.schema import Layout, encode_tokens


def make_synthetic_store(path: Path, classes: int = 3, speakers: int = 6, clips_per_speaker: int = 12,
                         folds: int = 3, frames: int = 4, grid: int = 2, dim: int = 8, audio_frames: int = 16,
                         signal: float = 2.0, seed: int = 0, split_protocol: bool = False,
                         token_dtype: str = "float16", names: list[str] | None = None,
                         vision: dict | None = None, speaker_shift: float = 0.0, speaker_ids: bool = True,
                         channel_shift: float = 0.0) -> Path:
    """Speaker s belongs to fold s % folds + 1 (or, with `split_protocol`, to train/val/test by s % 3).
    `speaker_shift` > 0 adds each speaker's own offset (that many times a unit normal vector per stream) to every
    token of theirs, the shift adaptation removes; `speaker_ids=False` lists no speaker (as DFEW and MAFW).
    `channel_shift` adds one offset to every audio token of every speaker (that many times a unit normal vector of its
    own): the same clips through another recording channel, a channel view (`dfer.train.views`) of the store.
    Every 6th clip is audio-only and every 7th video-only, so masks are exercised. `names`: the class names
    (default class0, class1, ...); `vision`: the fingerprint's vision entry in place of a synthetic one (a real
    family's `describe()`, whose dim and grid then shape the tokens)."""
    if vision is not None:
        dim, grid = vision["dim"], vision["grid"]
    rng = np.random.default_rng(seed)
    offsets = speaker_shift * np.random.default_rng(seed + 1).normal(size=(speakers, 2, dim))  # (S, video/audio, D)
    channel = channel_shift * np.random.default_rng(seed + 2).normal(size=dim)  # (Da,)
    class_video = rng.normal(size=(classes, dim))  # (C, D) the class signal in the patch tokens
    class_audio = rng.normal(size=(classes, dim))  # (C, Da)
    names = names or [f"class{c}" for c in range(classes)]
    clips = []
    for s in range(speakers):
        for j in range(clips_per_speaker):
            split = ("train", "val", "test")[s % 3] if split_protocol else ""
            clips.append(Clip(f"s{s}/clip{j:02d}", None, None, (s + j) % classes, f"s{s}" if speaker_ids else "",
                              0 if split_protocol else s % folds + 1, split))
    listing = DatasetListing("synthetic", names, {"kind": "split"} if split_protocol else {"kind": "kfold", "folds": folds},
                             clips)
    vision = vision or {"id": "synthetic", "revision": f"seed={seed}", "dim": dim, "image_size": 16 * grid,
                        "num_tokens": grid * grid, "grid": grid}
    audio = {"id": "synthetic", "revision": f"seed={seed}", "dim": dim, "sample_rate": 16000, "frame_seconds": 0.08}
    fingerprint = {"dfer_version": dfer.__version__, "vision": vision, "audio": audio, "frames": frames,
                   "sample_rate": 16000, "crop_margin": 0.25, "max_seconds": 1.2, "keep_media": False,
                   "token_dtype": token_dtype}
    layout = Layout.from_record(dict(frames=frames, image_size=vision["image_size"], num_tokens=grid * grid,
                                     vision_dim=dim, audio_dim=dim, audio_frames=audio_frames, samples=19200,
                                     keep_media=False, token_dtype=token_dtype))
    store = ClipStore.create_or_open(path, fingerprint, layout, listing)
    for index, clip in enumerate(clips):
        has_video, has_audio = index % 6 != 5, index % 7 != 6
        length = int(rng.integers(audio_frames // 2, audio_frames + 1))
        speaker = index // clips_per_speaker
        video = rng.normal(size=(frames, grid * grid, dim)) + signal * class_video[clip.label]  # (T, N, D)
        video += offsets[speaker, 0]
        tokens = np.zeros((audio_frames, dim))  # (Ta, Da)
        tokens[:length] = rng.normal(size=(length, dim)) + signal * class_audio[clip.label] + offsets[speaker, 1] + channel
        landmarks = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.72], [0.62, 0.72]]) * vision["image_size"]
        values = {
            "duration": np.float32(length * 0.08), "span": np.array([0, length * 0.08], np.float32),
            "has_video": np.bool_(has_video), "has_audio": np.bool_(has_audio),
            "video/frame_time": ((np.arange(frames) + 0.5) * length * 0.08 / frames).astype(np.float32),
            "note": "",
        }
        if has_video:
            values.update({**encode_tokens("video/tokens", video, token_dtype), "video/face_found": np.ones(frames, bool),
                           "video/landmarks": np.repeat(landmarks[None], frames, 0).astype(np.float32)})
        if has_audio:
            values.update({**encode_tokens("audio/tokens", tokens, token_dtype, valid=length),
                           "audio/length": np.int32(length)})
        store.write_clip(index, values)
    return Path(path)
