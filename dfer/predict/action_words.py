"""Face actions for one analysed clip: read on its sampled frames (for a zero-shot run that reads them, and for
`dfer explain`), and the actions that moved most, in words ("brows lowered, upper lip raised").

**Moved against the clip's own quietest frames**, per action: each action (a blendshape, its two sides merged,
`dfer.encoders.action_units.ACTIONS`) is sorted over the frames where the face was read; its quietest frames are its
lowest quarter (at least one frame), its strongest its highest quarter, and how far it moved is the difference of
their means. Per action, not per frame, because a face's actions peak at different moments: on CREMA-D's happy
clip the smile and the raised inner brows take turns, so the frames with the least activation overall hold one of
them at its height and would hide it. A quarter rather than the single lowest and highest frame, so that one
misread frame sets neither end. A person's resting face (brows that sit low) is its own baseline, so it is not named.

Words name at most WORDS actions, those that moved at least MIN_MOVED, strongest first.
"""

from __future__ import annotations

import numpy as np
import torch

from dfer.encoders.action_units import ACTIONS, action_intensities
from dfer.encoders.face_actions import BLENDSHAPES, FaceActionReader
from dfer.errors import MissingExtra
from dfer.faces import FaceTrack
from dfer.media.decode import DecodedClip

WORDS = 3  # actions named at most
MIN_MOVED = 0.2  # the least movement (0..1, a fifth of an action's range) worth naming
DIGITS = 3


def read_actions(decoded: DecodedClip, track: FaceTrack | None, frames: int) -> np.ndarray:
    """(frames, 52) float32 the blendshapes of the face dfer follows (the largest without a track) on each sampled
    frame, NaN where it was not read or past the decoded frames."""
    out = np.full((frames, len(BLENDSHAPES)), np.nan, np.float32)
    if decoded.frames is not None:
        read = FaceActionReader()(decoded.frames, None if track is None else track.face_box())
        out[:len(read.blendshapes)] = read.blendshapes[:frames]
    return out


def moved_actions(blendshapes: np.ndarray) -> list[dict]:
    """blendshapes (T, 52), NaN where not read -> every action with how far it moved (module docstring): action,
    au, words, quietest, strongest, moved; the most moved first."""
    read = blendshapes[~np.isnan(blendshapes).any(1)]  # (n, 52)
    if not len(read):
        return []
    values = np.sort(action_intensities(torch.from_numpy(read)).numpy(), axis=0)  # (n, A) each column ascending
    quarter = max(1, len(read) // 4)
    quietest, strongest = values[:quarter].mean(0), values[-quarter:].mean(0)  # (A,)
    moved = [{"action": name, "au": au, "words": words, "quietest": round(float(low), DIGITS),
              "strongest": round(float(high), DIGITS), "moved": round(float(high - low), DIGITS)}
             for (name, (au, words)), low, high in zip(ACTIONS.items(), quietest, strongest)]
    return sorted(moved, key=lambda action: -action["moved"])


def describe_actions(blendshapes: np.ndarray) -> dict:
    """The `actions` entry of an explanation: words, the actions named (`moved_actions`) and the frames read."""
    frames = int((~np.isnan(blendshapes).any(1)).sum())
    named = [action for action in moved_actions(blendshapes) if action["moved"] >= MIN_MOVED][:WORDS]
    if not frames:
        words = "no face actions: the landmarker read the face in no frame"
    elif not named:
        words = f"no action moved by {MIN_MOVED} or more against the clip's quietest frames"
    else:
        words = ", ".join(action["words"] for action in named)
    return {"words": words, "named": named, "frames_read": frames}


def explain_actions(decoded: DecodedClip, track: FaceTrack | None, frames: int,
                    blendshapes: np.ndarray | None = None) -> dict:
    """`describe_actions` of a clip (its `blendshapes` when read already), or, without mediapipe, one line saying
    they are unavailable and how to install them."""
    if decoded.frames is None:
        return {"words": None, "unavailable": "no picture: face actions are read from a video's frames"}
    try:
        return describe_actions(read_actions(decoded, track, frames) if blendshapes is None else blendshapes)
    except MissingExtra as missing:
        return {"words": None, "unavailable": str(missing)}
