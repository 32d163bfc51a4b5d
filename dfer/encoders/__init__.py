"""Frozen (stage 1) and fine-tunable (stage 3) encoders, built from one spec string in one place (`build`).

Defaults: SigLIP2 for face crops, NeMo FastConformer for audio; beside them `ge2e` (a pretrained speaker LSTM a
wheel ships), `mel` (no encoder) and `hf:` transformers backbones. Presets pair specs; `describe()` gives what the
cache fingerprint records. Importing this package loads neither transformers nor NeMo: they are imported when an
encoder is built.
"""

from dfer.encoders.build import SHAPE_FIELDS, build_encoder, extraction_seed, rebuild_encoder, seed_of
from dfer.encoders.presets import AUDIO_ARCHS, PRESETS, VISION_ARCHS, EncoderPair, resolve_preset

__all__ = [
    "AUDIO_ARCHS",
    "PRESETS",
    "SHAPE_FIELDS",
    "VISION_ARCHS",
    "EncoderPair",
    "build_encoder",
    "extraction_seed",
    "rebuild_encoder",
    "resolve_preset",
    "seed_of",
]
