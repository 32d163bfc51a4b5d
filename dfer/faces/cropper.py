"""FaceCropper: T frames in, one tracked face out as T square crops at the vision encoder's input size.

Detection (`dfer.faces.detect`) finds every face, the tracker (`dfer.faces.track`) links them into tracks, one track
is chosen (the largest, or with `face_track="speaker"` the one whose mouth moves while the audio is voiced,
`dfer.faces.speaker`), and `dfer.faces.crop` cuts its smoothed boxes. Datasets that ship aligned face frames skip all
of it: `whole_frame_track` only resizes them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from dfer.faces.crop import crop
from dfer.faces.detect import DetectSettings, FaceDetector
from dfer.faces.speaker import TrackChoice, choose_speaker, voiced_steps
from dfer.faces.track import Detections, FaceTrace, candidate_tracks, continuing_track, face_trace, plan_track

FACE_TRACKS = ("largest", "speaker")  # which face of a clip is cropped


@dataclass
class FaceTrack:
    faces: np.ndarray  # (T, 3, S, S) uint8 RGB square crops
    box: np.ndarray  # (T, 4) float32 x1, y1, x2, y2 of each square crop in frame pixels (may extend past the frame)
    landmarks: np.ndarray  # (T, 5, 2) float32 eyes, nose, mouth corners in crop pixels 0..S; NaN: clip has no face
    face_found: np.ndarray  # (T,) bool: the tracked face was detected in this very frame (else its box was borrowed)
    detect_prob: np.ndarray  # (T,) float32 detector confidence, 0 where not found
    choice: TrackChoice  # which of the clip's face tracks this is, and why
    trace: FaceTrace | None = None  # where this face was last detected (frame_time clock); None: never
    margin: float = 0.0  # context on each side of the crop, as a fraction of the face's side (FaceCropper's)

    def repeated(self, times: int) -> FaceTrack:
        """The track of a one-frame clip as the track of `times` copies of its frame."""
        per_frame = {name: np.repeat(getattr(self, name), times, axis=0)
                     for name in ("faces", "box", "landmarks", "face_found", "detect_prob")}
        return replace(self, **per_frame)

    def face_box(self) -> np.ndarray:
        """(T, 4) float32 x1, y1, x2, y2 of the face's own square in frame pixels: `box` less its margin."""
        centre, half = (self.box[:, :2] + self.box[:, 2:]) / 2, (self.box[:, 2:] - self.box[:, :2]) / 2
        return np.concatenate([centre - half / (1 + 2 * self.margin), centre + half / (1 + 2 * self.margin)],
                              axis=1).astype(np.float32)


