"""HeadConfig and DferHeads: the stage-2 model that turns one cached batch into class logits, over any non-empty set
of streams (`dfer.streams`), one adapter per token kind:

    grid     `{s}_tokens` (B, T, N, D) --RoiCompressor--> (B, T, K, d) --TemporalEncoder--> (B, T, d) -.
    vector   `{s}_tokens` (B, T, D) --LayerNorm, Linear--> (B, T, 1, d) --TemporalEncoder--> (B, T, d) --+-> fusion -> (B, C)
    sequence `{s}_tokens` (B, Ta, D) --SegmentAttentionPool (cut at frame_time)-----------> (B, T, d) -'

and beside that sequence path, with `statistics_width` W > 0, one clip-level summary per stream that every fusion's
classifier reads too (StatisticsPool: mean and std of per-token features, (B, 2W)): of a sequence's tokens, and of a
grid's patch tokens as its ROI compressor projects them, (B, T, N, d), computed once for both (`video_statistics`),
and of a vector's projected tokens (B, T, d).

Only the streams in the config are built and read: a model of the `audio` stream has no grid modules and never
touches `video_tokens` / landmarks / face_found, so it trains on audio-only datasets whose batches do not have them.
The inputs' presence and the face track are shared by the streams that read them: step masks of a grid stream are
has_video & face_found (a crop of a borrowed or centre box is not a face we trust), of a vector has_video & its own
`<stream>_found` (the frames its encoder read the face on), of a sequence has_audio & "the segment holds tokens".
Modality dropout (training only) edits those masks. `forward`'s `hide` and `keep_steps` let explanations mask a
stream or a step exactly as training does.

Parameter names: `roi.<stream>`, `proj.<stream>`, `temporal.<stream>`, `pool.<stream>`, `statistics.<stream>`,
`<stream>_mean`. Runs saved before streams were data named the one grid module `roi` / `temporal` and the one
sequence module `audio_pool`; `HISTORIC_MODULES` maps their weights onto the `video` and `audio` streams when they load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dfer.heads.crop import TemporalCrop, inside
from dfer.heads.fusion import FUSIONS, Features, ModalityDropout, build_fusion, hide_streams
from dfer.heads.roi import RoiAttention, RoiCompressor
from dfer.heads.segment_pool import SegmentAttentionPool, segment_index
from dfer.heads.statistics import StatisticsPool
from dfer.heads.temporal import TemporalEncoder
from dfer.streams import PRESENT, Stream, found_key, historic

VIDEO_STATISTICS = ("projected", "tokens")  # HeadConfig.video_statistics
# Module prefixes of runs saved before streams were data -> theirs now
HISTORIC_MODULES = {"roi.": "roi.video.", "temporal.": "temporal.video.", "audio_pool.": "pool.audio."}
# A run's config.json of before streams were data: the two encoders' token shapes, whichever streams it read
HISTORIC_FIELDS = ("vision_dim", "audio_dim", "num_tokens", "grid", "image_size", "audio_frame_seconds")


@dataclass(kw_only=True)
class HeadConfig:
    """Everything needed to rebuild DferHeads; `to_dict()` is plain JSON, so checkpoints need no pickle.

    `streams` are the streams the heads read, in name order, with their token shapes copied from the store's
    fingerprint (`dfer.streams.select`); the rest are the heads' own sizes. `modalities` is the selection they were
    chosen by, kept for the run's card and checks."""

    streams: tuple[Stream, ...]
    num_classes: int
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
    # What a grid's statistics pool: "projected", the patch tokens as the ROI compressor projects them (D -> d, its
    # first step, computed once for both); "tokens", the standardised D-wide tokens through a layer of their own, as
    # runs saved before "projected" existed did (at base size that second projection of all T x N tokens cost more
    # than a third of a head step).
    video_statistics: str = "projected"

    def __post_init__(self):
        self.streams = tuple(self.streams)
        names = [stream.name for stream in self.streams]
        if not names or names != sorted(set(names)):
            raise ValueError(f"heads need one or more streams, each once, in name order; not {names}")
        for stream in self.streams:
            shaped = {"grid": stream.grid, "sequence": stream.frame_seconds > 0, "vector": stream.dim}[stream.tokens]
            if not shaped:
                raise ValueError(f"stream {stream.name!r}: heads need its token shape, which {stream} lacks")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {self.fusion!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
        if self.video_statistics not in VIDEO_STATISTICS:
            raise ValueError(f"video_statistics must be one of {VIDEO_STATISTICS}, not {self.video_statistics!r}")

    def to_dict(self) -> dict:
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {**values, "streams": [stream.to_dict() for stream in self.streams]}

    @classmethod
    def from_dict(cls, values: dict) -> HeadConfig:
        # Runs saved before a field existed rebuild the model they trained: no statistics pooling before it existed,
        # the grid statistics of the raw tokens before they read the compressor's projection, and the two historic
        # streams, of which `modalities` chose, before streams were data.
        values = {"statistics_width": 0, "video_statistics": "tokens", "modalities": "av", **values}
        if "streams" in values:
            values["streams"] = [Stream.from_dict(stream) for stream in values["streams"]]
        elif "vision_dim" in values:
            values = historic_config(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown HeadConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def historic_config(values: dict) -> dict:
    """A config of before streams were data -> its streams: of the two historic ones, those its `modalities` read."""
    values = dict(values)
    sizes = {name: values.pop(name) for name in HISTORIC_FIELDS if name in values}
    vision = {"dim": sizes["vision_dim"], "grid": sizes["grid"], "num_tokens": sizes["num_tokens"],
              "image_size": sizes["image_size"]}
    audio = {"dim": sizes["audio_dim"], "frame_seconds": sizes.get("audio_frame_seconds", 0.08)}
    return {**values, "streams": historic(vision, audio, values["modalities"])}


class DferHeads(nn.Module):
    """Stage-2 heads. forward(batch) -> {"logits": (B, C)}, plus "logits_<stream>" for late fusion and
    "mask_<stream>" (B, T) bool, the steps of each stream the fusion read."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = c = config
        self.streams = tuple(stream.name for stream in c.streams)
        grids = [s for s in c.streams if s.tokens == "grid"]
        sequences = [s for s in c.streams if s.tokens == "sequence"]
        vectors = [s for s in c.streams if s.tokens == "vector"]
        # Modules are built, and streams read, grids first and vectors last: the order of the random draws
        # (initialisation, dropout) of the two historic streams, so a run of them trains as it always did, to the
        # last digit.
        self.order = (*grids, *sequences, *vectors)
        self.roi = nn.ModuleDict({s.name: RoiCompressor(s.dim, c.d_model, s.grid, s.image_size, c.roi_queries, c.heads,
                                                        c.dropout) for s in grids})
        self.temporal = nn.ModuleDict({s.name: TemporalEncoder(c.d_model, c.roi_queries, c.temporal_layers, c.heads,
                                                               c.dropout, c.frame_pool) for s in grids})
        self.pool = nn.ModuleDict({s.name: SegmentAttentionPool(s.dim, c.d_model, s.frame_seconds, c.heads)
                                   for s in sequences})
        self.proj = nn.ModuleDict({s.name: nn.Sequential(nn.LayerNorm(s.dim), nn.Linear(s.dim, c.d_model))
                                   for s in vectors})
        self.temporal.update({s.name: TemporalEncoder(c.d_model, 1, c.temporal_layers, c.heads, c.dropout, c.frame_pool)
                              for s in vectors})
        # Per-dimension input standardisation with training-set statistics (set by `set_input_statistics`, saved with
        # the weights). Frozen-encoder tokens carry large constant offsets per dimension and small clip-to-clip
        # differences; without this the heads barely move off chance on real tokens (RAVDESS speech, random
        # FastConformer: train loss 2.16 -> 2.07 in 15 epochs while a standardised linear probe reaches 44 %).
        for stream in c.streams:
            self.register_buffer(f"{stream.name}_mean", torch.zeros(stream.dim))
            self.register_buffer(f"{stream.name}_std", torch.ones(stream.dim))
        self.statistics_momentum = 0.0  # 0: the statistics stay fixed; stage 3 sets it (`track_input_statistics`)
        if c.statistics_width:
            # No dropout on a grid's per-token features: averaged over the T x N = 3136 patch tokens of a clip its
            # noise is about 0.6 % of a feature (sqrt(p / (1 - p) / 3136)), no regulariser, while drawing its mask was
            # a tenth of a base-size head step. A sequence's ~40 frames a clip keep it (5 % noise).
            self.statistics = nn.ModuleDict({s.name: StatisticsPool(self.statistics_dim(s), c.statistics_width,
                                                                    0.0 if s.tokens == "grid" else c.dropout)
                                             for s in self.order})
        self.crop = TemporalCrop(c.crop_min_keep)
        self.modality_dropout = ModalityDropout(c.modality_dropout)
        self.fusion = build_fusion(c.fusion, self.streams, c.d_model, c.num_classes, c.dropout, c.heads, c.cfc_units,
                                   2 * c.statistics_width)
        self.register_load_state_dict_pre_hook(rename_historic_modules)

    def statistics_dim(self, stream: Stream) -> int:
        """The width of the per-token features a stream's statistics pool: a grid's projection, or its tokens; a
        vector's projection."""
        projected = stream.tokens == "vector" or stream.tokens == "grid" and self.config.video_statistics == "projected"
        return self.config.d_model if projected else stream.dim

    def forward(self, batch: dict[str, torch.Tensor], hide: Features | None = None,
                keep_steps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """hide: stream -> (B,) bool, that stream masked for those samples as modality dropout masks it.
        keep_steps: (B, T) bool, steps outside it masked as a training crop masks the frames outside its window
        (grid step t, and the sequence tokens of segment t)."""
        frame_time = batch["frame_time"]  # (B, T) seconds
        window = self.crop(frame_time)  # (B, 2) seconds in training with cropping on, else None
        feats, masks, summary = {}, {}, {}
        for stream in self.order:
            read = {"grid": self.read_grid, "sequence": self.read_sequence, "vector": self.read_vector}[stream.tokens]
            feats[stream.name], masks[stream.name], summary[stream.name] = read(stream, batch, window, keep_steps)
        masks = hide_streams(self.modality_dropout(masks), hide or {})
        out = self.fusion(feats, masks, frame_time, summary)
        return {**out, **{f"mask_{stream}": mask for stream, mask in masks.items()}}  # the steps the fusion read

    def present(self, stream: Stream, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) bool: the clips that have the stream's input."""
        frame_time = batch["frame_time"]
        return batch.get(PRESENT[stream.input], torch.ones(len(frame_time), device=frame_time.device)).bool()

    def frame_mask(self, stream: Stream, batch: dict[str, torch.Tensor], window: torch.Tensor | None,
                   keep_steps: torch.Tensor | None) -> torch.Tensor:
        """(B, T) bool the frames a grid or vector stream reads: the clip has its input, the face was found on the
        frame (`found_key`), the frame is inside the training crop's `window` and among `keep_steps`."""
        mask = (self.present(stream, batch)[:, None] & batch[found_key(stream)].bool()
                & inside(batch["frame_time"], window))  # (B, T)
        return mask if keep_steps is None else mask & keep_steps.bool()

    def read_grid(self, stream: Stream, batch: dict[str, torch.Tensor], window: torch.Tensor | None,
                  keep_steps: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A grid stream -> its step features (B, T, d), step mask (B, T) bool and summary (B, 2W) or None."""
        frame_time, mask = batch["frame_time"], self.frame_mask(stream, batch, window, keep_steps)  # (B, T) each
        tokens = self.standardise(stream.name, batch, mask)  # (B, T, N, D)
        projected = self.roi[stream.name].project(tokens)  # (B, T, N, d)
        rois = self.roi[stream.name].compress(projected, batch["landmarks"], batch["face_found"].bool())  # (B, T, K, d)
        feats = self.temporal[stream.name](rois, frame_time, mask)  # (B, T, d)
        summary = None
        if self.config.statistics_width:
            pooled = projected if self.config.video_statistics == "projected" else tokens  # (B, T, N, d or D)
            N = pooled.shape[2]
            summary = self.statistics[stream.name](pooled.flatten(1, 2), mask.repeat_interleave(N, 1))  # (B, 2W)
        return feats, mask, summary

    def read_sequence(self, stream: Stream, batch: dict[str, torch.Tensor], window: torch.Tensor | None,
                      keep_steps: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A sequence stream -> its features pooled per step (B, T, d), step mask (B, T) bool and summary."""
        frame_time = batch["frame_time"]  # (B, T)
        tokens, length = batch[f"{stream.name}_tokens"], batch[f"{stream.name}_length"]  # (B, Ta, D), (B,)
        B, Ta = tokens.shape[:2]
        present = self.present(stream, batch)  # (B,)
        frames = torch.arange(Ta, device=tokens.device)  # (Ta,)
        centre = ((frames + 0.5) * stream.frame_seconds).expand(B, -1)  # (B, Ta) seconds
        valid = (frames < length[:, None]) & present[:, None] & inside(centre, window)  # (B, Ta)
        if keep_steps is not None:
            segment = segment_index(frame_time, Ta, stream.frame_seconds)  # (B, Ta)
            valid = valid & keep_steps.bool().gather(1, segment)  # (B, Ta)
        tokens = self.standardise(stream.name, batch, valid)  # (B, Ta, D)
        summary = self.statistics[stream.name](tokens, valid) if self.config.statistics_width else None  # (B, 2W)
        feats, segment_mask = self.pool[stream.name](tokens, valid, frame_time)  # (B, T, d), (B, T)
        return feats, present[:, None] & segment_mask, summary

    def read_vector(self, stream: Stream, batch: dict[str, torch.Tensor], window: torch.Tensor | None,
                    keep_steps: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A vector stream -> its step features (B, T, d), step mask (B, T) bool and summary (B, 2W) or None: each
        frame's token projected, then the frames in context, as a grid's ROI tokens are."""
        frame_time, mask = batch["frame_time"], self.frame_mask(stream, batch, window, keep_steps)  # (B, T) each
        projected = self.proj[stream.name](self.standardise(stream.name, batch, mask))  # (B, T, d)
        feats = self.temporal[stream.name](projected[:, :, None], frame_time, mask)  # (B, T, d)
        summary = self.statistics[stream.name](projected, mask) if self.config.statistics_width else None  # (B, 2W)
        return feats, mask, summary

    def roi_attention(self, batch: dict[str, torch.Tensor], stream: str | None = None) -> RoiAttention:
        """A grid stream's ROI attention on this batch's frames (the first grid stream by default), from the
        standardised tokens `forward` gives it."""
        stream = stream or next(iter(self.roi))
        tokens = self.standardise(stream, batch, batch["face_found"].bool())  # (B, T, N, D)
        return self.roi[stream].attention(tokens, batch["landmarks"], batch["face_found"])

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


def rename_historic_modules(module: DferHeads, state_dict: dict, prefix: str, *_) -> None:
    """A load_state_dict pre-hook: weights saved before streams were data load under their names now. Theirs are the
    keys under an old prefix that no stream's module of today holds (`roi.proj...`, not `roi.video.proj...`)."""
    today = tuple(f"{prefix}{group}.{stream}." for group in ("roi", "proj", "temporal", "pool")
                  for stream in module.streams)
    for key in [key for key in state_dict if key.startswith(prefix) and not key.startswith(today)]:
        for old, new in HISTORIC_MODULES.items():
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
