"""Fusions of per-step stream features into class logits, all behind one interface, chosen by name.

Every fusion takes the same inputs: for each stream it was built for (any number, in name order: `dfer.streams`), features (B, T, d) aligned to the T frame
times and a mask (B, T) bool of the steps where that modality is present, the frame times (B, T), and per modality a
clip-level summary (B, S) (the statistics pooling of `dfer.heads.statistics`; S = 0 when it is off). So liquid
fusion and every baseline see exactly the same features and ablations are one config field. Each fusion's
classifier reads the summaries of the modalities present beside its own representation.

- liquid: a CfC over the T steps on [each stream's features, indicators], timespans = real time since the last update;
  its final state and the summaries feed the classifier (the proposed method, see the design notes, docs/design.md).
- late: a classifier per modality on its masked mean over T and its summary; logits averaged over the modalities
  present.
- concat: masked means over T and summaries, concatenated with the indicators, MLP.
- gated: masked means and summaries, each mapped to d and scaled by a learned sigmoid gate computed from all of them (a gated
  multimodal unit, Arevalo et al. 2017); a missing modality contributes nothing.
- xattn: each stream's steps attend to the steps of all the others (one block per stream; with audio and video,
  audio attends to video and video to audio), then masked means, concat, MLP.

A fusion built for one stream only ever sees that one: liquid becomes a CfC over that
stream, late/concat/gated a pooled classifier, xattn has nothing to attend across and pools directly. Missing inputs
are zeros with False masks, so a clip with nothing usable gives the classifier a zero vector: finite logits.
"""

from __future__ import annotations

import torch
from torch import nn

from dfer.heads.cfc import CfC
from dfer.heads.temporal import TIME_SCALE

FUSIONS = ("liquid", "late", "concat", "gated", "xattn")

Features = dict[str, torch.Tensor]  # stream name -> (B, T, d) features, or (B, T) bool masks


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, T, d), mask (B, T) bool -> (B, d) mean over the masked-in steps; zeros where there are none."""
    m = mask[..., None].to(x.dtype)  # (B, T, 1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, d)


def classifier(width: int, num_classes: int, dropout: float, hidden: int | None = None) -> nn.Sequential:
    """LayerNorm -> (Linear -> GELU ->) Dropout -> Linear. LayerNorm maps a zero vector to zero: no input, bias only."""
    if hidden is None:
        return nn.Sequential(nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, num_classes))
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, num_classes))


def since_last_update(frame_time: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """frame_time (B, T) seconds, mask (B, T) bool -> (B, T) time since the previous masked-in step (or the clip start).

    Skipped steps keep the CfC state, so the gap at the next used step must span everything since the last update.
    """
    used = torch.where(mask, frame_time.float(), float("-inf"))  # (B, T)
    last = torch.cummax(used, 1).values  # (B, T) time of the latest used step up to and including t
    start = last.new_full((last.shape[0], 1), float("-inf"))  # (B, 1)
    previous = torch.cat([start, last[:, :-1]], 1)  # (B, T) latest used step strictly before t
    previous = torch.where(torch.isfinite(previous), previous, 0.0)  # no update yet: count from the clip start
    return (frame_time.float() - previous).clamp(min=0.0)  # (B, T)


class ModalityDropout(nn.Module):
    """In training, with probability p per sample that has two streams or more, hide one of them, chosen uniformly
    among those it has.

    It only edits the masks: the fusions zero what is masked, so the model learns to classify from every stream with
    one missing, and one checkpoint serves each subset at test time. Never hides all of a sample's streams; a no-op in
    eval and with one stream. (With the two historic streams this is "hide audio or video, 50/50", draw for draw.)
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, masks: Features) -> Features:
        if not self.training or self.p <= 0 or len(masks) < 2:
            return masks
        names = sorted(masks)  # name order: "audio" first of the historic two, as it always was
        present = torch.stack([masks[s].any(1) for s in names], -1)  # (B, M)
        count = present.sum(1)  # (B,)
        drop = (count > 1) & (torch.rand(count.shape, device=present.device) < self.p)  # (B,)
        pick = (torch.rand(count.shape, device=present.device) * count).long()  # (B,) which present stream
        rank = present.long().cumsum(1) - 1  # (B, M) each present stream's index among the sample's present ones
        hidden = drop[:, None] & present & (rank == pick[:, None])  # (B, M)
        return hide_streams(masks, {s: hidden[:, i] for i, s in enumerate(names)})


