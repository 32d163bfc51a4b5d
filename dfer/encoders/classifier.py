"""TokenClassifier: the classifier a pretrained encoder family was trained with, kept beside its tokens.

A family whose network was trained to name expressions (`faceapi`) carries its own classifier as `encoder.classifier`,
so `dfer zeroshot` can score a store without training anything: what the pretrained network knows, the first of the
three rows `dfer train` prints (zero-shot, linear probe, heads). The classifier reads exactly the tokens the store
keeps, (N, D) per frame, so it runs on cached tokens and needs no encoder at scoring time. A later family with a
classifier of the same shape (global mean, then linear) gets zero-shot runs by setting `classifier` alone.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenClassifier(nn.Module):
    """tokens (B, N, D) -> logits (B, L): the mean over the N tokens, then a linear layer to the L `labels`."""

    def __init__(self, dim: int, labels: list[str]):
        super().__init__()
        self.dim, self.labels = dim, list(labels)
        self.linear = nn.Linear(dim, len(self.labels))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(tokens.mean(-2))  # (B, L)

    def describe(self) -> dict:
        """The arguments that rebuild it (a zero-shot run's config.json)."""
        return {"dim": self.dim, "labels": self.labels}
