"""Heads trained several times on the same split, from consecutive seeds, answering as one model.

Why: on the RAVDESS speech recipe no single change moved the heads by half a point, while averaging the
log-probabilities of three independently seeded runs gained +0.4 to +1.4 UAR over their mean (recipes/ravdess_speech/
RESULTS.md). Seeds differ in initialisation and in the batches, views and adaptation groups they draw; their errors
differ too, and the mean keeps what they agree on.

`HeadMembers` is read wherever `DferHeads` is (predict, evaluate, explanations, timelines, serve): the same batch in,
the same keys out. Its `logits` are the members' mean log-probability (log-softmax of each, averaged: the
normalised geometric mean of their probabilities after a softmax), as `dfer predict --model RUN --model RUN` fuses
runs. The members are trained one by one (`dfer.train.run`), each as a run of its own; this module only answers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dfer.heads.model import DferHeads, HeadConfig
from dfer.heads.roi import RoiAttention


class HeadMembers(nn.Module):
    """`count` DferHeads of one config; forward(batch, hide, keep_steps) -> every `logits*` key their mean
    log-probability (B, C), and the members' `mask_<stream>` (the steps they read: the same in every member)."""

    def __init__(self, config: HeadConfig, count: int):
        super().__init__()
        if count < 2:
            raise ValueError(f"a run of members holds at least 2 heads, not {count}: one is a DferHeads")
        self.config = config
        self.members = nn.ModuleList(DferHeads(config) for _ in range(count))
        self.streams = self.members[0].streams

    @property
    def roi(self) -> nn.ModuleDict:
        """The grid streams' ROI compressors of the first member: which grid streams there are (every member has
        the same)."""
        return self.members[0].roi

    def forward(self, batch: dict[str, torch.Tensor], hide: dict[str, torch.Tensor] | None = None,
                keep_steps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        outs = [member(batch, hide, keep_steps) for member in self.members]
        answer = {key: value for key, value in outs[0].items() if key.startswith("mask_")}
        for key in (key for key in outs[0] if key.startswith("logits")):
            answer[key] = torch.stack([out[key].float().log_softmax(-1) for out in outs]).mean(0)  # (B, C)
        return answer

    def roi_attention(self, batch: dict[str, torch.Tensor], stream: str | None = None) -> RoiAttention:
        """Where the members' ROI compressors look, on average (`DferHeads.roi_attention`)."""
        each = [member.roi_attention(batch, stream) for member in self.members]
        return RoiAttention(*(torch.stack(parts).mean(0) for parts in zip(*each)))

    def input_statistics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The training set's statistics: the same in every member, which trained on one split."""
        return self.members[0].input_statistics()
