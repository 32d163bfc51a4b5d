"""StatisticsPool: a clip's tokens -> the mean and std of their per-token features, one summary vector per stream.

The sequence path (segment pooling or ROI compression, then the fusion over T steps) summarises a clip by where it
ends up; an utterance-level property such as an emotion is spread evenly over the whole clip, and the mean and
spread of its frames hold most of it. That is what a logistic regression on pooled mean and std sees, and what
x-vectors pool (Snyder et al., ICASSP 2018). Without this path the liquid heads lost to such a probe on pretrained
GE2E tokens (RAVDESS speech, recipes/ravdess_speech/RESULTS.md); with it they start from what the probe has and
the sequence path only adds.

Each token first goes through a small per-token layer (Linear -> GELU), so the pooled statistics are of learned
features rather than of raw dimensions; then the mean and standard deviation over every valid token of the clip
(all audio frames inside the audio length; all patch tokens of frames with a face). `DferHeads` hands it the audio
tokens as they come (Da wide), and the patch tokens as the ROI compressor has already projected them (d wide,
`RoiCompressor.project`): at base size a layer of its own on the 16 x 196 raw 768-wide tokens of a clip cost more
than a third of a head step, the compressor's projection once more.
"""

from __future__ import annotations

import torch
from torch import nn


class StatisticsPool(nn.Module):
    """tokens (B, S, D) with valid (B, S) bool -> (B, 2 * width): [mean, std] over the valid tokens; zeros without."""

    def __init__(self, in_dim: int, width: int, dropout: float = 0.1):
        super().__init__()
        self.frame = nn.Sequential(nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout) if dropout else nn.Identity())

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # where, not multiply: padding may hold anything, NaN included, and 0 * NaN is NaN.
        x = self.frame(torch.where(valid[..., None], tokens, 0.0))  # (B, S, W)
        w = valid[:, None].to(x.dtype)  # (B, 1, S)
        count = w.sum(-1).clamp(min=1.0)  # (B, 1)
        # Weighted sums over S as batched products: at base size S = T x N = 3136 patch tokens a clip, where
        # multiplying by the weights and summing made two more passes over (B, S, W), forward and backward.
        mean = torch.bmm(w, x).squeeze(1) / count  # (B, W)
        var = torch.bmm(w, (x - mean[:, None]).square()).squeeze(1) / count  # (B, W)
        has = valid.any(1, keepdim=True).to(x.dtype)  # (B, 1): a clip with no valid token summarises to zeros
        return torch.cat([mean, (var + 1e-5).sqrt()], -1) * has  # (B, 2W)
