"""TemporalEncoder: (B, T, K, d) ROI tokens per frame -> (B, T, d) frame features in context of the whole clip.

Frames are sampled uniformly over clips of different lengths, so the frame index says little about time: frame 5 of a
2 s clip and frame 5 of a 6 s clip are 0.6 s and 1.9 s in. The time embedding is therefore built from the real
timestamps. Frames to ignore (a clip without video, frames without a face) are masked out of attention, and their
outputs are zeros, so the fusion sees a clean "nothing here" rather than features of a centre crop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Timestamps are in seconds; x10 puts them in units of 100 ms before the usual sinusoidal encoding. Its fastest
# component then has a period of 2*pi*0.1 s = 0.63 s, so frames sampled 0.1-0.3 s apart (16 frames over 2-5 s clips)
# fall below its Nyquist spacing and stay distinguishable, while the slowest (period ~6000 s) never wraps within a clip.
TIME_SCALE = 10.0


def sinusoidal_time(time: torch.Tensor, dim: int, scale: float = TIME_SCALE) -> torch.Tensor:
    """(...) seconds -> (..., dim) sin/cos of time * scale at frequencies 1 / 10000^(2i/dim), as in Vaswani et al."""
    freqs = torch.exp(torch.arange(0, dim, 2, device=time.device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angle = time.float()[..., None] * scale * freqs  # (..., dim/2)
    return torch.cat([angle.sin(), angle.cos()], -1)  # (..., dim)


class TemporalEncoder(nn.Module):
    """Pre-norm transformer over the T frames of a clip.

    frame_pool: how a frame's K ROI tokens become one vector: "flatten" (concatenate K x d -> linear to d; keeps which
    query, i.e. which face region, said what) or "mean" (average over K; fewer parameters).
    """

    def __init__(self, d: int, num_tokens: int, layers: int = 2, heads: int = 4, dropout: float = 0.1,
                 frame_pool: str = "flatten"):
        super().__init__()
        if frame_pool not in ("flatten", "mean"):
            raise ValueError(f"frame_pool must be 'flatten' or 'mean', not {frame_pool!r}")
        self.frame_pool = frame_pool
        self.pool = nn.Linear(num_tokens * d, d) if frame_pool == "flatten" else nn.Identity()
        self.time = nn.Linear(d, d, bias=False)  # lets the model scale and rotate the fixed sinusoids
        # Its attention's in_proj_bias packs the q, k and v biases in one tensor; the k third is dead (q . b_k is one
        # constant over a query's logits, which the softmax removes) but PyTorch has no switch for it alone.
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        # enable_nested_tensor=False: the nested-tensor fast path does not support norm_first and only warns.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor, frame_time: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, K, d), frame_time (B, T) seconds, mask (B, T) bool True = use this frame -> (B, T, d)."""
        B, T, K, d = tokens.shape
        x = self.pool(tokens.reshape(B, T, K * d)) if self.frame_pool == "flatten" else tokens.mean(2)  # (B, T, d)
        x = x + self.time(sinusoidal_time(frame_time, d).to(x.dtype))  # (B, T, d)
        # A clip with every frame masked would give softmax over nothing (NaN): let its frames attend to each other,
        # then zero them below like every other masked frame.
        empty = ~mask.any(1, keepdim=True)  # (B, 1)
        x = self.encoder(x, src_key_padding_mask=~(mask | empty))  # (B, T, d)
        return self.norm(x) * mask[..., None]  # (B, T, d), zeros at masked frames
