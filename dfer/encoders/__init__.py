"""Frozen (stage 1) and fine-tunable (stage 3) encoders, built from one spec string in one place (`build`).

Defaults: SigLIP2 for face crops, NeMo FastConformer for audio; beside them `ge2e` (a pretrained speaker LSTM a wheel
ships), `mel` (no encoder), `acoustic` (pitch, loudness and spectral shape measured with librosa), `egemaps`
(openSMILE's prosody descriptors; openSMILE's licence is for research use), `mediapipe` (face actions on whole
frames) and `hf:` transformers backbones, each an `Encoder` (`dfer.encoders.base`). Presets pair specs;
`describe()` gives what the cache fingerprint records. Importing this package loads neither torch, transformers nor
NeMo: `build`'s names are imported on first use (PEP 562), so the CLI checks a preset name before anything heavy
loads.
"""

from dfer.encoders.presets import AUDIO_ARCHS, PRESETS, VISION_ARCHS, EncoderPair, resolve_preset

_BUILD = {"SHAPE_FIELDS", "build_encoder", "rebuild_encoder", "seed_of", "stream_encoder"}


def __getattr__(name: str):
    if name in _BUILD:
        from dfer.encoders import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUDIO_ARCHS",
    "PRESETS",
    "SHAPE_FIELDS",
    "VISION_ARCHS",
    "EncoderPair",
    "build_encoder",
    "rebuild_encoder",
    "resolve_preset",
    "seed_of",
    "stream_encoder",
]
