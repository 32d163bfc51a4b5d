"""Decode a folder of frame images (a dataset's own face crops, e.g. DFEW's `clip_224x224/XXXXX/`) like a video clip.

The folder holds one image per kept frame, numbered in time order (`00001_00001.jpg`, `00001_00002.jpg` ...; the
number is read, so unpadded names sort right too). Frames are sampled as `decode_clip` samples a video: T frames at
the centres of T equal parts of the clip, or of its central `max_seconds` window. Images carry no timestamps, so the
folder is laid uniformly over a timeline: the duration of `audio` (the original clip, whose sound it keeps) when one
is given, else `len(images) / fps`. The time of a frame is then only as exact as that assumption: DFEW's authors
dropped the frames where their detector found no face, so a clip with dropped frames is stretched over the original's
duration.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dfer.media.clip_error import ClipError
from dfer.media.decode import DecodedClip, read_audio
from dfer.media.plan import central_span, target_times
from dfer.media.probe import stated_duration

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
NOMINAL_FPS = 25.0  # frame rate assumed for a folder without its original clip; only spaces the frame times
TRAILING_NUMBER = re.compile(r"(\d+)$")


def decode_frame_folder(
    folder: Path,
    audio: Path | None,
    frames: int = 16,
    sample_rate: int = 16000,
    max_seconds: float = 16.0,
    fps: float = NOMINAL_FPS,
) -> DecodedClip:
    """`frames` images sampled uniformly from `folder`, and the same span of `audio`'s sound when it is given.

    An audio file that cannot be read leaves the clip video-only and timed at `fps`, with the reason in its notes: the
    frames are what this mode is for. A folder without images, or an image that cannot be read, raises ClipError
    naming it.
    """
    folder = Path(folder)
    images = frame_images(folder)
    notes: list[str] = []
    waveform = None
    if audio is not None:
        try:
            duration = stated_duration(Path(audio))
            span = central_span(duration, max_seconds)
            waveform = read_audio(Path(audio), span, sample_rate)  # (S,)
        except ClipError as error:
            notes.append(f"audio {error}: frames timed at {fps:g} fps instead")
            audio = None
    if audio is None:
        duration = len(images) / fps
        span = central_span(duration, max_seconds)
    # the image whose 1/len(images) of the duration holds each target time; a target on a boundary (float rounding
    # aside) takes the later image
    position = target_times(span, frames) / duration * len(images) + 1e-6  # (T,)
    index = np.minimum(position.astype(int), len(images) - 1)  # (T,)
    rgb = read_images([images[i] for i in index])  # (T, H, W, 3)
    frame_time = ((index + 0.5) * duration / len(images) - span[0]).astype(np.float32)  # (T,)
    return DecodedClip(rgb, frame_time, waveform, span, duration, notes)


def frame_images(folder: Path) -> list[Path]:
    """The folder's images in frame order (by the number that ends each name, then by name)."""
    if not folder.is_dir():
        raise ClipError(folder, "frame folder not found")
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not images:
        raise ClipError(folder, f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
    return sorted(images, key=_frame_order)


def read_images(paths: list[Path]) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB; an image of another size is resized to the first's (as a video's size change is)."""
    pictures = []
    for path in paths:
        try:
            with Image.open(path) as image:
                picture = image.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise ClipError(path, f"unreadable image ({error})") from error
        if pictures and picture.size != pictures[0].size:
            picture = picture.resize(pictures[0].size, Image.BILINEAR)
        pictures.append(picture)
    return np.stack([np.asarray(p) for p in pictures])


def _frame_order(path: Path) -> tuple[int, str]:
    match = TRAILING_NUMBER.search(path.stem)
    return (int(match.group(1)) if match else -1, path.name)
