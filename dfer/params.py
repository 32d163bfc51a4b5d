"""`dfer params`: parameter counts per module for a preset, frozen vs trainable, without allocating weights.

Encoders are built on the meta device, so counting the 400M-parameter SigLIP2 so400m costs no memory; the heads
are small and built normally. Stage 2 trains only the heads; stage 3 unfreezes the encoders too.
"""

from __future__ import annotations

from dfer.encoders import build_encoder, resolve_preset
from dfer.heads import DferHeads, HeadConfig
from dfer.streams import historic

BUDGET = 800_000_000  # the project's total-parameter budget (fine-tunable on a 12 GB GPU)
# Pretrained presets are counted on their registered architectures: the same modules, so the same counts,
# and no hub access needed to read a config.
SAME_ARCHITECTURE = {"base": "base-random", "large": "large-random"}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_table(preset: str, fusion: str = "liquid", modalities: str = "av", num_classes: int = 8,
                    heads: dict | None = None, vision: str | None = None, audio: str | None = None) -> dict:
    """`vision` / `audio` specs replace the preset's, as in `dfer extract`."""
    preset_vision, preset_audio = resolve_preset(SAME_ARCHITECTURE.get(preset, preset))
    vision_spec, audio_spec = vision or preset_vision, audio or preset_audio
    vision = build_encoder("vision", vision_spec, meta=True)
    audio = build_encoder("audio", audio_spec, meta=True)
    model = DferHeads(HeadConfig(streams=historic(vision.describe(), audio.describe(), modalities),
                                 num_classes=num_classes, fusion=fusion, modalities=modalities, **(heads or {})))
    modules = {f"vision encoder ({vision_spec})": (count(vision), False),
               f"audio encoder ({audio_spec})": (count(audio), False)}
    modules.update({f"heads.{name}": (count(child), True) for name, child in model.named_children() if count(child)})
    total = sum(n for n, _ in modules.values())
    return {
        "preset": preset, "fusion": fusion, "modalities": modalities,
        "modules": {name: {"parameters": n, "trainable": trainable} for name, (n, trainable) in modules.items()},
        "trainable": sum(n for n, trainable in modules.values() if trainable),
        "frozen": sum(n for n, trainable in modules.values() if not trainable),
        "total": total, "budget": BUDGET, "within_budget": total < BUDGET,
    }
