"""Tiny synthetic media files for tests: an mp4 with moving pictures and a tone, and a plain tone WAV/FLAC.

Tests across the project build their fixtures here instead of shipping binaries. Sizes are tiny so encoding takes
milliseconds. The tone starts at phase 0 at time 0, so a test can check that decoded audio lines up with the
video's clock to a fraction of a millisecond. Passing a real face (e.g. cropped from a bundled CREMA-D frame) gives
clips on which MTCNN finds a face.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

AAC_FRAME = 1024  # samples per AAC frame: the encoder takes frames of exactly this size (the last may be shorter)


def write_clip(
    path: Path | str,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (160, 120),
    audio: bool = True,
    sample_rate: int = 44100,
    tone_hz: float = 440.0,
    face: np.ndarray | None = None,
) -> Path:
    """Write an mp4 (H.264, or MPEG-4 part 2 where libx264 is missing; AAC audio) and return its path.

    `size` is (width, height). Every frame has a drifting colour gradient and a bouncing square, so consecutive
    frames differ; `face` (H, W, 3) uint8 RGB is pasted in the middle of every frame, drifting by a few pixels,
    shrunk first if it would cover more than 3/4 of the frame. Audio is sin(2 pi tone_hz t) at half amplitude.
    """
    path = Path(path)
    width, height = size
    n_frames = round(seconds * fps)
    face = None if face is None else _fit(face, int(0.75 * height), int(0.75 * width))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", format="mp4") as container:
        vstream = container.add_stream(codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vstream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        astream = container.add_stream("aac", rate=sample_rate, layout="mono") if audio else None

        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(_picture(i, fps, width, height, face), format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode())

        if astream is not None:
            t = np.arange(round(seconds * sample_rate)) / sample_rate
            wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)  # (S,)
            for start in range(0, len(wave), AAC_FRAME):  # the last frame may be short: FFmpeg's AAC allows it
                chunk = wave[None, start : start + AAC_FRAME]  # (1, 1024)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
                container.mux(astream.encode(frame))
            container.mux(astream.encode())
    return path


def write_audio(path: Path | str, seconds: float, sample_rate: int = 16000, tone_hz: float = 440.0) -> Path:
    """Write a mono tone at half amplitude as WAV or FLAC (chosen by the suffix) and return its path."""
    path = Path(path)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32), sample_rate)
    return path


def _picture(i: int, fps: int, width: int, height: int, face: np.ndarray | None) -> np.ndarray:
    """Frame i: a gradient whose colour drifts with time, a square bouncing left-right, the face drifting gently."""
    t = i / fps
    y, x = np.mgrid[0:height, 0:width]
    blue = np.full_like(x, int(t * 60) % 256)
    img = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), blue], -1).astype(np.uint8)
    side = max(height // 6, 2)
    left = int((0.5 + 0.4 * np.sin(2 * np.pi * t / 2)) * (width - side))
    img[height - side - 1 : height - 1, left : left + side] = 255
    if face is not None:
        fh, fw = face.shape[:2]
        top = (height - fh) // 2 + int(round(2 * np.sin(2 * np.pi * t)))
        left = (width - fw) // 2 + int(round(3 * np.cos(2 * np.pi * t)))
        top, left = min(max(top, 0), height - fh), min(max(left, 0), width - fw)
        img[top : top + fh, left : left + fw] = face
    return img  # (H, W, 3)


def _fit(face: np.ndarray, max_h: int, max_w: int) -> np.ndarray:
    """Shrink (never enlarge) an RGB image to fit in max_h x max_w, keeping its aspect ratio."""
    scale = min(1.0, max_h / face.shape[0], max_w / face.shape[1])
    if scale == 1.0:
        return face
    out = (max(1, int(face.shape[0] * scale)), max(1, int(face.shape[1] * scale)))
    x = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    x = F.interpolate(x, size=out, mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()  # (h, w, 3)
