"""The `mediapipe` frame family: face actions as tokens, one per sampled frame. MediaPipe's FaceLandmarker reads
the face dfer tracks on the whole frame (`dfer.encoders.face_actions`: why the whole frame, and how the face is
checked to be dfer's), and a frame's token is what it reads there:

    token t = [52 blendshapes, in BLENDSHAPES order, 0..1 | yaw, pitch, roll in degrees | tx, ty, tz in cm]  (58,)

exactly `FaceActionReader`'s values, unscaled (heads and the linear probe standardise each dimension). A frame where
the reader did not read dfer's face (none found, or only another one) has a token of zeros and `found` False, and the
heads and the probe read only found frames. The 478 landmarks (frame pixels, z in x's scale) are kept beside the
tokens, not in them: 1,434 coordinates of where the face is in the picture, which the blendshapes and the pose
already summarise as what it does; the store keeps them for analyses (`<stream>/landmarks`).

The box the reader matches faces against is the track's face box (its crop less the crop's margin,
`FaceTrack.face_box`), MTCNN's own square, whatever the margin of the store's face crops. Frames are those the store
decodes for its face track (at most `frame_short_side` pixels high), so the same file gives the same tokens in
extraction and in prediction.

No torch weights: the bundle is run by the `mediapipe` package on the CPU (a thread's own landmarker), whatever the
store's device, and stage 3 has nothing to train. The revision names the package's version and the bundle's SHA-256.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import torch

from dfer.encoders.base import FrameEncoder, FrameTokens, Weightless
from dfer.encoders.face_actions import BLENDSHAPES, LANDMARKS, POSE, TASK_FILE, TASK_SHA256, FaceActionReader

FEATURES = (*BLENDSHAPES, *POSE)  # the token's dimensions, in order


class MediaPipeActions(Weightless, FrameEncoder):
    """frames (T, H, W, 3) uint8 RGB, boxes (T, 4) or None -> FrameTokens: tokens (T, 58), found (T,), points
    (T, 478, 3)."""

    def __init__(self):
        super().__init__()
        self.reader = FaceActionReader()  # fails in one line without mediapipe
        self.spec, self.revision = "mediapipe", f"mediapipe-{version('mediapipe')}+{TASK_FILE}:{TASK_SHA256[:16]}"
        self.dim, self.points = len(FEATURES), LANDMARKS

    def forward(self, frames: np.ndarray, boxes: np.ndarray | None) -> FrameTokens:
        actions = self.reader(frames, boxes)
        tokens = np.concatenate([actions.blendshapes, actions.pose], axis=1)  # (T, 58), NaN where not found
        return FrameTokens(np.where(actions.found[:, None], tokens, 0).astype(np.float32), actions.found,
                           actions.landmarks)

    def family_fields(self) -> dict:
        return {"features": list(FEATURES)}


def load_mediapipe(meta: bool = False, device: str | torch.device = "cpu") -> MediaPipeActions:
    """The encoder; it runs on the CPU and has no parameters, so `meta` and `device` change nothing."""
    return MediaPipeActions().eval()
