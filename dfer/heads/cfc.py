"""Closed-form continuous-time (CfC) recurrence over the T steps of a clip, with real time gaps.

CfC (Hasani et al., "Closed-form continuous-time neural networks", Nature Machine Intelligence 2022) approximates the
solution of a liquid time-constant ODE in closed form, so one step can cover any elapsed time t:

    z = backbone([x, h])                                   # shared MLP
    sigma = sigmoid(time_a(z) * t + time_b(z))            # how far the state has moved towards ff2 after time t
    h_new = tanh(ff1(z)) * (1 - sigma) + sigma * tanh(ff2(z))

This is the paper's default ("non-minimal", gated) form and `ncps.torch.CfCCell(mode="default")`. Frames are sampled
at uneven real times (clips differ in length, faceless frames are skipped), which is what the timespans are for.

Why not `ncps.torch.CfC`: in ncps 1.0.1 its sequence loop passes `timespans[:, t].squeeze()`, shape (B,), into a
cell that multiplies it with (B, H) tensors, so the gaps broadcast over the hidden units instead of the batch (one
sample's gap scales hidden unit b of every sample) or fail when B != H (ncps issues #81-83). The cell here takes
(B,) gaps and reshapes them to (B, 1). Parameter names match `CfCCell`'s, so its weights load here (see the tests).
"""

from __future__ import annotations

import torch
from torch import nn


class LeCunTanh(nn.Module):
    """1.7159 * tanh(2/3 x) (LeCun et al. 1998): keeps unit variance through the layer; ncps's default activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


class CfCCell(nn.Module):
    """One CfC step: x (B, I), h (B, H), timespan (B,) -> h_new (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, backbone_units: int = 128, backbone_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        layers, width = [], input_size + hidden_size
        for _ in range(backbone_layers):
            layers += [nn.Linear(width, backbone_units), LeCunTanh()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = backbone_units
        self.backbone = nn.Sequential(*layers)  # empty for backbone_layers=0: the heads read [x, h] directly
        self.ff1 = nn.Linear(width, hidden_size)
        self.ff2 = nn.Linear(width, hidden_size)
        self.time_a = nn.Linear(width, hidden_size)
        self.time_b = nn.Linear(width, hidden_size)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.xavier_uniform_(p)  # as ncps does; biases keep nn.Linear's default

    def forward(self, x: torch.Tensor, h: torch.Tensor, timespan: torch.Tensor) -> torch.Tensor:
        z = self.backbone(torch.cat([x, h], -1))  # (B, U)
        t = timespan.reshape(-1, 1).to(z.dtype)  # (B, 1): one gap per sample, the same for all H units
        sigma = torch.sigmoid(self.time_a(z) * t + self.time_b(z))  # (B, H)
        return torch.tanh(self.ff1(z)) * (1 - sigma) + sigma * torch.tanh(self.ff2(z))  # (B, H)


class CfC(nn.Module):
    """Runs a CfCCell over T steps. A step with mask False is skipped: the state carries over unchanged (h_t = h_{t-1}).

    Returns the states after every step (B, T, H) and the final state (B, H). The loop over T is the recurrence
    itself (T = 16 steps); everything inside a step is batched.
    """

    def __init__(self, input_size: int, hidden_size: int, backbone_units: int = 128, backbone_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.cell = CfCCell(input_size, hidden_size, backbone_units, backbone_layers, dropout)

    def forward(self, x: torch.Tensor, timespans: torch.Tensor, mask: torch.Tensor | None = None,
                h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I), timespans (B, T), mask (B, T) bool, h0 (B, H) -> states (B, T, H), final (B, H)."""
        B, T, _ = x.shape
        h = x.new_zeros(B, self.cell.hidden_size) if h0 is None else h0  # (B, H)
        states = []
        for t in range(T):
            new = self.cell(x[:, t], h, timespans[:, t])  # (B, H)
            h = new if mask is None else torch.where(mask[:, t, None], new, h)  # (B, H)
            states.append(h)
        return torch.stack(states, 1), h  # (B, T, H), (B, H)
