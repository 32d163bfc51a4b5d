"""Which face track is the speaker's: the one whose mouth moves while the audio is voiced.

In MELD (and most TV or film material) several people are on screen while one of them speaks, and the utterance's
label belongs to the speaker, who is often not the largest face. Two cheap signals find them without a lip-sync model:
- when the audio is voiced: short-time RMS above a level set relative to the clip's own loud parts, so a quiet
  recording is judged like a loud one, and an absolute floor, so a silent clip is never "voiced";
- how much each track's mouth moves between consecutive sampled frames: the mean absolute grey-level change of a
  patch that follows the track's mouth corners (MTCNN's landmarks 4 and 5), divided by the same change of a patch on
  its eyes. Head and camera motion, blur and lighting change both patches; speech changes the mouth far more.
A track scores its mean mouth-to-eye motion over the voiced steps where it was detected on both sides; the highest
score wins. Without audio, without voiced audio or without any measurable track, the largest track is kept, and the
choice always says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfer.faces.crop import crop
from dfer.faces.track import Detections, track_points

RMS_SECONDS, HOP_SECONDS = 0.025, 0.010  # the usual speech analysis frame and hop
VOICED_RELATIVE = 0.1  # voiced: RMS within 20 dB of the clip's loud level (its 95th percentile RMS)
SILENCE_FLOOR = 1e-3  # and above -60 dBFS, so the hiss of a silent clip never counts
VOICED_SHARE = 0.5  # a step between two sampled frames is voiced when at least half of its RMS frames are
PATCH = 16  # mouth and eye patches are resampled to PATCH x PATCH pixels
PATCH_EYES = 1.0  # patch side in eye distances: the mouth with its lips, or both inner eyes with the nose bridge
MOTION_FLOOR = 2.0  # grey levels added to the eye motion (compression noise), so a still face never divides by 0


@dataclass(frozen=True)
class TrackChoice:
    """Which of a clip's face tracks was cropped, and why: recorded per clip in the store."""

    rank: int  # index into `candidate_tracks` (0 = the largest, surest face); -1 when there is no track
    count: int  # how many tracks the clip has
    score: float  # the chosen track's mouth-to-eye motion while voiced; NaN when it was not measured
    reason: str  # e.g. "speaker: mouth motion while voiced"; empty when nothing was chosen (largest mode)

    def note(self) -> str:
        """The clip's note about the choice; empty when there was no choice to explain."""
        if not self.reason or self.count == 0:
            return self.reason
        return f"face track {self.rank + 1} of {self.count} by size: {self.reason}"


def voiced_steps(waveform: np.ndarray, sample_rate: int, frame_time: np.ndarray) -> np.ndarray:
    """(T - 1,) bool: the audio between sampled frames t and t + 1 is voiced.

    waveform (S,) float in [-1, 1] starting at the span start, frame_time (T,) seconds from the same start.
    """
    steps = np.zeros(max(len(frame_time) - 1, 0), bool)
    if waveform.size == 0:
        return steps
    length, hop = round(RMS_SECONDS * sample_rate), round(HOP_SECONDS * sample_rate)
    padded = np.pad(waveform, (0, max(length - len(waveform), 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, length)[::hop]  # (F, length)
    rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))  # (F,)
    voiced = rms > max(SILENCE_FLOOR, VOICED_RELATIVE * np.percentile(rms, 95))  # (F,)
    times = (np.arange(len(rms)) * hop + length / 2) / sample_rate  # (F,) window centres
    for i in range(len(steps)):
        inside = voiced[(times >= frame_time[i]) & (times < frame_time[i + 1])]
        steps[i] = inside.size > 0 and inside.mean() >= VOICED_SHARE
    return steps


def mouth_motion(frames: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(T - 1,) mouth-to-eye motion between consecutive frames; NaN where the face is missing on either side.

    frames (T, H, W, 3) uint8 RGB, points (T, 5, 2) the track's landmarks in frame pixels (NaN where not detected).
    """
    T = len(frames)
    found = ~np.isnan(points[:, :, 0]).any(axis=1)  # (T,)
    motion = np.full(T - 1, np.nan, np.float32)
    if found.sum() < 2:
        return motion
    side = PATCH_EYES * np.median(np.linalg.norm(points[found, 1] - points[found, 0], axis=1))  # one size per track
    centres = np.concatenate([points[:, 3:5].mean(axis=1), points[:, 0:2].mean(axis=1)])  # (2T, 2) mouths, eyes
    centres = np.nan_to_num(centres)  # missing frames get a dummy patch, masked below
    boxes = np.concatenate([centres - side / 2, centres + side / 2], axis=1).astype(np.float32)  # (2T, 4)
    patches = crop(frames, boxes, PATCH, frame_index=np.tile(np.arange(T), 2))  # (2T, 3, P, P)
    grey = patches.astype(np.float32).mean(axis=1)  # (2T, P, P)
    change = np.abs(np.diff(grey.reshape(2, T, PATCH, PATCH), axis=1)).mean(axis=(2, 3))  # (2, T - 1) mouth, eyes
    both = found[:-1] & found[1:]  # (T - 1,)
    motion[both] = change[0, both] / (change[1, both] + MOTION_FLOOR)
    return motion


def choose_speaker(
    frames: np.ndarray, detections: list[Detections], tracks: list[np.ndarray], voiced: np.ndarray | None
) -> TrackChoice:
    """The speaker's track among `tracks` (ranked as `candidate_tracks` returns them), else the largest, with why.

    frames (T, H, W, 3) uint8 RGB; voiced (T - 1,) bool from `voiced_steps`, or None when the clip has no audio.
    """
    count = len(tracks)
    if count == 0:
        return TrackChoice(-1, 0, float("nan"), "")  # the clip's note already says no face was found
    if voiced is None:
        return TrackChoice(0, count, float("nan"), "largest: no audio")
    if not voiced.any():
        return TrackChoice(0, count, float("nan"), "largest: no voiced audio")
    scores = np.full(count, np.nan)  # (K,)
    for k, chosen in enumerate(tracks):
        motion = mouth_motion(frames, track_points(detections, chosen))[voiced]  # (voiced steps,)
        if (~np.isnan(motion)).any():
            scores[k] = np.nanmean(motion)
    if np.isnan(scores).all():
        return TrackChoice(0, count, float("nan"), "largest: no mouth motion measured while voiced")
    rank = int(np.nanargmax(scores))  # a tie keeps the larger face
    reason = "only face: mouth motion while voiced" if count == 1 else "speaker: mouth motion while voiced"
    return TrackChoice(rank, count, float(scores[rank]), reason)
