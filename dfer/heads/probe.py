"""LinearProbe: the linear-probe baseline as a module that takes the heads' batch, so every tool that runs a run
folder (`dfer evaluate`, `dfer predict`, `dfer serve`) runs a probe run too.

    grid     `{s}_tokens` (B, T, N, D), frames with has_video & face_found --mean, std over the T*N tokens--> (B, 2D) -.
    vector   `{s}_tokens` (B, T, D), frames with has_video & `{s}_found` --mean, std over those frames--> (B, 2D) ----+
    sequence `{s}_tokens` (B, Ta, D), frames < `{s}_length` with has_audio --mean, std over those frames--> (B, 2D) -+->
    (B, F), streams in name order --standardise with the fitting clips' statistics--> Linear --> logits (B, C)

A clip without a stream (no video, no face found, no audio) has no statistics for it: its features for that stream
are 0 after standardisation, i.e. the fitting clips' mean, so the classifier's decision rests on the streams it has
(and the statistics are computed over the clips that have the stream, so a missing stream does not drag them).

An adapted probe (`dfer probe --adapt speaker`) standardises each stream's tokens as the heads do before pooling:
with the batch's adaptation statistics (`{stream}_mean` / `{stream}_std`, `dfer.adapt`) or, for a lone clip, with
the training set's token statistics, kept as buffers. A per-dimension affine map of the tokens maps their mean and
std the same way, so the pooled features of raw tokens are standardised after pooling (`adapt_features`), exactly.

The Linear layer holds a fitted scikit-learn LogisticRegression (`set_classifier`) and the statistics are buffers
(`set_statistics`), both saved with the weights, so a probe run loads without pickle. The fit is computed on
`pooled` and `standardise` of this very module (`dfer.train.probe`), so fitting and inference cannot disagree.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dfer.heads.fusion import masked_mean
from dfer.streams import PRESENT, Stream, found_key, historic

ABSENT = -1e4  # the logit of a class no fitting clip had: scikit-learn never predicts it, so its probability is 0


def mean_and_std(tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """tokens (B, S, D), valid (B, S) bool -> (B, 2D): per-dimension mean and (population) std of the valid tokens."""
    mean = masked_mean(tokens, valid)  # (B, D), zeros without valid tokens
    var = masked_mean((tokens - mean[:, None]) ** 2, valid)  # (B, D)
    return torch.cat([mean, var.sqrt()], -1)  # (B, 2D)


def adapt_features(pooled: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A stream's pooled [mean, std] of raw tokens (B, 2D) -> those of the tokens standardised with `mean` / `std`
    ((D,) or (B, D)): (mean - m) / s and std / s."""
    D = pooled.shape[-1] // 2
    return torch.cat([(pooled[..., :D] - mean) / std, pooled[..., D:] / std], -1)  # (B, 2D)