def hide_streams(masks: Features, hide: Features) -> Features:
    """masks: stream -> (B, T) bool; hide: stream -> (B,) bool -> masks with the hidden samples' streams all False.

    How modality dropout hides a modality, and so how explanations must hide one to ask the same checkpoint what it
    says without it."""
    return {s: m & ~hide[s][:, None] if s in hide else m for s, m in masks.items()}


class Fusion(nn.Module):
    """Base: `streams` are the names of the streams fused, in name order; `summary_dim` S of each one's summary."""

    def __init__(self, streams: tuple[str, ...], summary_dim: int = 0):
        super().__init__()
        self.streams, self.summary_dim = streams, summary_dim

    def indicators(self, masks: Features) -> torch.Tensor:
        """(B, M) float: 1 where a stream has any step present. Tells a zero feature "missing" from "small"."""
        return torch.stack([masks[s].any(1) for s in self.streams], -1).float()

    def summaries(self, summary: Features, masks: Features) -> list[torch.Tensor]:
        """M x (B, S): each stream's summary, zeros where the stream is absent (missing, or modality dropout)."""
        if not self.summary_dim:
            return []
        return [summary[s] * masks[s].any(1, keepdim=True).to(summary[s].dtype) for s in self.streams]

    def pooled(self, feats: Features, masks: Features, summary: Features) -> list[torch.Tensor]:
        """M x (B, d + S): each stream's masked mean over T, beside its summary."""
        means = [masked_mean(feats[s], masks[s]) for s in self.streams]
        if not self.summary_dim:
            return means
        return [torch.cat([m, x], -1) for m, x in zip(means, self.summaries(summary, masks))]


class LiquidFusion(Fusion):
    def __init__(self, streams, d: int, num_classes: int, dropout: float, cfc_units: int, summary_dim: int = 0, **_):
        super().__init__(streams, summary_dim)
        M = len(streams)
        self.cfc = CfC(M * d + M, cfc_units, backbone_units=cfc_units, dropout=dropout)
        self.head = classifier(cfc_units + M * summary_dim, num_classes, dropout)

    def forward(self, feats: Features, masks: Features, frame_time: torch.Tensor, summary: Features) -> Features:
        steps = [feats[s] * masks[s][..., None] for s in self.streams]  # M x (B, T, d), zeros where missing
        present = torch.stack([masks[s] for s in self.streams], -1)  # (B, T, M) per-step modality indicators
        x = torch.cat(steps + [present.to(steps[0].dtype)], -1)  # (B, T, M*d + M)
        step_mask = present.any(-1)  # (B, T): a step with no modality at all keeps the state
        # Seconds x TIME_SCALE: a typical gap (0.1-0.3 s) becomes O(1), where the time gate sigmoid(a*t + b) responds.
        timespans = since_last_update(frame_time, step_mask) * TIME_SCALE  # (B, T)
        _, final = self.cfc(x, timespans, step_mask)  # (B, H); zeros if no step was used
        return {"logits": self.head(torch.cat([final, *self.summaries(summary, masks)], -1))}  # (B, C)


class LateFusion(Fusion):
    def __init__(self, streams, d: int, num_classes: int, dropout: float, summary_dim: int = 0, **_):
        super().__init__(streams, summary_dim)
        self.heads = nn.ModuleDict({s: classifier(d + summary_dim, num_classes, dropout, hidden=d) for s in streams})

    def forward(self, feats: Features, masks: Features, frame_time: torch.Tensor, summary: Features) -> Features:
        pooled = self.pooled(feats, masks, summary)  # M x (B, d + S)
        out = {f"logits_{s}": self.heads[s](p) for s, p in zip(self.streams, pooled)}  # (B, C) each
        if len(self.streams) == 1:
            return {"logits": out[f"logits_{self.streams[0]}"], **out}
        present = self.indicators(masks)  # (B, M)
        stacked = torch.stack([out[f"logits_{s}"] for s in self.streams], 1)  # (B, M, C)
        # Average over the modalities present; with none present, the plain average (classifiers on zero inputs).
        weight = torch.where(present.any(1, keepdim=True), present, torch.ones_like(present))  # (B, M)
        logits = (stacked * weight[..., None]).sum(1) / weight.sum(1, keepdim=True)  # (B, C)
        return {"logits": logits, **out}


class ConcatFusion(Fusion):
    def __init__(self, streams, d: int, num_classes: int, dropout: float, summary_dim: int = 0, **_):
        super().__init__(streams, summary_dim)
        M = len(streams)
        self.head = classifier(M * (d + summary_dim) + M, num_classes, dropout, hidden=d)

    def forward(self, feats: Features, masks: Features, frame_time: torch.Tensor, summary: Features) -> Features:
        x = torch.cat(self.pooled(feats, masks, summary) + [self.indicators(masks)], -1)  # (B, M*(d+S) + M)
        return {"logits": self.head(x)}  # (B, C)


