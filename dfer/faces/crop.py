"""FaceCropper: T frames in, one tracked face out as T square crops at the vision encoder's input size.

Detection (`dfer.faces.detect`) finds every face, the tracker (`dfer.faces.track`) picks and smooths one face's boxes,
and this module cuts the crops. Cropping and resizing are one `torchvision.ops.roi_align` call over all T frames:
it samples the float box exactly (no rounding to whole pixels, which would make the crop jitter), reads zeros where
a box extends past the frame, and averages ceil(box side / S) x ceil(box side / S) samples per output pixel, which
anti-aliases when a large face is shrunk to S.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import roi_align

from dfer.faces.detect import FaceDetector
from dfer.faces.track import plan_track


@dataclass
class FaceTrack:
    faces: np.ndarray  # (T, 3, S, S) uint8 RGB square crops
    box: np.ndarray  # (T, 4) float32 x1, y1, x2, y2 of each square crop in frame pixels (may extend past the frame)
    landmarks: np.ndarray  # (T, 5, 2) float32 eyes, nose, mouth corners in crop pixels 0..S; NaN: clip has no face
    face_found: np.ndarray  # (T,) bool: the tracked face was detected in this very frame (else its box was borrowed)
    detect_prob: np.ndarray  # (T,) float32 detector confidence, 0 where not found


class FaceCropper:
    """Detect, track and crop one face per clip.

    image_size: side S of the crops (the vision encoder's input size).
    margin: context added on each side, as a fraction of the face box's longer side (0.25: crop side = 1.5 x face).
    min_prob: detections below this MTCNN confidence are ignored.
    smooth: width in frames of the running median over the track's boxes.
    detect_size: frames are shrunk to this shorter side for detection only (see `dfer.faces.detect`).
    """

    def __init__(
        self,
        image_size: int = 224,
        margin: float = 0.25,
        device: str = "cpu",
        min_prob: float = 0.9,
        smooth: int = 5,
        detect_size: int = 360,
    ):
        self.image_size, self.margin, self.smooth = image_size, margin, smooth
        self.device = torch.device(device)
        self.detect = FaceDetector(device, min_prob, detect_size)

    def __call__(self, frames: np.ndarray) -> FaceTrack:
        """frames (T, H, W, 3) uint8 RGB -> FaceTrack of T crops."""
        plan = plan_track(self.detect(frames), frames.shape[1:3], self.image_size, self.margin, self.smooth)
        faces = crop(frames, plan.box, self.image_size, self.device)  # (T, 3, S, S)
        return FaceTrack(faces, plan.box, plan.landmarks, plan.face_found, plan.detect_prob)


def crop(frames: np.ndarray, box: np.ndarray, size: int, device: torch.device | str = "cpu") -> np.ndarray:
    """frames (T, H, W, 3) uint8, box (T, 4) float -> (T, 3, size, size) uint8; outside the frame reads as black."""
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    rois = torch.cat([torch.arange(len(box), dtype=torch.float32)[:, None], torch.from_numpy(box)], dim=1)  # (T, 5)
    out = roi_align(x, rois.to(device), output_size=size, sampling_ratio=-1, aligned=True)  # (T, 3, S, S)
    return out.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
