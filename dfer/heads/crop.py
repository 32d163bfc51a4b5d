"""TemporalCrop: in training, each clip is seen through a random window of its own span, a new one every epoch.

An emotion is a property of the whole utterance, so any long enough stretch of a clip still carries its label; a
window that moves every epoch makes the heads' statistics and sequence paths see a different part of each clip
each time instead of memorising the whole (on RAVDESS speech the heads fit their ~800 training clips in a few
epochs). The window keeps a fraction U(min_keep, 1) of the clip, placed uniformly; audio frames and video frames
outside it are masked exactly as missing ones are, so the model code needs nothing else. A no-op in eval mode and
at min_keep = 1.
"""

from __future__ import annotations

import torch
from torch import nn


class TemporalCrop(nn.Module):
    def __init__(self, min_keep: float = 1.0):
        super().__init__()
        if not 0 < min_keep <= 1:
            raise ValueError(f"min_keep must be in (0, 1], not {min_keep}")
        self.min_keep = min_keep

    def forward(self, frame_time: torch.Tensor) -> torch.Tensor | None:
        """frame_time (B, T) seconds -> window (B, 2) [start, end) seconds, or None when not cropping.

        The clip's span is estimated from its frame times, sampled uniformly with equal margins at both ends.
        """
        if not self.training or self.min_keep >= 1:
            return None
        span = (frame_time[:, -1] + frame_time[:, 0]).float()  # (B,) seconds
        keep = span * (self.min_keep + (1 - self.min_keep) * torch.rand_like(span))  # (B,)
        start = (span - keep) * torch.rand_like(span)  # (B,)
        return torch.stack([start, start + keep], -1)  # (B, 2)


def inside(times: torch.Tensor, window: torch.Tensor | None) -> torch.Tensor | bool:
    """times (B, S) seconds, window (B, 2) -> (B, S) bool, True inside [start, end); True everywhere without one."""
    if window is None:
        return True
    return (times >= window[:, :1]) & (times < window[:, 1:])