class GatedFusion(Fusion):
    def __init__(self, streams, d: int, num_classes: int, dropout: float, summary_dim: int = 0, **_):
        super().__init__(streams, summary_dim)
        M, width = len(streams), d + summary_dim
        self.value = nn.ModuleDict({s: nn.Linear(width, d) for s in streams})
        self.gate = nn.Linear(M * width + M, M * d)  # one gate per modality and feature, from everything present
        self.head = classifier(d, num_classes, dropout, hidden=d)

    def forward(self, feats: Features, masks: Features, frame_time: torch.Tensor, summary: Features) -> Features:
        pooled, present = self.pooled(feats, masks, summary), self.indicators(masks)  # M x (B, d + S), (B, M)
        gate = torch.sigmoid(self.gate(torch.cat(pooled + [present], -1)))  # (B, M*d)
        gate = gate.reshape(gate.shape[0], len(self.streams), -1) * present[..., None]  # (B, M, d), 0 if missing
        values = torch.stack([torch.tanh(self.value[s](p)) for s, p in zip(self.streams, pooled)], 1)  # (B, M, d)
        return {"logits": self.head((gate * values).sum(1))}  # (B, d) -> (B, C)


class CrossBlock(nn.Module):
    """Pre-norm cross-attention + MLP, residual on the queries: x (B, T, d) attends to y (B, T, d) where y_mask."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        # in_proj_bias packs the q, k and v biases; the k third is dead (q . b_k is one constant over a query's
        # logits, which the softmax removes), the q and v thirds are not, and PyTorch cannot drop one third alone.
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
        has_keys = y_mask.any(1)  # (B,)
        # A sample with no keys would softmax over nothing (NaN): let it attend anywhere, then drop the update.
        pad = ~(y_mask | ~has_keys[:, None])  # (B, T) True = ignore
        kv = self.norm_kv(y)
        update, _ = self.attn(self.norm_q(x), kv, kv, key_padding_mask=pad, need_weights=False)  # (B, T, d)
        x = x + update * has_keys[:, None, None]  # (B, T, d)
        return x + self.mlp(x)  # (B, T, d)


class CrossAttentionFusion(Fusion):
    def __init__(self, streams, d: int, num_classes: int, dropout: float, heads: int = 4, summary_dim: int = 0, **_):
        super().__init__(streams, summary_dim)
        M = len(streams)
        # Each stream attends to the steps of all the others; a single stream has nothing to attend across and is
        # pooled as is.
        self.cross = nn.ModuleDict({s: CrossBlock(d, heads, dropout) for s in streams} if M > 1 else {})
        self.head = classifier(M * (d + summary_dim) + M, num_classes, dropout, hidden=d)

    def forward(self, feats: Features, masks: Features, frame_time: torch.Tensor, summary: Features) -> Features:
        feats = {s: feats[s] * masks[s][..., None] for s in self.streams}  # (B, T, d) each, zeros where missing
        if len(self.streams) > 1:
            feats = {s: self.cross[s](feats[s], *self.others(s, feats, masks)) for s in self.streams}
        x = torch.cat(self.pooled(feats, masks, summary) + [self.indicators(masks)], -1)  # (B, M*(d+S) + M)
        return {"logits": self.head(x)}  # (B, C)

    def others(self, stream: str, feats: Features, masks: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys a stream attends to: the other streams' steps, one after another: (B, (M-1)T, d), (B, (M-1)T)."""
        rest = [s for s in self.streams if s != stream]
        return torch.cat([feats[s] for s in rest], 1), torch.cat([masks[s] for s in rest], 1)


_FUSIONS = {"liquid": LiquidFusion, "late": LateFusion, "concat": ConcatFusion, "gated": GatedFusion,
            "xattn": CrossAttentionFusion}


def build_fusion(name: str, streams: tuple[str, ...], d: int, num_classes: int, dropout: float = 0.1, heads: int = 4,
                 cfc_units: int = 128, summary_dim: int = 0) -> Fusion:
    """The fusion `name` over the named streams (in name order)."""
    if name not in _FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose one of {FUSIONS}")
    return _FUSIONS[name](tuple(streams), d=d, num_classes=num_classes, dropout=dropout, heads=heads,
                          cfc_units=cfc_units, summary_dim=summary_dim)
