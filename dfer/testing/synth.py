"""Tiny synthetic media files for tests: an mp4 with moving pictures and a tone, a two-person scene where one talks,
a plain tone WAV/FLAC, and long files made of real clips played in a row (`write_concatenation`).

Tests across the project build their fixtures here instead of shipping binaries. Sizes are tiny so encoding takes
milliseconds. The tone starts at phase 0 at time 0, so a test can check that decoded audio lines up with the
video's clock to a fraction of a millisecond. Passing a real face (e.g. cropped from a bundled CREMA-D frame) gives
clips on which MTCNN finds a face.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    faststart: bool = False,
) -> Path:
    """Write an mp4 (H.264, or MPEG-4 part 2 where libx264 is missing; AAC audio) and return its path.

    `size` is (width, height). Every frame has a drifting colour gradient and a bouncing square, so consecutive
    frames differ; `face` (H, W, 3) uint8 RGB is pasted in the middle of every frame, drifting by a few pixels,
    shrunk first if it would cover more than 3/4 of the frame. Audio is sin(2 pi tone_hz t) at half amplitude.
    `faststart`: the index (moov) before the media, as web exports write it, so a copy cut short still states the
    whole duration and decodes up to the cut.
    """
    width, height = size
    face = None if face is None else _fit(face, int(0.75 * height), int(0.75 * width))
    pictures = (_picture(i, fps, width, height, face) for i in range(round(seconds * fps)))
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32) if audio else None  # (S,)
    return write_media(path, pictures, size, fps, wave, sample_rate, faststart)


def write_talking_pair(
    path: Path | str,
    face: np.ndarray,
    mouth: np.ndarray,
    voiced: list[tuple[float, float]],
    seconds: float = 2.0,
    fps: int = 25,
    sample_rate: int = 16000,
    silent: bool = False,
) -> Path:
    """Two people side by side, as in a MELD scene: `face` on the left at full height 150 px and its mirror image on
    the right at 2/3 of that, in a 320 x 180 clip. Only the smaller one talks: during each (start, end) second of
    `voiced` its mouth opens by a random amount every frame and the audio is a 220 Hz tone (silence when `silent`);
    outside them both faces are still and the audio is silent.

    mouth (2, 2): the face's mouth corners x, y in `face` pixels (MTCNN's landmarks 4 and 5).
    """
    rng = np.random.default_rng(0)
    large, small = _fit(face, 150, 320), _fit(face[:, ::-1], 100, 320)
    scale = small.shape[0] / face.shape[0]
    corners = np.stack([face.shape[1] - 1 - mouth[:, 0], mouth[:, 1]], axis=1) * scale  # (2, 2) in the mirrored face
    centre, width = corners.mean(axis=0), np.linalg.norm(corners[1] - corners[0])
    y, x = np.mgrid[0 : small.shape[0], 0 : small.shape[1]]
    background = np.full((180, 320, 3), 90, np.uint8)
    background[15:165, 10 : 10 + large.shape[1]] = large
    top, left = 40, 200

    def talking(t: float) -> bool:
        return any(start <= t < end for start, end in voiced)

    def picture(i: int) -> np.ndarray:
        img = background.copy()
        person = small.copy()
        if talking(i / fps):  # an open mouth: a dark ellipse between the corners, 0-40 % of the mouth width tall
            half_height = rng.uniform(0.05, 0.4) * width / 2
            inside = ((x - centre[0]) / (0.45 * width)) ** 2 + ((y - centre[1]) / half_height) ** 2 <= 1
            person[inside] = 20
        img[top : top + small.shape[0], left : left + small.shape[1]] = person
        return img  # (180, 320, 3)

    t = np.arange(round(seconds * sample_rate)) / sample_rate  # (S,)
    on = np.zeros(len(t), bool) if silent else np.any([(start <= t) & (t < end) for start, end in voiced], axis=0)
    wave = (0.5 * np.sin(2 * np.pi * 220 * t) * on).astype(np.float32)  # (S,)
    return write_media(path, (picture(i) for i in range(round(seconds * fps))), (320, 180), fps, wave, sample_rate)


def write_media(
    path: Path | str,
    pictures: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: int,
    wave: np.ndarray | None,
    sample_rate: int,
    faststart: bool = False,
) -> Path:
    """Encode (H, W, 3) uint8 RGB pictures at `fps` and a mono float waveform (None: no audio stream) into an mp4;
    `faststart` puts its index first (`write_clip`)."""
    path = Path(path)
    width, height = size
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        vstream = container.add_stream(codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vstream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        astream = container.add_stream("aac", rate=sample_rate, layout="mono") if wave is not None else None

        # Audio is muxed as the video reaches it, as real recordings are interleaved: a reader that streams a long
        # file (dfer.media.stream) then sees both streams advance together.
        audio_starts = iter(range(0, 0 if wave is None else len(wave), AAC_FRAME))
        next_audio = next(audio_starts, None)

        def mux_audio(until: float) -> None:
            nonlocal next_audio
            while next_audio is not None and next_audio <= until * sample_rate:
                chunk = wave[None, next_audio : next_audio + AAC_FRAME]  # (1, 1024); the last may be short
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, next_audio, Fraction(1, sample_rate)
                container.mux(astream.encode(frame))
                next_audio = next(audio_starts, None)

        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
            mux_audio((i + 1) / fps)
        container.mux(vstream.encode())
        if astream is not None:
            mux_audio(np.inf)
            container.mux(astream.encode())
    return path


def write_concatenation(
    path: Path | str, sources: list[Path], repeat: int = 1, fps: int = 25, sample_rate: int = 16000
) -> list[tuple[float, float]]:
    """An mp4 of each of `sources` (short clips with video and audio) played `repeat` times in a row (AAA BBB ...),
    at the first source's frame size, `fps` and `sample_rate`; returns each source's (start, end) seconds in it.

    Each clip is resampled to whole frames at `fps` (by the same decoder extraction uses) and its audio cut to
    exactly its frames' length, so the blocks stay aligned however many there are. Only one clip's frames are held
    at a time; the audio (16 kHz mono, small next to the frames) is gathered first, as `write_media` wants it whole.
    """
    from dfer.media.decode import decode_clip, read_audio
    from dfer.media.probe import stated_duration

    counts = [max(1, round(stated_duration(Path(source)) * fps)) for source in sources]  # frames per clip
    blocks, waves, start = [], [], 0.0
    for source, n in zip(sources, counts):
        waves.append(np.tile(read_audio(Path(source), (0.0, n / fps), sample_rate), repeat))  # (repeat * S,)
        blocks.append((start, start + repeat * n / fps))
        start = blocks[-1][1]

    def pictures() -> Iterable[np.ndarray]:
        for source, n in zip(sources, counts):
            clip = decode_clip(Path(source), None, frames=n, sample_rate=sample_rate, max_seconds=np.inf)
            for _ in range(repeat):
                yield from clip.frames  # (H, W, 3) each

    first = decode_clip(Path(sources[0]), None, frames=1, max_seconds=np.inf).frames[0]  # (H, W, 3)
    write_media(path, pictures(), (first.shape[1], first.shape[0]), fps, np.concatenate(waves), sample_rate)
    return blocks


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
