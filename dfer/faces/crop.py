"""Cut square boxes out of frames and resize them, for face crops and for the speaker's mouth and eye patches.

One `torchvision.ops.roi_align` call does every box at once: it samples the float box exactly (no rounding to whole
pixels, which would make the crop jitter), reads zeros where a box extends past the frame, and averages
ceil(box side / S) x ceil(box side / S) samples per output pixel, which anti-aliases when a large face is shrunk to S.
Each box reads only its own part of its frame (two pixels of border added, which covers every bilinear neighbour), so
the frames stay uint8 and only the boxes' pixels become float: the same numbers as cutting from the whole frame.
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
    T, H, W = frames.shape[:3]
    out = torch.zeros(len(box), 3, size, size, device=device)  # a box wholly outside its frame reads black
    for m, (x1, y1, x2, y2) in enumerate(np.asarray(box, np.float64) if size else ()):
        # the part of the frame the box's samples and their bilinear neighbours can reach
        left, top = max(int(np.floor(x1)) - 2, 0), max(int(np.floor(y1)) - 2, 0)
        right, bottom = min(int(np.ceil(x2)) + 3, W), min(int(np.ceil(y2)) + 3, H)
        if right <= left or bottom <= top:
            continue
        part = torch.from_numpy(frames[index[m], top:bottom, left:right]).to(device).permute(2, 0, 1).float()
        roi = torch.tensor([[0, x1 - left, y1 - top, x2 - left, y2 - top]], dtype=torch.float32, device=device)
        out[m] = roi_align(part[None], roi, output_size=size, sampling_ratio=-1, aligned=True)[0]  # (3, S, S)
    return out.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
