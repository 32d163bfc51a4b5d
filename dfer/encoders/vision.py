"""The visual encoder: a SigLIP2 vision tower that turns square face crops into patch tokens.

Stage 1 runs it frozen on every sampled frame; stage 3 fine-tunes it, so `forward` stays differentiable and
freezing and `inference_mode` are the caller's job (`load_vision` returns it in eval mode). It returns the
final (post-layernorm) patch tokens, never the pooled embedding: the ROI compressor needs the spatial grid,
so the attention-pooling head is not even built.

transformers is imported inside the builders, not at module import, so `import dfer.encoders` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from dfer.encoders.base import ImageEncoder, Parts
from dfer.encoders.hf_common import load_weights
from dfer.encoders.presets import VISION_ARCHS, hub_commit, local_revision, random_arch

if TYPE_CHECKING:
    from transformers import SiglipVisionConfig, SiglipVisionModel

# SigLIP normalisation (SiglipImageProcessor defaults; the google/siglip2-* preprocessor configs keep them):
# pixels in 0..1 map to -1..1.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5


class VisionEncoder(ImageEncoder):
    """SigLIP2 vision tower (B, 3, S, S) images -> (B, N, D) patch tokens, N = (S / patch)^2."""

    def __init__(self, model: SiglipVisionModel, spec: str, revision: str | None):
        super().__init__()
        self.model = model  # kept whole so `save_pretrained` and gradient checkpointing work in stage 3
        self.spec = spec
        self.revision = revision
        config = model.config
        self.image_size: int = config.image_size
        self.patch_size: int = config.patch_size
        self.grid: int = self.image_size // self.patch_size  # patches per side
        self.num_tokens: int = self.grid**2
        self.dim: int = config.hidden_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), uint8 0..255 or float 0..1, S = image_size -> tokens (B, N, D)."""
        pixels = ((self.unit_pixels(images) - PIXEL_MEAN) / PIXEL_STD).to(self.model.dtype)  # (B, 3, S, S) in -1..1
        return self.model(pixel_values=pixels).last_hidden_state  # (B, N, D)

    def parts(self) -> Parts:
        inner = getattr(self.model, "vision_model", self.model)  # transformers < 5 nests the tower once more
        return Parts(self.model, [inner.embeddings], list(inner.encoder.layers), [inner.post_layernorm])

    def save(self, path: str | Path) -> None:
        """Write a Hugging Face model folder that `load_vision(path)` reads back (e.g. after fine-tuning)."""
        self.model.save_pretrained(str(path))


def load_vision(spec: str, seed: int = 0, device: str | torch.device = "cpu", meta: bool = False) -> VisionEncoder:
    """Build the vision encoder a spec names: `random:<arch>`, a hub id or a local model folder.

    Returned in eval mode with weights in float32; GPU speed comes from the caller's autocast. `meta=True`
    builds on the meta device from the configuration alone (for parameter counts); for a pretrained spec that
    still needs its config.
    """
    from transformers import SiglipVisionConfig, SiglipVisionModel

    arch = random_arch(spec, VISION_ARCHS, "vision")
    if arch is not None:
        config = SiglipVisionConfig(**VISION_ARCHS[arch], vision_use_head=False)
        revision = f"seed={seed}"
    else:
        # A hub SigLIP2 config is a SiglipConfig; SiglipVisionConfig.from_pretrained takes its vision_config.
        config = SiglipVisionConfig.from_pretrained(spec, vision_use_head=False)
        revision = _pretrained_revision(spec)

    if meta:
        with torch.device("meta"):
            return VisionEncoder(SiglipVisionModel(config), spec, revision)
    if arch is not None:
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(seed)
            model = SiglipVisionModel(config)  # built on the CPU so a seed gives the same weights on any device
    else:
        model = load_weights(SiglipVisionModel, spec, config)  # the text tower and pooling head are dropped
    return VisionEncoder(model.to(device), spec, revision).eval()


def _pretrained_revision(spec: str) -> str | None:
    """Local folder: path, size and mtime; hub id: the commit of the cached config (None if not cached)."""
    if Path(spec).exists():
        return local_revision(spec)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec, "config.json")
    return hub_commit(cached) if isinstance(cached, str) else None
