"""Run the frozen encoders on several decoded clips at once and lay the results out as store rows.

Batching across clips is what keeps a GPU busy: 8 clips x 16 frames make one 128-image vision call and one
padded audio call. A frame stream's encoder (face actions) reads each clip's whole frames on the CPU, clip by clip.
Everything returned is already in the store's dtypes and fixed shapes.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from dfer.encoders.base import Encoder, FrameEncoder, ImageEncoder, WaveformEncoder
from dfer.faces import FaceTrack
from dfer.media.decode import DecodedClip
from dfer.store.schema import (MEDIA_ARRAYS, Layout, encode_tokens, encode_waveform, found_array, landmarks_array,
                                length_array, tokens_array)


@dataclass
class ClipInput:
    index: int  # the clip's row in the store
    decoded: DecodedClip
    track: FaceTrack | None  # None for clips without video
    expects_audio: bool = True  # the listing named an audio source, so a missing stream is worth a note


def encode_batch(items: list[ClipInput], encoders: dict[str, Encoder], device: torch.device,
                 layout: Layout) -> list[dict]:
    """One store row (name -> array) per item, in order. encoders: stream -> its encoder (face crops in for a vision
    encoder, the waveform for an audio one, whole frames and the face track for an actions one). Each input goes to
    the device once, whatever number of streams read it."""
    with_video = [item for item in items if item.track is not None and layout.sees]
    with_audio = [item for item in items if "waveform" in layout.inputs
                  and item.decoded.waveform is not None and item.decoded.waveform.size > 0]
    inputs = {"face": (with_video, _faces([item.track for item in with_video], device)
                       if "face" in layout.inputs else None),
              "waveform": (with_audio, _waves([item.decoded.waveform for item in with_audio], layout.samples, device)),
              "frame": (with_video, [(item.decoded.frames, item.track.face_box()) for item in with_video]
                        if "frame" in layout.inputs else None)}
    encode_input = {"face": _encode_faces, "waveform": _encode_audio, "frame": _encode_frames}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    tokens: dict[int, dict] = {item.index: {} for item in items}  # clip -> its streams' arrays
    with torch.inference_mode(), autocast:
        for stream, encoder in encoders.items():
            clips, given = inputs[layout.tokens[stream].input]
            if not clips:
                continue
            for item, arrays in zip(clips, encode_input[layout.tokens[stream].input](given, encoder, layout, stream)):
                tokens[item.index].update(arrays)
    heard = {item.index for item in with_audio}
    return [_row(item, tokens[item.index], min(len(item.decoded.waveform), layout.samples)
                 if item.index in heard else None, layout) for item in items]


def _faces(tracks: list[FaceTrack], device: torch.device) -> torch.Tensor | None:
    """The clips' face crops on the device, (B, T, 3, S, S) uint8; None without any."""
    return torch.from_numpy(np.stack([track.faces for track in tracks])).to(device) if tracks else None


def _waves(waves: list[np.ndarray], samples: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The clips' waveforms cut to `samples`, zero padded, on the device: (B, S) and their lengths (B,); None
    without any."""
    if not waves:
        return None
    waves = [wave[:samples] for wave in waves]
    length = torch.tensor([len(wave) for wave in waves])
    padded = torch.zeros(len(waves), int(length.max()))  # (B, S)
    for row, wave in zip(padded, waves):
        row[: len(wave)] = torch.from_numpy(wave)
    return padded.to(device), length.to(device)


def _encode_faces(faces: torch.Tensor, encoder: ImageEncoder, layout: Layout, stream: str) -> list[dict]:
    """Per clip, its `<stream>/tokens` arrays (with an int8 store's scales), from faces (B, T, 3, S, S)."""
    B, T = faces.shape[:2]
    tokens = encoder(faces.flatten(0, 1))  # (B*T, N, D)
    tokens = tokens.unflatten(0, (B, T)).half().cpu().numpy()  # (B, T, N, D), half on the device: half the bytes to copy
    return [encode_tokens(tokens_array(stream), clip, layout.token_dtype) for clip in tokens]


def _encode_audio(waves: tuple[torch.Tensor, torch.Tensor], encoder: WaveformEncoder, layout: Layout,
                  stream: str) -> list[dict]:
    """Per clip, its `<stream>/tokens` arrays (with an int8 store's scales) and `<stream>/length`, its valid frames,
    from the padded waveforms (B, S) and their lengths (B,)."""
    tokens, token_length = encoder(*waves)  # (B, Ta, D), (B,)
    tokens = tokens.half().cpu().numpy()  # (B, Ta, D), half on the device: half the bytes to copy
    frames, dim = layout.tokens[stream].shape  # (Ta_max, D)
    rows = []
    for clip_tokens, n in zip(tokens, token_length.tolist()):
        n = min(int(n), frames)
        row = np.zeros((frames, dim), np.float32)  # (Ta_max, D)
        row[:n] = clip_tokens[:n]
        rows.append({**encode_tokens(tokens_array(stream), row, layout.token_dtype, valid=n),
                     length_array(stream): np.int32(n)})
    return rows


def _encode_frames(clips: list[tuple[np.ndarray, np.ndarray]], encoder: FrameEncoder, layout: Layout,
                   stream: str) -> list[dict]:
    """Per clip, its `<stream>/tokens` (T, D) (with an int8 store's scales), `<stream>/found` (T,) and, where the
    encoder locates points, `<stream>/landmarks` (T, P, 3), from its frames (T, H, W, 3) and face boxes (T, 4)."""
    rows = []
    for frames, boxes in clips:
        read = encoder(frames, boxes)
        row = {**encode_tokens(tokens_array(stream), read.tokens, layout.token_dtype),
               found_array(stream, "frame"): read.found}
        if layout.tokens[stream].points:
            row[landmarks_array(stream)] = read.points.astype(np.float32)
        rows.append(row)
    return rows


def _row(item: ClipInput, tokens: dict, samples: int | None, layout: Layout) -> dict:
    """A clip's store row: its streams' `tokens`, its face track, and its waveform of `samples` (None: no sound)."""
    decoded, track = item.decoded, item.track
    track = track if layout.sees else None
    notes = list(decoded.notes)
    values: dict = {
        "duration": np.float32(decoded.duration),
        "span": np.asarray(decoded.span, np.float32),
        "has_video": np.bool_(track is not None),
        "has_audio": np.bool_(samples is not None),
        "video/frame_time": decoded.frame_time.astype(np.float32),
        **tokens,
    }
    if track is not None:
        values.update({
            "video/box": track.box.astype(np.float32),
            "video/face_found": track.face_found,
            "video/track_rank": np.int16(track.choice.rank),
            "video/track_count": np.int16(track.choice.count),
            "video/speaker_score": np.float32(track.choice.score),
        })
        if "face" in layout.inputs:  # the crops, and the landmarks in their pixels
            values.update({MEDIA_ARRAYS["face"]: track.faces, "video/landmarks": track.landmarks.astype(np.float32)})
        if track.choice.note():
            notes.append(track.choice.note())
        if not track.face_found.any():
            notes.append("no face detected: centre crop")
    if samples is not None:
        values.update({
            "audio/num_samples": np.int32(samples),
            MEDIA_ARRAYS["waveform"]: encode_waveform(decoded.waveform, layout.samples),  # (S_max,) int16
        })
    elif item.expects_audio and "waveform" in layout.inputs:
        notes.append("no audio stream")
    values["note"] = "; ".join(notes)
    return values
