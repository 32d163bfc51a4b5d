"""Cut square boxes out of frames and resize them, for face crops and for the speaker's mouth and eye patches.

One `torchvision.ops.roi_align` call does every box at once: it samples the float box exactly (no rounding to whole
pixels, which would make the crop jitter), reads zeros where a box extends past the frame, and averages
ceil(box side / S) x ceil(box side / S) samples per output pixel, which anti-aliases when a large face is shrunk to S.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import roi_align


def crop(
    frames: np.ndarray,
    box: np.ndarray,
    size: int,
    device: torch.device | str = "cpu",
    frame_index: np.ndarray | None = None,
) -> np.ndarray:
    """frames (T, H, W, 3) uint8, box (M, 4) float x1, y1, x2, y2 -> (M, 3, size, size) uint8; outside the frame
    reads as black. Box m is cut from frame `frame_index[m]` (default: box t from frame t, M = T)."""
    index = np.arange(len(box)) if frame_index is None else frame_index  # (M,)
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    rois = torch.cat([torch.from_numpy(index).float()[:, None], torch.from_numpy(box)], dim=1)  # (M, 5)
    out = roi_align(x, rois.to(device), output_size=size, sampling_ratio=-1, aligned=True)  # (M, 3, S, S)
    return out.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
