"""Batched face detection with facenet-pytorch's MTCNN: every face in every frame, with its 5 landmarks.

MTCNN's weights ship inside the facenet-pytorch package, so detection works offline. It runs with `keep_all=True`
because choosing which face to follow is the tracker's job (`dfer.faces.track`), not the detector's. All T frames of
a clip go through in one call: they share a size, and MTCNN batches its image pyramid across them.

Frames are shrunk for detection so their shorter side is at most `detect_size`. On a 720x720 RAVDESS clip with a
470-pixel face, full-resolution MTCNN takes 7-12 s for 16 frames on two CPU cores (its pyramid starts at 0.6x to find 20-pixel
faces); at 360 it takes 0.6 s, with boxes within a few pixels of the full-resolution ones.
Faces down to 20 pixels at the detection size are still found; crops are cut from the full-resolution frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch import MTCNN

from dfer.faces.track import Detections


class FaceDetector:
    """MTCNN on a device, returning only detections at least `min_prob` confident, in full-frame pixels."""

    def __init__(self, device: str = "cpu", min_prob: float = 0.9, detect_size: int = 360):
        self.min_prob, self.detect_size = min_prob, detect_size
        self.device = torch.device(device)
        self.mtcnn = MTCNN(keep_all=True, device=self.device)

    def __call__(self, frames: np.ndarray) -> list[Detections]:
        """frames (T, H, W, 3) uint8 RGB -> T Detections in frame pixels."""
        scale = min(1.0, self.detect_size / min(frames.shape[1:3]))
        x = torch.from_numpy(frames).to(self.device).float()  # (T, H, W, 3)
        if scale < 1.0:
            x = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=scale, mode="bilinear", antialias=True)
            x = x.permute(0, 2, 3, 1)  # (T, h, w, 3)
        boxes, probs, points = self.mtcnn.detect(x, landmarks=True)  # T entries each; None where no face
        out = []
        for b, p, q in zip(boxes, probs, points):
            if b is None:
                b, p, q = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
            keep = np.asarray(p, np.float32) >= self.min_prob  # (n,)
            out.append(
                Detections(
                    np.asarray(b, np.float32)[keep] / scale,  # (n, 4)
                    np.asarray(p, np.float32)[keep],  # (n,)
                    np.asarray(q, np.float32)[keep] / scale,  # (n, 5, 2)
                )
            )
        return out
