"""transformers vision backbones as dfer visual encoders: CLIP's vision tower, DINOv2 (with or without registers)
and ViT, square face crops -> patch tokens.

Spec `hf:<hub id or folder>`. The class comes from config.json's `model_type`. The tokens are the patch tokens of
`last_hidden_state`; the class token and DINOv2's register tokens are dropped (they precede the patches in all three
families), so N = grid^2 tokens stay in grid order for the ROI compressor. For DINOv2 and ViT `last_hidden_state` has
the final LayerNorm applied. CLIP's `post_layernorm` is trained on the class token only (it feeds the image
projection), so CLIP's patch tokens are taken as its last block leaves them, as HF's `last_hidden_state` does;
their scale is for the heads' input statistics to absorb.

Pixels are normalised with the mean and std of the checkpoint's saved image processor config when it has one, else
with those its family was trained with: CLIP's own statistics (OPENAI_CLIP_MEAN/STD), ImageNet's for DINOv2
(IMAGENET_DEFAULT_MEAN/STD, as the facebook/dinov2-* preprocessor configs hold), 0.5 / 0.5 for ViT (ViTImageProcessor's
IMAGENET_STANDARD). The input size is the one that processor crops (or resizes) to, else the model config's: DINOv2's
configs say 518 px but its processor feeds 224 px crops, 256 instead of 1369 tokens; its position embeddings, and
CLIP's and ViT's when asked, are interpolated to the grid.

Like `dfer.encoders.vision`, `forward` stays differentiable for stage 3; the loader returns eval mode, float32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dfer.encoders.base import ImageEncoder, Parts
from dfer.encoders.hf_common import (
    VISION_MODELS,
    load_weights,
    pretrained_revision,
    read_json,
    write_marker,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

# model_type -> the transformers.image_utils constants its processor normalises with when no config is saved.
_FAMILY_NORMALISATION = {
    "clip": "OPENAI_CLIP",
    "clip_vision_model": "OPENAI_CLIP",
    "dinov2": "IMAGENET_DEFAULT",
    "dinov2_with_registers": "IMAGENET_DEFAULT",
    "vit": "IMAGENET_STANDARD",
}
_PROCESSOR_CONFIG = "preprocessor_config.json"
# Where the block list lives; transformers moves it between versions (5.x: ViT's `layers`, DINOv2's `encoder.layer`,
# CLIP's `encoder.layers`; 4.x nests CLIP's tower in `vision_model`).
_BLOCK_PATHS = ("layers", "encoder.layers", "encoder.layer", "vision_model.encoder.layers")


class HfVisionEncoder(ImageEncoder):
    """transformers vision backbone: (B, 3, S, S) images -> (B, N, D) patch tokens, N = (S / patch)^2.

    `parts()`: the transformer blocks in order and the norm after the last one that the tokens pass through (none
    for CLIP); everything else is the stem. `model` is the transformers model, for `save_pretrained` and gradient
    checkpointing.
    """

    def __init__(self, model: PreTrainedModel, image_size: int, mean: list[float] | float, std: list[float] | float,
                 processor_config: dict | None, spec: str, revision: str | None):
        super().__init__()
        self.model = model
        self.processor_config = processor_config  # saved back by `save`, so a saved folder normalises alike
        self.spec = spec
        self.revision = revision
        config = model.config
        self.model_type: str = config.model_type
        self.image_size = image_size
        self.patch_size: int = config.patch_size
        self.grid: int = self.image_size // self.patch_size  # patches per side
        self.num_tokens: int = self.grid**2
        self.dim: int = config.hidden_size
        # (3, 1, 1), or (1, 1, 1) for a config that gives one value for all channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1), persistent=False)
        # DINOv2 always interpolates its position embeddings; CLIP and ViT do it when told to.
        resized = image_size != config.image_size and not self.model_type.startswith("dinov2")
        self.forward_kwargs = {"interpolate_pos_encoding": True} if resized else {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), uint8 0..255 or float 0..1, S = image_size -> tokens (B, N, D)."""
        pixels = ((self.unit_pixels(images) - self.mean) / self.std).to(self.model.dtype)  # (B, 3, S, S)
        hidden = self.model(pixel_values=pixels, **self.forward_kwargs).last_hidden_state  # (B, 1 + R + N, D)
        return hidden[:, -self.num_tokens:]  # (B, N, D): class and register tokens come first

    def parts(self) -> Parts:
        """The transformer blocks, first to last, and the norm after the last that the patch tokens pass through
        (DINOv2, ViT; none for CLIP)."""
        final = [] if self.model_type.startswith("clip") else [self.model.layernorm]
        return Parts(self.model, [], self._blocks(), final)

    def _blocks(self) -> list[nn.Module]:
        for path in _BLOCK_PATHS:
            try:
                return list(self.model.get_submodule(path))
            except AttributeError:
                continue
        raise AttributeError(f"no transformer blocks at {', '.join(_BLOCK_PATHS)} in {type(self.model).__name__}")

    def family_fields(self) -> dict:
        return {"family": "hf"}

    def save(self, path: str | Path) -> None:
        """Write a Hugging Face model folder (model, image processor config, `dfer_encoder.json`) that
        `load_hf_vision(path)` reads back as this encoder, e.g. after fine-tuning."""
        self.model.save_pretrained(str(path))
        if self.processor_config is not None:
            (Path(path) / _PROCESSOR_CONFIG).write_text(json.dumps(self.processor_config, indent=2) + "\n")
        write_marker(path, "vision")


