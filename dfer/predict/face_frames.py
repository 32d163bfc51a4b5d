"""Face actions as an output: one row per frame dfer analyses, as py-feat's `Fex` gives them (`Model.frames`,
`dfer predict --timeline DIR --actions`).

The frames are those a timeline reads (`dfer.predict.timeline`): the T sampled frames of each window, over the whole
file, so the rows are exactly what the model saw. Windows overlap (the hop is a third of a window by default), so a
moment can be read by two windows; each row names its window. A row holds:

- `time` (seconds in the file), `window`, `window_start`, `window_end`;
- `face_found` (dfer's face detector found its followed face in this frame; else its box was borrowed from a
  neighbouring frame), `x1, y1, x2, y2` (that face's square box, in the file's own pixels);
- `actions_found` (the landmarker read that face: `dfer.encoders.face_actions`), the 52 blendshapes under
  mediapipe's names (`mouthSmileLeft`, ...) and the head pose (`yaw`, `pitch`, `roll` in degrees, `tx`, `ty`, `tz`
  in cm); NaN where it did not;
- the expression probabilities, `p_<label>`, and `top`: the window's answer, the same on each of its frames (the
  models answer per window; a zero-shot run's per-frame probabilities are not exposed yet);
- with `landmarks=True`, the 478 landmarks as `x_0 .. x_477`, `y_*`, `z_*` (file pixels; z in x's scale).

dfer follows one face per file (`dfer.faces`); these are that face's actions. A model that only hears follows no face:
its rows read the largest face the landmarker finds, and `face_found` says where it found one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dfer.encoders.face_actions import BLENDSHAPES, LANDMARKS, POSE, FaceActionReader
from dfer.media.clip_error import ClipError, as_clip_error
from dfer.media.probe import frame_pixels
from dfer.predict.timeline import FileTimeline, window_row
from dfer.predict.timeline_files import PROB

BOX = ("x1", "y1", "x2", "y2")


def window_actions(timeline: FileTimeline, reader: FaceActionReader,
                   landmarks: bool = False) -> Iterator[tuple[dict, list[dict]]]:
    """Per window of `timeline`: its timeline row (`window_row`) with `actions`, its strongest actions in words
    (`strongest_actions`), and the rows of its frames (see the module docstring). Raises ClipError for a file that
    cannot be read, or has no picture."""
    path = timeline.path
    scale = None  # the file's pixels per decoded pixel (frames are decoded at most `frame_short_side` high)
    for index, current in enumerate(timeline.windows()):
        clip, track, result = current.clip, current.track, current.result
        del current  # this window's frames go with `clip`, before the next is read
        if clip.frames is None:
            raise ClipError(path, "no picture: face actions are read from a video's frames")
        if scale is None:
            with as_clip_error(path):
                scale = frame_pixels(path)[0] / clip.frames.shape[2]
        boxes = None if track is None else track.face_box()  # (T, 4) decoded pixels
        actions = reader(clip.frames, boxes)
        row = window_row(clip.span, result)
        probs = {PROB + label: p for label, p in zip(row["labels"], row["probs"])}
        frames = []
        for t, when in enumerate(clip.frame_time):
            found = bool(actions.found[t]) if track is None else bool(track.face_found[t])
            box = actions.box[t] if track is None else boxes[t]
            frame = {"time": round(float(clip.span[0] + when), 3), "window": index, "window_start": row["start"],
                     "window_end": row["end"], "face_found": found,
                     **{k: float(v) * scale for k, v in zip(BOX, box)}, "actions_found": bool(actions.found[t]),
                     **dict(zip(BLENDSHAPES, actions.blendshapes[t].tolist())),
                     **dict(zip(POSE, actions.pose[t].tolist())), **probs, "top": row["top"]}
            if landmarks:
                points = actions.landmarks[t] * scale  # (478, 3)
                frame.update((f"{axis}_{i}", float(points[i, a])) for a, axis in enumerate("xyz")
                             for i in range(LANDMARKS))
            frames.append(frame)
        row["actions"] = "; ".join(f"{name} {value:.2f}" for name, value in strongest_actions(frames))
        del clip, track
        yield row, frames


def strongest_actions(rows: list[dict], k: int = 3) -> list[tuple[str, float]]:
    """The k blendshapes with the highest mean over `rows` (frames where the face was read), strongest first;
    "_neutral" is no action and is left out."""
    read = [row for row in rows if row["actions_found"]]
    if not read:
        return []
    means = {name: float(np.mean([row[name] for row in read])) for name in BLENDSHAPES[1:]}
    return sorted(means.items(), key=lambda item: -item[1])[:k]


def write_frames_csv(path: Path, frames: list[dict]) -> Path:
    """The frames' rows as a CSV (a column per key, in order; NaN written empty), written to a temporary name and
    renamed into place, as the timeline's files are."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(frames[0]) if frames else ["time"])
        writer.writeheader()
        writer.writerows({k: "" if isinstance(v, float) and np.isnan(v) else v for k, v in frame.items()}
                         for frame in frames)
    os.replace(partial, path)
    return path
