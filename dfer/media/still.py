"""A still image (a photo) read as a one-frame clip: `decode_still` gives the `DecodedClip` a video of one unchanging
picture would give.

- Which files: those whose suffix is one of `dfer.media.find.STILL_SUFFIXES` (what `dfer predict FOLDER` picks up
  too). A dataset's folder of frames is not a set of stills: its adapter reads it as one clip
  (`dfer.media.frames`).
- Orientation: a camera stores a photo as its sensor saw it and says how to turn it in EXIF; the picture is turned
  upright first (`PIL.ImageOps.exif_transpose`), as a viewer shows it, since the face detector looks for upright faces.
- Size: the picture is shrunk to the shorter side video frames are decoded to (`max_short_side`, the run's
  `frame_short_side`; `dfer.faces.settings` says why that keeps every crop sharp), by area averaging as `decode_clip`
  shrinks frames. A JPEG is first decoded at the smallest of 1/2, 1/4 or 1/8 scale that is still at least that size
  (libjpeg's own scaled decoding, `Image.draft`): a 12-megapixel photo decodes in a fraction of the time.
- Frames: the T frames a run reads are T views of the one picture (stride 0), all at time 0: no copy is made, and
  the face cropper, which sees that they are one picture, finds and crops its face once (`dfer.faces.cropper`).
  `DecodedClip.still` marks the clip, so a run trained on clips can say it has no motion to read
  (`dfer.predict.predictor`). A still has no sound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided
from PIL import Image, ImageOps, UnidentifiedImageError

from dfer.media.clip_error import ClipError
from dfer.media.decode import DecodedClip, shrunk_size
from dfer.media.find import STILL_SUFFIXES
from dfer.media.probe import check_file

AREA_RESAMPLE = Image.Resampling.BOX  # area averaging, as swscale's AREA shrinks video frames (`dfer.media.decode`)


def is_still(path: Path | str) -> bool:
    """A file read as a photo, by its suffix."""
    return Path(path).suffix.lower() in STILL_SUFFIXES


def read_still(path: Path, max_short_side: int | None = None) -> np.ndarray:
    """The picture upright (EXIF orientation applied), shrunk to a shorter side of at most `max_short_side` pixels
    (None: its own size): (H, W, 3) uint8 RGB. ClipError naming the file when it is no readable image."""
    check_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size  # as stored: a quarter turn swaps them, not the shorter side
            image.draft("RGB", shrunk_size(width, height, max_short_side))  # JPEG only: decode at a smaller scale
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image"
        raise ClipError(path, f"not a readable image ({error})") from error
    size = shrunk_size(*upright.size, max_short_side)
    if size != upright.size:
        upright = upright.resize(size, AREA_RESAMPLE)
    return np.array(upright)  # a writable copy


def decode_still(path: Path | str, frames: int = 16, max_short_side: int | None = None) -> DecodedClip:
    """A photo as the clip a run reads: `frames` views of its one picture (T, H, W, 3), all at time 0, no sound."""
    path = Path(path)
    picture = read_still(path, max_short_side)  # (H, W, 3)
    # (T, H, W, 3), stride 0 over T: one picture. Writable like a video's frames, which torch wraps without copying
    # (it warns on a read-only array); nothing writes to a clip's frames.
    views = as_strided(picture, (frames, *picture.shape), (0, *picture.strides))
    return DecodedClip(views, np.zeros(frames, np.float32), None, (0.0, 0.0), 0.0, still=True)
