"""HeadConfig and DferHeads: the stage-2 model that turns one cached batch into class logits.

    video_tokens (B, T, N, D) --RoiCompressor--> (B, T, K, d) --TemporalEncoder--> (B, T, d) -.
    audio_tokens (B, Ta, Da) --SegmentAttentionPool (cut at frame_time)-----------> (B, T, d) -+-> fusion -> (B, C)

and beside that sequence path, with `statistics_width` W > 0, one clip-level summary per stream that every fusion's
classifier reads too (StatisticsPool: mean and std of per-token features, (B, 2W)): of the audio tokens, and of the
patch tokens as the ROI compressor projects them, (B, T, N, d), computed once for both (`video_statistics`).

Only the streams of `modalities` are built and read: an "audio" model has no video modules and never touches
video_tokens / landmarks / face_found, so it trains on audio-only datasets whose batches do not have them.
Step masks come from the batch: video = has_video & face_found (a crop of a borrowed or centre box is not a face we
trust), audio = has_audio & "the segment holds audio frames". Modality dropout (training only) edits those masks.
`forward`'s `hide` and `keep_steps` let explanations mask a modality or a step exactly as training does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dfer.heads.fusion import FUSIONS, MODALITIES, STREAMS, Features, ModalityDropout, build_fusion, hide_streams
from dfer.heads.roi import RoiAttention, RoiCompressor
from dfer.heads.crop import TemporalCrop, inside
from dfer.heads.segment_pool import SegmentAttentionPool, segment_index
from dfer.heads.statistics import StatisticsPool
from dfer.heads.temporal import TemporalEncoder

VIDEO_STATISTICS = ("projected", "tokens")  # HeadConfig.video_statistics


@dataclass(kw_only=True)
class HeadConfig:
    """Everything needed to rebuild DferHeads; plain types only, so `to_dict()` is JSON and checkpoints need no pickle.

    The encoder-side fields (vision_dim, num_tokens, grid, image_size, audio_dim, audio_frame_seconds) describe the
    cache and should be copied from its fingerprint; the rest are the heads' own sizes.
    """

    vision_dim: int  # D, SigLIP token width
    audio_dim: int  # Da, FastConformer token width
    num_tokens: int  # N patches per frame = grid * grid
    grid: int  # patches per side of the crop
    image_size: int  # crop side in pixels (the unit of the landmarks)
    num_classes: int
    audio_frame_seconds: float = 0.08  # FastConformer: 10 ms mel hop x 8 subsampling
    d_model: int = 128
    roi_queries: int = 16  # K tokens per frame
    temporal_layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    fusion: str = "liquid"
    modalities: str = "av"
    modality_dropout: float = 0.2
    cfc_units: int = 128
    statistics_width: int = 128  # W of the statistics pooling beside the sequence path (0: off); summary 2W per stream
    crop_min_keep: float = 1.0  # training clips are seen through random windows of >= this fraction (1: off)
    frame_pool: str = "flatten"  # how the temporal encoder joins a frame's K tokens: "flatten" or "mean"
    # What the video statistics pool: "projected", the patch tokens as the ROI compressor projects them (D -> d, its
    # first step, computed once for both); "tokens", the standardised D-wide tokens through a layer of their own, as
    # runs saved before "projected" existed did (at base size that second projection of all T x N tokens cost more
    # than a third of a head step).
    video_statistics: str = "projected"

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {self.fusion!r}")
        if self.modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, not {self.modalities!r}")
        if "video" in STREAMS[self.modalities] and self.grid * self.grid != self.num_tokens:
            raise ValueError(f"num_tokens={self.num_tokens} is not grid*grid={self.grid}*{self.grid}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
        if self.video_statistics not in VIDEO_STATISTICS:
            raise ValueError(f"video_statistics must be one of {VIDEO_STATISTICS}, not {self.video_statistics!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> HeadConfig:
        # Runs saved before a field existed rebuild the model they trained: no statistics pooling before it existed,
        # and the video statistics of the raw tokens before they read the compressor's projection.
        values = {"statistics_width": 0, "video_statistics": "tokens", **values}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown HeadConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


class DferHeads(nn.Module):
    """Stage-2 heads. forward(batch) -> {"logits": (B, C)} plus "logits_audio" / "logits_video" for late fusion, and
    "mask_audio" / "mask_video" (B, T) bool, the steps of each stream the fusion read."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = c = config
        self.streams = STREAMS[c.modalities]
        if "video" in self.streams:
            self.roi = RoiCompressor(c.vision_dim, c.d_model, c.grid, c.image_size, c.roi_queries, c.heads, c.dropout)
            self.temporal = TemporalEncoder(c.d_model, c.roi_queries, c.temporal_layers, c.heads, c.dropout,
                                            c.frame_pool)
        if "audio" in self.streams:
            self.audio_pool = SegmentAttentionPool(c.audio_dim, c.d_model, c.audio_frame_seconds, c.heads)
        # Per-dimension input standardisation with training-set statistics (set by `set_input_statistics`, saved with
        # the weights). Frozen-encoder tokens carry large constant offsets per dimension and small clip-to-clip
        # differences; without this the heads barely move off chance on real tokens (RAVDESS speech, random
        # FastConformer: train loss 2.16 -> 2.07 in 15 epochs while a standardised linear probe reaches 44 %).
        for stream, dim in (("video", c.vision_dim), ("audio", c.audio_dim)):
            if stream in self.streams:
                self.register_buffer(f"{stream}_mean", torch.zeros(dim))
                self.register_buffer(f"{stream}_std", torch.ones(dim))
        self.statistics_momentum = 0.0  # 0: the statistics stay fixed; stage 3 sets it (`track_input_statistics`)
        if c.statistics_width:
            video_dim = c.d_model if c.video_statistics == "projected" else c.vision_dim  # what the video pool reads
            # No dropout on the video's per-token features: averaged over the T x N = 3136 patch tokens of a clip its
            # noise is about 0.6 % of a feature (sqrt(p / (1 - p) / 3136)), no regulariser, while drawing its mask was
            # a tenth of a base-size head step. The audio's ~40 frames a clip keep it (5 % noise).
            self.statistics = nn.ModuleDict({stream: StatisticsPool(dim, c.statistics_width, dropout) for stream, dim,
                                             dropout in (("video", video_dim, 0.0), ("audio", c.audio_dim, c.dropout))
                                             if stream in self.streams})
        self.crop = TemporalCrop(c.crop_min_keep)
        self.modality_dropout = ModalityDropout(c.modality_dropout)
        self.fusion = build_fusion(c.fusion, c.modalities, c.d_model, c.num_classes, c.dropout, c.heads, c.cfc_units,
                                   2 * c.statistics_width)

    def forward(self, batch: dict[str, torch.Tensor], hide: Features | None = None,
                keep_steps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """hide: stream -> (B,) bool, that stream masked for those samples as modality dropout masks it.
        keep_steps: (B, T) bool, steps outside it masked as a training crop masks the frames outside its window
        (video step t, and the audio frames of segment t)."""
        frame_time = batch["frame_time"]  # (B, T) seconds
        B, T = frame_time.shape
        feats, masks, summary = {}, {}, {}
        window = self.crop(frame_time)  # (B, 2) seconds in training with cropping on, else None
        kept = True if keep_steps is None else keep_steps.bool()  # (B, T)
        if "video" in self.streams:
            has_video = batch.get("has_video", torch.ones(B, dtype=torch.bool, device=frame_time.device))  # (B,)
            face_found = batch["face_found"].bool()  # (B, T)
            masks["video"] = has_video.bool()[:, None] & face_found & inside(frame_time, window) & kept  # (B, T)
            video = self.standardise("video", batch, masks["video"])  # (B, T, N, D)
            projected = self.roi.project(video)  # (B, T, N, d)
            rois = self.roi.compress(projected, batch["landmarks"], face_found)  # (B, T, K, d)
            feats["video"] = self.temporal(rois, frame_time, masks["video"])  # (B, T, d)
            if self.config.statistics_width:
                pooled = projected if self.config.video_statistics == "projected" else video  # (B, T, N, d or D)
                N = pooled.shape[2]
                summary["video"] = self.statistics["video"](pooled.flatten(1, 2),
                                                            masks["video"].repeat_interleave(N, 1))  # (B, 2W)
        if "audio" in self.streams:
            has_audio = batch.get("has_audio", torch.ones(B, dtype=torch.bool, device=frame_time.device))  # (B,)
            audio_tokens, audio_length = batch["audio_tokens"], batch["audio_length"]  # (B, Ta, Da), (B,)
            frames = torch.arange(audio_tokens.shape[1], device=audio_tokens.device)  # (Ta,)
            centre = ((frames + 0.5) * self.config.audio_frame_seconds).expand(B, -1)  # (B, Ta) seconds
            valid = (frames < audio_length[:, None]) & has_audio.bool()[:, None] & inside(centre, window)  # (B, Ta)
            if keep_steps is not None:
                segment = segment_index(frame_time, audio_tokens.shape[1], self.config.audio_frame_seconds)  # (B, Ta)
                valid = valid & kept.gather(1, segment)  # (B, Ta)
            audio = self.standardise("audio", batch, valid)  # (B, Ta, Da)
            if self.config.statistics_width:
                summary["audio"] = self.statistics["audio"](audio, valid)  # (B, 2W)
            feats["audio"], segment_mask = self.audio_pool(audio, valid, frame_time)
            masks["audio"] = has_audio.bool()[:, None] & segment_mask  # (B, T)
        masks = hide_streams(self.modality_dropout(masks), hide or {})
        out = self.fusion(feats, masks, frame_time, summary)
        return {**out, **{f"mask_{stream}": mask for stream, mask in masks.items()}}  # the steps the fusion read

    def roi_attention(self, batch: dict[str, torch.Tensor]) -> RoiAttention:
        """The ROI compressor's attention on this batch's frames, from the standardised tokens `forward` gives it."""
        video = self.standardise("video", batch, batch["face_found"].bool())  # (B, T, N, D)
        return self.roi.attention(video, batch["landmarks"], batch["face_found"])

    def standardise(self, stream: str, batch: dict[str, torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
        """The batch's `{stream}_tokens` (B, S, ..., D), valid (B, S) bool -> standardised per dimension: with the
        batch's own `{stream}_mean` / `{stream}_std` (B, D) when it has them (adaptation statistics of each clip's
        speaker: `dfer.adapt`), else with the run's training-set statistics, which first move towards this batch's
        (valid tokens only) when training with `statistics_momentum` > 0."""
        tokens = batch[f"{stream}_tokens"]
        if f"{stream}_mean" in batch:
            shape = (tokens.shape[0], *(1,) * (tokens.dim() - 2), tokens.shape[-1])  # (B, 1, ..., D)
            mean, std = batch[f"{stream}_mean"].reshape(shape), batch[f"{stream}_std"].reshape(shape)
        else:
            mean, std = getattr(self, f"{stream}_mean"), getattr(self, f"{stream}_std")
            if self.training and self.statistics_momentum > 0:
                with torch.no_grad():
                    rows = tokens[valid].reshape(-1, tokens.shape[-1]).float()  # (M, D)
                    if len(rows) > 1:
                        mean.lerp_(rows.mean(0), self.statistics_momentum)
                        std.lerp_(rows.std(0).clamp(min=1e-3), self.statistics_momentum)
        # A float32 copy standardised in place: `(tokens - mean) / std` on float16 tokens cast every element on the fly,
        # twice, 2.5x slower than this at base size (T x N x D = 2.4 M values a clip)
        return tokens.to(mean.dtype, copy=True).sub_(mean).div_(std)

    def track_input_statistics(self, momentum: float) -> None:
        """Let training batches update the input statistics (an exponential moving average, as BatchNorm's running
        statistics): for stage 3, where the encoders move under the heads. Adam moves every encoder weight by about
        the learning rate per step, coherently, so the tokens drift by an offset shared by all clips: on RAVDESS
        speech (small random FastConformer, encoder lr 1e-5) one epoch moved them 2.3 stage-2 stds, 0.08 of it
        clip-specific, and the fixed statistics turned that offset into a shift the heads had never seen (chance)."""
        self.statistics_momentum = momentum

    @torch.no_grad()
    def set_input_statistics(self, stream: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension mean and std of a stream's tokens over the training clips (std floored to stay finite)."""
        getattr(self, f"{stream}_mean").copy_(mean)
        getattr(self, f"{stream}_std").copy_(std.clamp(min=1e-3))

    def input_statistics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """stream -> the training set's (mean (D,), std (D,)): what a lone clip is standardised with, and the prior
        a small group's statistics shrink toward (`dfer.adapt.moments.Moments.standardiser`)."""
        return {stream: (getattr(self, f"{stream}_mean").double().cpu().numpy(),
                         getattr(self, f"{stream}_std").double().cpu().numpy()) for stream in self.streams}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