def load_hf_vision(source: str, device: str | torch.device = "cpu", meta: bool = False,
                   spec: str | None = None) -> HfVisionEncoder:
    """Build the visual encoder of a transformers checkpoint (hub id or local folder).

    `spec` defaults to `hf:<source>`. Returned in eval mode with float32 weights; `meta=True` builds on the meta
    device from the configuration alone (for parameter counts).
    """
    config = _vision_config(source)
    import transformers

    model_class = getattr(transformers, VISION_MODELS[config.model_type])
    kwargs = {"add_pooling_layer": False} if config.model_type == "vit" else {}  # the pooler reads the class token
    processor_config = read_json(source, _PROCESSOR_CONFIG)
    image_size = _processor_size(processor_config) or config.image_size
    if image_size % config.patch_size:
        raise ValueError(f"{source}: input size {image_size} is not a whole number of {config.patch_size} px patches")
    mean, std = _normalisation(config.model_type, processor_config)
    spec = spec or f"hf:{source}"
    revision = pretrained_revision(source)
    if meta:
        with torch.device("meta"):
            model = model_class(config, **kwargs)
        return HfVisionEncoder(model, image_size, mean, std, processor_config, spec, revision)
    model = load_weights(model_class, source, config, **kwargs)
    return HfVisionEncoder(model.to(device), image_size, mean, std, processor_config, spec, revision).eval()


def _vision_config(source: str) -> PretrainedConfig:
    """The vision tower's configuration (a full CLIP checkpoint's config is a CLIPConfig holding it)."""
    from transformers import AutoConfig, CLIPVisionConfig

    config = AutoConfig.from_pretrained(source)
    if config.model_type not in VISION_MODELS:
        raise ValueError(f"{source} is a {config.model_type!r} model; hf vision encoders: {', '.join(VISION_MODELS)}")
    return CLIPVisionConfig.from_pretrained(source) if config.model_type == "clip" else config


def _processor_size(processor_config: dict | None) -> int | None:
    """The side of the square an image processor config feeds the model: its crop if it crops, else its resize."""
    if processor_config is None:
        return None
    size = processor_config.get("crop_size") if processor_config.get("do_center_crop") else None
    size = size or processor_config.get("size")
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge")
    return size if isinstance(size, int) else None


def _normalisation(model_type: str, processor_config: dict | None) -> tuple[list[float] | float, list[float] | float]:
    """(mean, std) per RGB channel (or one for all) of pixels in 0..1."""
    if processor_config is not None and "image_mean" in processor_config:
        return processor_config["image_mean"], processor_config["image_std"]
    from transformers import image_utils

    name = _FAMILY_NORMALISATION[model_type]
    return list(getattr(image_utils, f"{name}_MEAN")), list(getattr(image_utils, f"{name}_STD"))
