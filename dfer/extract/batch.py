"""Run the frozen encoders on several decoded clips at once and lay the results out as store rows.

Batching across clips is what keeps a GPU busy: 8 clips x 16 frames make one 128-image vision call and one
padded audio call. Everything returned is already in the store's dtypes and fixed shapes.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from dfer.encoders.base import ImageEncoder, WaveformEncoder
from dfer.faces import FaceTrack
from dfer.media.decode import DecodedClip
from dfer.store.schema import Layout, encode_tokens, encode_waveform


@dataclass
class ClipInput:
    index: int  # the clip's row in the store
    decoded: DecodedClip
    track: FaceTrack | None  # None for clips without video
    expects_audio: bool = True  # the listing named an audio source, so a missing stream is worth a note


def encode_batch(items: list[ClipInput], vision: ImageEncoder, audio: WaveformEncoder, device: torch.device,
                 layout: Layout) -> list[dict]:
    """One store row (name -> array) per item, in order."""
    with_video = [item for item in items if item.track is not None]
    with_audio = [item for item in items if item.decoded.waveform is not None and item.decoded.waveform.size > 0]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with torch.inference_mode(), autocast:
        video_tokens = _encode_faces([item.track for item in with_video], vision, device, layout) if with_video else []
        audio_tokens = _encode_audio([item.decoded.waveform for item in with_audio], audio, device, layout)
    video_rows = {item.index: tokens for item, tokens in zip(with_video, video_tokens)}
    audio_rows = {item.index: row for item, row in zip(with_audio, audio_tokens)}
    return [_row(item, video_rows.get(item.index), audio_rows.get(item.index), layout) for item in items]


def _encode_faces(tracks: list[FaceTrack], vision: ImageEncoder, device: torch.device, layout: Layout) -> list[dict]:
    """Per clip, its `video/tokens` arrays (with an int8 store's scales)."""
    faces = torch.from_numpy(np.stack([track.faces for track in tracks])).to(device)  # (B, T, 3, S, S) uint8
    B, T = faces.shape[:2]
    tokens = vision(faces.flatten(0, 1))  # (B*T, N, D)
    tokens = tokens.unflatten(0, (B, T)).half().cpu().numpy()  # (B, T, N, D), half on the device: half the bytes to copy
    return [encode_tokens("video/tokens", clip, layout.token_dtype) for clip in tokens]


def _encode_audio(waves: list[np.ndarray], audio: WaveformEncoder, device: torch.device,
                  layout: Layout) -> list[tuple[dict, int]]:
    """Per clip, its `audio/tokens` arrays (with an int8 store's scales) and its valid frames."""
    if not waves:
        return []
    waves = [wave[: layout.samples] for wave in waves]
    length = torch.tensor([len(wave) for wave in waves])
    padded = torch.zeros(len(waves), int(length.max()))  # (B, S)
    for row, wave in zip(padded, waves):
        row[: len(wave)] = torch.from_numpy(wave)
    tokens, token_length = audio(padded.to(device), length.to(device))  # (B, Ta, Da), (B,)
    tokens = tokens.half().cpu().numpy()  # (B, Ta, Da), half on the device: half the bytes to copy
    rows = []
    for clip_tokens, n in zip(tokens, token_length.tolist()):
        n = min(int(n), layout.audio_frames)
        row = np.zeros((layout.audio_frames, layout.audio_dim), np.float32)  # (Ta_max, Da)
        row[:n] = clip_tokens[:n]
        rows.append((encode_tokens("audio/tokens", row, layout.token_dtype, valid=n), n))
    return rows


def _row(item: ClipInput, video_tokens, audio_row, layout: Layout) -> dict:
    decoded, track = item.decoded, item.track
    notes = list(decoded.notes)
    values: dict = {
        "duration": np.float32(decoded.duration),
        "span": np.asarray(decoded.span, np.float32),
        "has_video": np.bool_(track is not None),
        "has_audio": np.bool_(audio_row is not None),
        "video/frame_time": decoded.frame_time.astype(np.float32),
    }
    if track is not None:
        values.update({
            **video_tokens,
            "video/box": track.box.astype(np.float32),
            "video/landmarks": track.landmarks.astype(np.float32),
            "video/face_found": track.face_found,
            "video/faces": track.faces,
            "video/track_rank": np.int16(track.choice.rank),
            "video/track_count": np.int16(track.choice.count),
            "video/speaker_score": np.float32(track.choice.score),
        })
        if track.choice.note():
            notes.append(track.choice.note())
        if not track.face_found.any():
            notes.append("no face detected: centre crop")
    if audio_row is not None:
        tokens, n = audio_row
        values.update({
            **tokens,
            "audio/length": np.int32(n),
            "audio/num_samples": np.int32(min(len(decoded.waveform), layout.samples)),
            "audio/waveform": encode_waveform(decoded.waveform, layout.samples),  # (S_max,) int16
        })
    elif item.expects_audio:
        notes.append("no audio stream")
    values["note"] = "; ".join(notes)
    return values
