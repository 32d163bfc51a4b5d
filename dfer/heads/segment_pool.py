"""SegmentAttentionPool: (B, Ta, Da) FastConformer frames -> (B, T, d), one audio vector per video frame time.

The fusion runs over the T video steps, so the audio must be cut at the same times. Segment t holds the audio frames
whose centres lie in [midpoint(t-1, t), midpoint(t, t+1)) of the frame times (the first segment is open to the left
and the last to the right), i.e. the audio nearest in time to frame t. Inside a segment, a learned query per head
weights the frames (a masked softmax), so a segment is summarised by its most telling 80 ms rather than its average.
Both clocks start at the clip start: audio frame j covers [j, j + 1) * audio_frame_seconds, centred at
(j + 0.5) * audio_frame_seconds.

A segment with no audio frames (a gap between frames shorter than one audio frame, audio that ends before the video,
or audio_length 0) gives zeros and a False mask. Frames that are not valid (at or beyond audio_length, outside a
training crop) never take part, whatever they hold.
"""

from __future__ import annotations

import torch
from torch import nn


def segment_index(frame_time: torch.Tensor, num_frames: int, frame_seconds: float) -> torch.Tensor:
    """frame_time (B, T) increasing seconds -> (B, Ta) long: the segment each audio frame's centre falls in (0..T-1)."""
    B = frame_time.shape[0]
    edges = (frame_time[:, 1:] + frame_time[:, :-1]).float() / 2  # (B, T-1) midpoints between consecutive frames
    centre = (torch.arange(num_frames, device=frame_time.device, dtype=torch.float32) + 0.5) * frame_seconds  # (Ta,)
    # right=True: a centre exactly on a midpoint belongs to the later segment, [lo, hi) as documented above.
    return torch.searchsorted(edges.contiguous(), centre.expand(B, -1).contiguous(), right=True)  # (B, Ta)


class SegmentAttentionPool(nn.Module):
    """Attention pooling of audio frames within T time segments, projected Da -> d and layer-normalised."""

    def __init__(self, audio_dim: int, d: int, audio_frame_seconds: float = 0.08, heads: int = 4):
        super().__init__()
        assert d % heads == 0, f"d={d} must be divisible by heads={heads}"
        self.frame_seconds, self.heads = audio_frame_seconds, heads
        self.norm_in = nn.LayerNorm(audio_dim)
        self.to_k = nn.Linear(audio_dim, d, bias=False)  # a bias would add one constant to all of a head's scores: dead
        self.to_v = nn.Linear(audio_dim, d)
        self.query = nn.Parameter(torch.randn(heads, d // heads) * (d // heads) ** -0.5)  # (h, hs) one query per head
        self.out = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))

    def forward(self, audio: torch.Tensor, valid: torch.Tensor, frame_time: torch.Tensor):
        """audio (B, Ta, Da), valid (B, Ta) bool (the frames inside the audio length, and inside a training crop),
        frame_time (B, T) -> pooled (B, T, d), mask (B, T) bool."""
        B, Ta, _ = audio.shape
        T, h = frame_time.shape[1], self.heads
        # where, not multiply: padding may hold anything, NaN included, and 0 * NaN is NaN.
        audio = torch.where(valid[..., None], audio.to(self.query.dtype), 0.0)  # (B, Ta, Da)
        seg = segment_index(frame_time, Ta, self.frame_seconds)  # (B, Ta)
        member = seg[:, None, :] == torch.arange(T, device=audio.device)[None, :, None]  # (B, T, Ta) j in t
        member = member & valid[:, None, :]  # (B, T, Ta) and valid
        mask = member.any(-1)  # (B, T) segments with audio

        x = self.norm_in(audio)  # (B, Ta, Da)
        k = self.to_k(x).reshape(B, Ta, h, -1)  # (B, Ta, h, hs)
        v = self.to_v(x).reshape(B, Ta, h, -1)  # (B, Ta, h, hs)
        score = torch.einsum("bjhe,he->bhj", k, self.query) * k.shape[-1] ** -0.5  # (B, h, Ta)
        # Masked softmax over each segment's frames; an empty segment gets all-zero weights instead of 0/0.
        score = score[:, :, None, :].masked_fill(~member[:, None], float("-inf"))  # (B, h, T, Ta)
        top = score.amax(-1, keepdim=True).detach()  # (B, h, T, 1), -inf for empty segments; a constant shift
        weight = torch.exp(score - torch.where(torch.isfinite(top), top, 0.0))  # (B, h, T, Ta), 0 outside the segment
        weight = weight / weight.sum(-1, keepdim=True).clamp(min=1e-12)  # (B, h, T, Ta)
        pooled = torch.einsum("bhtj,bjhe->bthe", weight, v).reshape(B, T, -1)  # (B, T, d)
        return self.out(pooled) * mask[..., None], mask  # (B, T, d) zeros where empty, (B, T)
