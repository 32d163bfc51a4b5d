"""Frozen (stage 1) and fine-tunable (stage 3) encoders: SigLIP2 for face crops, NeMo FastConformer for audio.

Both are named by a spec string (hub id, local path or `random:<arch>`) and paired by named presets;
`describe()` gives what the cache fingerprint records. Importing this package loads neither transformers nor
NeMo: they are imported when an encoder is built.
"""

from dfer.encoders.audio import AudioEncoder, load_audio
from dfer.encoders.presets import AUDIO_ARCHS, PRESETS, VISION_ARCHS, EncoderPair, resolve_preset
from dfer.encoders.vision import VisionEncoder, load_vision

__all__ = [
    "AUDIO_ARCHS",
    "PRESETS",
    "VISION_ARCHS",
    "AudioEncoder",
    "EncoderPair",
    "VisionEncoder",
    "load_audio",
    "load_vision",
    "resolve_preset",
]
