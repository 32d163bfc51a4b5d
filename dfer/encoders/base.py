"""`Encoder`: what every encoder family provides, declared once, with the code every family shares.

An encoder is a module that turns one input into tokens. Three kinds exist, each a base class that fixes the input,
the token shape and the fields that describe that shape:

- `ImageEncoder` (kind "vision"): face crops (B, 3, S, S), uint8 0..255 or float 0..1 -> tokens (B, N, D), a grid
  per frame; shape fields dim, image_size, num_tokens, grid.
- `WaveformEncoder` (kind "audio"): waveform (B, S) at `sample_rate` and valid lengths (B,) -> tokens (B, T, D) and
  their lengths (B,), a sequence in time; shape fields dim, sample_rate, frame_seconds.
- `FrameEncoder` (kind "actions"): one clip's sampled frames whole (T, H, W, 3) and the tracked face's box on each
  -> one token per frame (T, D), the frames where it read that face, and the 3-D points it located on each; shape
  fields dim, points.

A family subclasses one of them and provides:
- `spec` and `revision` (attributes): the spec it was built from and the identity of its weights;
- the shape fields (attributes, or class attributes where they are fixed);
- `forward`, `parts()` (how stage 3 trains it) and `save(path)` (a folder the builder reads back), both refused by
  `Weightless` for a family with no weights;
- `family_fields()`, only where the fingerprint records more about the family (hf: and faceapi say which they are,
  ge2e and hf: audio their layer, egemaps its feature set and descriptor names);
- `crop_margin` (vision), only where its network was trained on other crops than dfer's default;
- `lora_targets()`, only where not every linear of its blocks should get an adapter.

`describe()` is written here once: the record a store's fingerprint keeps, which saved stores and runs compare key
by key (`dfer.store.fingerprint`), so its keys and their order are part of every family's format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from dfer.encoders.presets import FACE_CROP_MARGIN


@dataclass
class Parts:
    """An encoder as stage 3 trains it: a stem, a stack of L blocks and sometimes a final norm, by family:

        SigLIP2:        embeddings (patches + positions) | encoder.layers[0..L-1]        | post_layernorm
        FastConformer:  pre_encode (conv subsampling)    | layers[0..L-1]                | out_proj (absent in presets)
        ge2e:           none (the mel front end)         | layers[0..N-1], an LSTM each  | none
        faceapi:        none (dense0 reads the pixels)   | blocks[0..3], a dense block each | none
        hf: family:     the rest of the model            | the transformer blocks        | the norm after them, if any

    `last:N` trains the last N blocks and the final norm; layer-wise learning rates decay from the final norm down to
    the stem. `beside` holds modules that make no token (faceapi's own classifier), which never train."""

    root: nn.Module  # the module LoRA adapters are injected into
    stem: list[nn.Module]
    blocks: list[nn.Module]
    final: list[nn.Module]
    beside: list[nn.Module] = field(default_factory=list)


class Encoder(nn.Module, ABC):
    """One input -> tokens (see the module docstring); built by `dfer.encoders.build`, in eval mode."""

    kind: ClassVar[str]  # "vision" or "audio": the stream's input and the fingerprint entry it fills
    shape_fields: ClassVar[tuple[str, ...]]  # the fields that fix the shape of its tokens, which heads are built for
    spec: str
    revision: str | None
    dim: int

    def describe(self) -> dict:
        """What the cache fingerprint records about this encoder: spec, revision, shape fields, family fields."""
        return {"id": self.spec, "revision": self.revision, **{name: getattr(self, name) for name in self.shape_fields},
                **self.family_fields()}

    def family_fields(self) -> dict:
        """What the fingerprint records beyond the spec and the token shapes: nothing, unless a family says."""
        return {}

    @abstractmethod
    def parts(self) -> Parts:
        """Its stem, blocks and final norm; ValueError for a family with nothing to fine-tune."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write a folder that `build_encoder(kind, str(path))` reads back as this encoder (after stage 3)."""

    def lora_targets(self) -> list[str]:
        """Module names of the linears LoRA adapts (peft's `target_modules`): every linear in the blocks.

        Read from the modules rather than listed per family, because transformers renames them between versions
        (5.x calls ViT's and DINOv2's `query` / `key` / `value` `q_proj` / `k_proj` / `v_proj`)."""
        names = sorted({name.rpartition(".")[2] for block in self.parts().blocks
                        for name, module in block.named_modules() if isinstance(module, nn.Linear)})
        if not names:
            raise ValueError(f"lora adapters are for attention and MLP linears; the blocks of {self.spec} have none: "
                             "use --unfreeze all or last:N")
        return names


class Weightless:
    """A family with no torch weights: its tokens are computed, not learned (`mel`, `egemaps`), or a vendored model
    another runtime runs (`mediapipe`, a TFLite bundle): nothing for stage 3 to train or save, and its spec alone
    rebuilds it. Listed before its kind's base (`class MelEncoder(Weightless, WaveformEncoder)`)."""

    spec: str
    kind: str

    def parts(self) -> Parts:
        raise ValueError(f"the {self.spec} {self.kind} family has no weights to fine-tune: fine-tune the other "
                         "stream only, or train the heads with `dfer train`")

    def save(self, path: str | Path) -> None:
        raise ValueError(f"the {self.spec} {self.kind} family has no weights to save: its spec `{self.spec}` "
                         "rebuilds it")


class ImageEncoder(Encoder):
    """Face crops (B, 3, S, S) -> tokens (B, N, D), N = grid^2 in row-major order, S = image_size."""

    kind = "vision"
    shape_fields = ("dim", "image_size", "num_tokens", "grid")
    crop_margin: float = FACE_CROP_MARGIN  # context around the face in the crops it is given, per side
    image_size: int
    grid: int
    num_tokens: int

    def check_size(self, images: torch.Tensor) -> None:
        """Refuses crops of another size: resizing here would read a differently framed face without a word."""
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"expected {self.image_size}x{self.image_size} images, got {tuple(images.shape)}")

    def unit_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), uint8 0..255 or float 0..1 -> float32 (B, 3, S, S) in 0..1, for a model's own
        normalisation."""
        self.check_size(images)
        pixels = images.float()
        return pixels / 255.0 if images.dtype == torch.uint8 else pixels


class WaveformEncoder(Encoder):
    """Waveform (B, S) at `sample_rate` with valid lengths (B,) -> tokens (B, T, D) and their lengths (B,); token j
    covers [j, j + 1) x frame_seconds of the clip."""

    kind = "audio"
    shape_fields = ("dim", "sample_rate", "frame_seconds")
    sample_rate: int
    frame_seconds: float


def clip_by_clip(waveform: torch.Tensor, length: torch.Tensor,
                 measure: Callable[[np.ndarray], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """waveform (B, S), length (B,) -> `measure` of each clip's valid samples, zero-padded to (B, F, D), and each
    clip's F_b (B,), on the waveform's device. For families that measure on the CPU one clip at a time (`egemaps`,
    `acoustic`), so a batch's padding never reaches a clip's tokens."""
    waves = waveform.detach().float().cpu().numpy()
    clips = [measure(wave[: int(n)]) for wave, n in zip(waves, length.tolist())]  # B x (F_b, D)
    frames = torch.tensor([len(clip) for clip in clips])
    tokens = torch.zeros(len(clips), int(frames.max()), clips[0].shape[1])  # (B, F, D)
    for row, clip in zip(tokens, clips):
        row[: len(clip)] = clip
    return tokens.to(waveform.device), frames.to(waveform.device)


@dataclass
class FrameTokens:
    """What a FrameEncoder read on one clip's T frames."""

    tokens: np.ndarray  # (T, D) float32, zeros where not found
    found: np.ndarray  # (T,) bool: the tracked face was read on this frame
    points: np.ndarray  # (T, P, 3) float32 the 3-D points located on it, NaN where not found


class FrameEncoder(Encoder):
    """One clip's frames whole (T, H, W, 3) uint8 RGB and the tracked face's box on each, (T, 4) x1, y1, x2, y2 in
    the same pixels (None: no track, read the largest face) -> FrameTokens. Clip by clip: clips' frames differ in
    size, and such a model finds the face again on the whole frame (whose geometry its outputs depend on)."""

    kind = "actions"
    shape_fields = ("dim", "points")
    points: int  # P, the 3-D points per frame kept beside the tokens (0: none)