class FaceCropper:
    """Detect, track and crop one face per clip.

    image_size: side S of the crops (the vision encoder's input size); 0 cuts none, for a model that reads the face
    track on whole frames alone (face actions).
    margin: context added on each side, as a fraction of the face box's longer side (0.25: crop side = 1.5 x face).
    min_prob: detections below this MTCNN confidence are ignored.
    smooth: width in frames of the running median over the track's boxes.
    detect: how faces are searched for (`dfer.faces.detect.DetectSettings`; default: large faces first).
    face_track: "largest" (the largest, surest face) or "speaker" (see `dfer.faces.speaker`).
    """

    def __init__(
        self,
        image_size: int = 224,
        margin: float = 0.25,
        device: str = "cpu",
        min_prob: float = 0.9,
        smooth: int = 5,
        detect: DetectSettings | None = None,
        face_track: str = "largest",
    ):
        if face_track not in FACE_TRACKS:
            raise ValueError(f"face_track {face_track!r} is not one of {FACE_TRACKS}")
        self.image_size, self.margin, self.smooth, self.face_track = image_size, margin, smooth, face_track
        self.device = torch.device(device)
        self.detect = FaceDetector(device, min_prob, detect)

    def __call__(
        self,
        frames: np.ndarray,
        waveform: np.ndarray | None = None,
        frame_time: np.ndarray | None = None,
        sample_rate: int = 16000,
        follow: FaceTrace | None = None,
    ) -> FaceTrack:
        """frames (T, H, W, 3) uint8 RGB -> FaceTrack of T crops.

        The speaker choice also reads the clip's audio: waveform (S,) float from the span start (None: no audio) and
        frame_time (T,) seconds of the frames from the same start. `follow` (on the frame_time clock) continues a face
        from a previous window: its track is chosen when one continues it, and a window without any face is cropped
        where it was last seen.

        Frames that are T views of one picture (stride 0 over T: a photo, `dfer.media.still`) are searched, tracked
        and cropped once.
        """
        if len(frames) > 1 and frames.strides[0] == 0:
            once = self(frames[:1], waveform, None if frame_time is None else frame_time[:1], sample_rate, follow)
            return once.repeated(len(frames))
        return self.track(frames, self.detect(frames), waveform, frame_time, sample_rate, follow)

    def many(self, clips: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
             sample_rate: int = 16000) -> list[FaceTrack]:
        """The FaceTrack of each clip (frames, waveform, frame_time), as `__call__` makes it, with detection batched
        across the clips (`FaceDetector.detect_clips`: one call for several clips on CUDA)."""
        found = self.detect.detect_clips([frames for frames, _, _ in clips])
        return [self.track(frames, detections, waveform, frame_time, sample_rate)
                for (frames, waveform, frame_time), detections in zip(clips, found)]

    def track(
        self,
        frames: np.ndarray,
        detections: list[Detections],
        waveform: np.ndarray | None = None,
        frame_time: np.ndarray | None = None,
        sample_rate: int = 16000,
        follow: FaceTrace | None = None,
    ) -> FaceTrack:
        """The FaceTrack of frames (T, H, W, 3) whose faces were detected already (T Detections); the other
        arguments as in `__call__`."""
        tracks = candidate_tracks(detections)
        times = np.arange(len(frames), dtype=np.float32) if frame_time is None else frame_time  # (T,)
        continued = -1 if follow is None else continuing_track(detections, tracks, times, follow)
        if continued >= 0:
            choice = TrackChoice(continued, len(tracks), float("nan"), "continues the previous window's face")
        elif self.face_track == "speaker":
            voiced = None if waveform is None else voiced_steps(waveform, sample_rate, frame_time)  # (T - 1,)
            choice = choose_speaker(frames, detections, tracks, voiced)
        else:
            choice = TrackChoice(0 if tracks else -1, len(tracks), float("nan"), "")
        chosen = tracks[choice.rank] if tracks else np.full(len(frames), -1)  # (T,)
        plan = plan_track(detections, chosen, frames.shape[1:3], self.image_size, self.margin, self.smooth,
                          fallback=None if follow is None else follow.box)
        faces = crop(frames, plan.box, self.image_size, self.device)  # (T, 3, S, S); S = 0: a track without crops
        trace = face_trace(detections, chosen, times) or follow
        return FaceTrack(faces, plan.box, plan.landmarks, plan.face_found, plan.detect_prob, choice, trace,
                         self.margin)


def whole_frame_track(frames: np.ndarray, image_size: int, device: torch.device | str = "cpu") -> FaceTrack:
    """frames (T, H, W, 3) uint8 that are already face crops (a dataset's own aligned faces) -> FaceTrack.

    No detection runs: the dataset kept only frames where its detector found the face, so every frame counts as
    found (the heads mask frames that are not), and landmarks are NaN, which leaves the heads' ROI prior out.
    """
    T, H, W = frames.shape[:3]
    box = np.tile(np.array([0, 0, W, H], np.float32), (T, 1))  # (T, 4) the whole frame
    faces = crop(frames, box, image_size, device)  # (T, 3, S, S)
    landmarks = np.full((T, 5, 2), np.nan, np.float32)
    choice = TrackChoice(-1, 0, float("nan"), "pre-cropped face frames: no detection")
    return FaceTrack(faces, box, landmarks, np.ones(T, bool), np.ones(T, np.float32), choice)