class LinearProbe(nn.Module):
    """forward(batch) -> {"logits": (B, C)} on the batch dict the heads take (`dfer.inference.batch.collate`)."""

    def __init__(self, streams: tuple[Stream, ...], num_classes: int, modalities: str = "av", adapt: bool = False):
        super().__init__()
        # Pooling reads each token alike: a stream's name, input and width are all it needs, and all it records.
        streams = [Stream(stream.name, stream.input, stream.dim) for stream in streams]
        # the constructor's arguments: a run's config.json "heads", as HeadConfig is for DferHeads (runs saved before
        # adaptation have no "adapt")
        self.config = {"streams": [stream.to_dict() for stream in streams], "modalities": modalities,
                       "num_classes": num_classes, **({"adapt": True} if adapt else {})}
        self.inputs = {stream.name: stream for stream in streams}
        self.streams = tuple(self.inputs)
        self.adapts = adapt
        self.widths = {stream.name: 2 * stream.dim for stream in streams}  # [mean, std] per stream
        if adapt:  # the training set's token statistics: a lone clip's standardisation
            for stream in streams:
                self.register_buffer(f"{stream.name}_mean", torch.zeros(stream.dim))
                self.register_buffer(f"{stream.name}_std", torch.ones(stream.dim))
        width = sum(self.widths.values())  # F
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        self.linear = nn.Linear(width, num_classes)

    @classmethod
    def from_config(cls, config: dict) -> LinearProbe:
        """A run's config.json "heads": of today, or of a probe saved before streams were data, whose two historic
        streams are known by their widths alone."""
        config = dict(config)
        if "streams" in config:
            streams = tuple(Stream.from_dict(stream) for stream in config.pop("streams"))
        else:
            streams = historic({"dim": config.pop("vision_dim")}, {"dim": config.pop("audio_dim")}, config["modalities"])
        return cls(streams, **config)

    def pooled(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each stream's [mean, std] of the clip's valid tokens, streams in name order -> features (B, F) and
        present (B, F) bool: False on every feature of a stream the clip lacks."""
        features, present = [], []
        for name, stream in self.inputs.items():
            tokens = batch[f"{name}_tokens"]
            if stream.tokens in ("grid", "vector"):  # (B, T, N, D) or (B, T, D)
                valid = batch[PRESENT[stream.input]].bool()[:, None] & batch[found_key(stream)].bool()  # (B, T)
                if stream.tokens == "grid":
                    valid = valid.repeat_interleave(tokens.shape[2], 1)  # (B, T*N)
                    tokens = tokens.flatten(1, 2)  # (B, T*N, D)
            else:  # (B, Ta, D)
                inside = torch.arange(tokens.shape[1], device=tokens.device) < batch[f"{name}_length"][:, None]
                valid = inside & batch[PRESENT[stream.input]].bool()[:, None]  # (B, Ta)
            pooled = mean_and_std(tokens.float(), valid)  # (B, 2D)
            if self.adapts:
                own = f"{name}_mean" in batch
                pooled = adapt_features(pooled, batch[f"{name}_mean"] if own else getattr(self, f"{name}_mean"),
                                        batch[f"{name}_std"] if own else getattr(self, f"{name}_std"))
            features.append(pooled)
            present.append(valid.any(1, keepdim=True).expand(-1, self.widths[name]))  # (B, 2D)
        return torch.cat(features, -1), torch.cat(present, -1)  # (B, F), (B, F)

    def input_statistics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """As `DferHeads.input_statistics`: stream -> the training set's token (mean (D,), std (D,)); adapted only."""
        return {stream: (getattr(self, f"{stream}_mean").double().numpy(), getattr(self, f"{stream}_std").double().numpy())
                for stream in self.streams} if self.adapts else {}

    @torch.no_grad()
    def set_input_statistics(self, stream: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        getattr(self, f"{stream}_mean").copy_(mean)
        getattr(self, f"{stream}_std").copy_(std)

    def standardise(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, F) -> (B, F) with the buffers' statistics; 0 (the fitting clips' mean) where the stream is missing."""
        return torch.where(present, (features - self.feature_mean) / self.feature_std, 0.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.linear(self.standardise(*self.pooled(batch)))}  # (B, C)

    @torch.no_grad()
    def set_statistics(self, features: torch.Tensor, present: torch.Tensor) -> None:
        """Per-feature mean and std of the fitting clips' `pooled` features (n, F), over the clips that have the
        stream. A feature constant over them gets std 1, as scikit-learn's StandardScaler does: it then stays 0."""
        weight = present.double()  # (n, F)
        count = weight.sum(0).clamp(min=1)  # (F,)
        mean = (features.double() * weight).sum(0) / count  # (F,)
        std = (((features.double() - mean) ** 2 * weight).sum(0) / count).sqrt()  # (F,)
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > 1e-6, std, 1.0))

    @torch.no_grad()
    def set_classifier(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> None:
        """A fitted LogisticRegression's coef_ (K, F) and intercept_ (K,) over its classes_ (K,), indices into the
        C classes. Two classes give scikit-learn's binary model, K = 1 with p(classes_[1]) = sigmoid(z): the same
        as a softmax over logits (0, z). A class outside classes_ (no fitting clip had it) gets logit ABSENT."""
        coef, intercept = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
        if len(classes) == 2 and len(coef) == 1:
            coef, intercept = np.concatenate([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        rows = torch.as_tensor(np.asarray(classes, np.int64))  # (K,)
        self.linear.weight.zero_()
        self.linear.bias.fill_(ABSENT)
        self.linear.weight[rows] = torch.as_tensor(coef, dtype=self.linear.weight.dtype)  # (K, F)
        self.linear.bias[rows] = torch.as_tensor(intercept, dtype=self.linear.bias.dtype)  # (K,)
