"""MTCNN's box arithmetic between its stages, as facenet-pytorch 2.6.0's `detect_face` does it (MIT; its
`generateBoundingBox`, `bbreg`, `rerec`, `pad`, `batched_nms_numpy` and `fixed_batch_process`), so that
`dfer.faces.detect` gives that library's boxes without importing it.

Boxes are (N, >=5) float tensors: x1, y1, x2, y2 in image pixels, then the face probability, then whatever a stage
carries along (PNet's four offsets). MTCNN's boxes are inclusive pixel ranges, hence the `+ 1`s in widths.
"""

from __future__ import annotations

import numpy as np
import torch

PNET_STRIDE, PNET_CELL = 2, 12  # PNet's output grid: one 12-pixel window every 2 pixels of a pyramid level


def pnet_boxes(reg: torch.Tensor, probs: torch.Tensor, scale: float, threshold: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """PNet's windows of one pyramid level with a face probability of at least `threshold`: offsets reg (T, 4, h, w),
    probabilities (T, h, w) -> boxes (N, 9) x1, y1, x2, y2 in the image's pixels, score, the 4 offsets; image index
    (N,)."""
    found = probs >= threshold  # (T, h, w)
    where = found.nonzero()  # (N, 3) image, row, column
    offsets = reg.permute(1, 0, 2, 3)[:, found].permute(1, 0)  # (N, 4)
    xy = where[:, 1:].to(reg.dtype).flip(1)  # (N, 2) column, row
    top_left = ((PNET_STRIDE * xy + 1) / scale).floor()
    bottom_right = ((PNET_STRIDE * xy + PNET_CELL) / scale).floor()
    return torch.cat([top_left, bottom_right, probs[found][:, None], offsets], dim=1), where[:, 0]


def bbreg(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Boxes (N, >=4) moved by a stage's offsets reg (N, 4), each a fraction of the box's width or height."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    moved = torch.stack([boxes[:, 0] + reg[:, 0] * w, boxes[:, 1] + reg[:, 1] * h,
                         boxes[:, 2] + reg[:, 2] * w, boxes[:, 3] + reg[:, 3] * h], dim=1)  # (N, 4)
    return torch.cat([moved, boxes[:, 4:]], dim=1)


def rerec(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (N, >=4) made square about their centres, the side their longer one."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.max(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.cat([torch.stack([x1, y1, x1 + side, y1 + side], dim=1), boxes[:, 4:]], dim=1)


def pad(boxes: torch.Tensor, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The part of each box (N, >=4) inside a w x h image, in 1-based inclusive pixels: y, ey, x, ex, each (N,)."""
    b = boxes[:, :4].trunc().int().cpu().numpy()
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    return y, ey, x, ex


def batched_nms_min(boxes: torch.Tensor, scores: torch.Tensor, image_inds: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """Non-maximum suppression within each image, overlap measured over the smaller box's area (MTCNN's last step):
    boxes (N, 4), scores (N,), image index (N,) -> the indices kept, highest score first."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=boxes.device)
    apart = boxes + (image_inds.to(boxes) * (boxes.max() + 1))[:, None]  # images' boxes never overlap
    keep = _nms_min(apart.cpu().numpy(), scores.cpu().numpy(), threshold)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    x1, y1, x2, y2 = boxes.T  # (N,) each
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)  # ascending: the best is last
    keep = []
    while order.size > 0:
        best, rest = order[-1], order[:-1]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        order = rest[w * h / np.minimum(area[best], area[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def in_batches(crops: torch.Tensor, net: torch.nn.Module, batch: int = 512) -> tuple[torch.Tensor, ...]:
    """A network's outputs over crops (N, 3, s, s), `batch` crops a call (what facenet-pytorch runs at once)."""
    out = [net(crops[i:i + batch]) for i in range(0, len(crops), batch)]
    return tuple(torch.cat(parts) for parts in zip(*out))
