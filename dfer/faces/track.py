"""Turn per-frame face detections into face tracks, and one chosen track into a square crop box per frame (pure numpy).

A clip's label belongs to one person, so the crops must follow one face. A track is seeded at the largest, most
confident detection not yet in a track and followed frame to frame, forwards and backwards, to the free detection that
moved and resized least. A detection that jumped or changed size too much (usually someone else) does not join it,
and starts a later track instead. `candidate_tracks` ranks the tracks by their seed, so the first is the largest,
surest face; `dfer.faces.speaker` may pick another (the one who speaks). In the chosen track, a frame where the face
was missed borrows the box of the nearest frame where it was found, with `face_found` False so nobody mistakes it for
a detection.

Across the windows of a long file (`dfer predict --timeline`) the face is followed too: a `FaceTrace` says where it
was last seen, `continuing_track` picks the window's track that continues it, and a window without any detection
borrows that last box instead of a centre crop.

Boxes are smoothed with a running median over the frames where the face was found. A median, unlike a moving
average, keeps steady motion and sudden moves (a cut, a quick turn) exactly and still removes detector jitter and a
wrong box on one or two frames; with T = 16 frames spread over up to 16 s a moving average would drag the crop behind
the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A detection continues the track if (centre shift / face side) + |log side ratio| < MAX_STEP. Sampled frames can be
# a second apart (16 frames over 16 s), and a head moves up to about one face width in that time; two people side by
# side are more than one face width apart.
MAX_STEP = 1.0


@dataclass
class Detections:
    """All faces the detector found in one frame, in frame pixels."""

    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    probs: np.ndarray  # (n,) float32
    points: np.ndarray  # (n, 5, 2) float32: left eye, right eye, nose, mouth left, mouth right


@dataclass
class FaceTrace:
    """Where the followed face was last detected: the state a tracker carries from one window to the next."""

    time: float  # seconds, on the clock of the frame times it is compared with
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 face box in frame pixels

    def shifted(self, seconds: float) -> FaceTrace:
        """The same trace on a clock that starts `seconds` later (the next window's)."""
        return FaceTrace(self.time - seconds, self.box)


@dataclass
class TrackPlan:
    """Where to crop each frame and what is known about the face there; `crop` is the only step left."""

    box: np.ndarray  # (T, 4) float32 square crop boxes x1, y1, x2, y2 in frame pixels (may extend past the frame)
    landmarks: np.ndarray  # (T, 5, 2) float32 in crop pixels 0..size; NaN when the clip has no face
    face_found: np.ndarray  # (T,) bool: the tracked face was detected in this very frame
    detect_prob: np.ndarray  # (T,) float32 detector confidence of the tracked face, 0 where not found


def plan_track(
    detections: list[Detections], chosen: np.ndarray, frame_hw: tuple[int, int], size: int, margin: float, smooth: int,
    fallback: np.ndarray | None = None,
) -> TrackPlan:
    """Smooth the chosen track (T,) (one of `candidate_tracks`), borrow boxes for missed frames and express landmarks
    in crop pixels. Without any detection every frame is cropped around `fallback` (4,) (a face box, e.g. where the
    previous window last saw the face), or the frame's centre."""
    T = len(detections)
    found = chosen >= 0  # (T,)
    if not found.any():
        if fallback is None:
            square = centre_square(*frame_hw)  # (4,)
        else:
            square = square_box(np.concatenate([_centre(fallback[None]), _side(fallback[None])], axis=1), margin)[0]
        box = np.tile(square, (T, 1))  # (T, 4)
        landmarks = np.full((T, 5, 2), np.nan, np.float32)
        return TrackPlan(box, landmarks, found, np.zeros(T, np.float32))

    idx = np.flatnonzero(found)
    faces = np.stack([detections[t].boxes[chosen[t]] for t in idx])  # (F, 4) F frames with the face found
    points = track_points(detections, chosen)[idx]  # (F, 5, 2)
    probs = np.array([detections[t].probs[chosen[t]] for t in idx], np.float32)  # (F,)

    squares = running_median(np.concatenate([_centre(faces), _side(faces)], axis=1), smooth)  # (F, 3) cx, cy, side
    source = nearest_found(found)  # (T,) index into the F found frames
    box = square_box(squares[source], margin)  # (T, 4)
    landmarks = to_crop_pixels(points[source], box, size)  # (T, 5, 2)
    detect_prob = np.where(found, probs[source], 0.0).astype(np.float32)  # (T,)
    return TrackPlan(box, landmarks, found, detect_prob)


def candidate_tracks(detections: list[Detections]) -> list[np.ndarray]:
    """Every face track of the clip, largest and surest first: each a (T,) index of its detection per frame, -1 where
    it was not detected. The first track is seeded at the clip's largest x most confident detection; each further one
    at the largest x surest detection no earlier track took, and it follows only detections still free."""
    taken = [np.zeros(len(d.boxes), bool) for d in detections]
    tracks = []
    while True:
        free = [~x for x in taken]  # T of (n,)
        scores = [(np.where(free[t], _area(d.boxes) * d.probs, -1.0), t)  # largest x surest, -1 where taken
                  for t, d in enumerate(detections) if free[t].any()]
        if not scores:
            return tracks
        best, seed = max(scores, key=lambda s: s[0].max())
        chosen = np.full(len(detections), -1)
        chosen[seed] = int(np.argmax(best))
        for order in (range(seed + 1, len(detections)), range(seed - 1, -1, -1)):
            ref = detections[seed].boxes[chosen[seed]]  # (4,) last box of the track
            for t in order:
                j = _follow(ref, detections[t].boxes, free[t])
                if j >= 0:
                    chosen[t], ref = j, detections[t].boxes[j]
        for t in np.flatnonzero(chosen >= 0):
            taken[t][chosen[t]] = True
        tracks.append(chosen)


def continuing_track(detections: list[Detections], tracks: list[np.ndarray], frame_time: np.ndarray,
                     trace: FaceTrace) -> int:
    """Rank of the track (one of `candidate_tracks`) whose detection nearest in time to `trace` continues it (moved
    and resized least, within MAX_STEP), or -1 when none does. frame_time (T,) is on the trace's clock."""
    costs = []
    for chosen in tracks:
        found = np.flatnonzero(chosen >= 0)  # (F,)
        t = found[np.argmin(np.abs(frame_time[found] - trace.time))]
        costs.append(_step_cost(trace.box, detections[t].boxes[chosen[t]][None])[0])
    if not costs or min(costs) >= MAX_STEP:
        return -1
    return int(np.argmin(costs))


def face_trace(detections: list[Detections], chosen: np.ndarray, frame_time: np.ndarray) -> FaceTrace | None:
    """The trace of track `chosen` (T,): its last detection, at frame_time (T,); None if it was never detected."""
    found = np.flatnonzero(chosen >= 0)
    if not len(found):
        return None
    t = found[-1]
    return FaceTrace(float(frame_time[t]), detections[t].boxes[chosen[t]].astype(np.float32))


def track_points(detections: list[Detections], chosen: np.ndarray) -> np.ndarray:
    """(T, 5, 2) the track's landmarks in frame pixels; NaN where it was not detected."""
    points = np.full((len(detections), 5, 2), np.nan, np.float32)
    for t in np.flatnonzero(chosen >= 0):
        points[t] = detections[t].points[chosen[t]]
    return points


def _follow(ref: np.ndarray, boxes: np.ndarray, free: np.ndarray) -> int:
    """Index of the free box that continues the track from `ref`, or -1 when every free box moved or resized too
    much."""
    if not free.any():
        return -1
    cost = np.where(free, _step_cost(ref, boxes), np.inf)  # (n,)
    j = int(np.argmin(cost))
    return j if cost[j] < MAX_STEP else -1


def _step_cost(ref: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n,) how far each of boxes (n, 4) moved and resized from ref (4,): centre shift in face sides + |log side
    ratio|."""
    side = np.sqrt(_area(ref[None]))  # (1,)
    sides = np.sqrt(_area(boxes))  # (n,)
    shift = np.linalg.norm(_centre(boxes) - _centre(ref[None]), axis=1) / side  # (n,) in face sides
    return shift + np.abs(np.log(sides / side))


def nearest_found(found: np.ndarray) -> np.ndarray:
    """(T,) for each frame, the rank among found frames of the nearest found frame (the earlier one on a tie)."""
    idx = np.flatnonzero(found)  # (F,)
    dist = np.abs(np.arange(len(found))[:, None] - idx[None, :])  # (T, F)
    return np.argmin(dist, axis=1)


def running_median(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running median along the first axis; the window shrinks at the ends."""
    h = max(width, 1) // 2
    return np.stack([np.median(x[max(0, i - h) : i + h + 1], axis=0) for i in range(len(x))]).astype(np.float32)


def square_box(squares: np.ndarray, margin: float) -> np.ndarray:
    """(N, 3) face centre x, y and longer side -> (N, 4) crop boxes of side * (1 + 2 * margin) on the same centres."""
    c, half = squares[:, :2], squares[:, 2:] * (0.5 + margin)  # (N, 2), (N, 1)
    return np.concatenate([c - half, c + half], axis=1).astype(np.float32)


def centre_square(h: int, w: int) -> np.ndarray:
    """(4,) the largest square in the middle of an h x w frame: the crop for clips without a face."""
    side = min(h, w)
    x1, y1 = (w - side) / 2, (h - side) / 2
    return np.array([x1, y1, x1 + side, y1 + side], np.float32)


def to_crop_pixels(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """(N, 5, 2) frame pixels -> crop pixels of the (N, 4) square boxes resized to size x size."""
    scale = size / (box[:, 2] - box[:, 0])  # (N,)
    return ((points - box[:, None, :2]) * scale[:, None, None]).astype(np.float32)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (n,)


def _side(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True)  # (n, 1) the longer side


def _centre(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2  # (n, 2)
