"""Named encoder configurations: the architectures `random:<arch>` builds and the presets that pair them.

timm-style: the tiny and small variants sit beside the real sizes and build the same classes, so tests and
the CPU demo run the real code path at toy size, and `base-random` / `large-random` give real-size compute
for benchmarks without downloading anything.

An encoder spec is one string:
- `random:<arch>`: the real class, randomly initialised from an architecture below, seeded;
- anything else: pretrained, a hub id or a local path (vision: a Hugging Face model folder; audio: a `.nemo`
  file or a folder written by `AudioEncoder.save`).

Pure Python on purpose: importing this module costs nothing, so the CLI can list presets instantly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

RANDOM_PREFIX = "random:"
# Context around the detected face, per side, as a fraction of its box's longer side (crop side 1.5x the face): what
# the SigLIP2 and hf: vision families crop. A family trained on other crops says so itself (`faceapi`: 0.05).
FACE_CROP_MARGIN = 0.25

# SiglipVisionConfig arguments. The real sizes are those of the fixed-resolution SigLIP2 checkpoints
# (config model_type "siglip", vision tower only).
VISION_ARCHS: dict[str, dict] = {
    # 64 px / patch 16 = a 4x4 grid of 16 tokens: the smallest grid on which landmark ROIs still differ.
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 patch_size=16, image_size=64),
    # ViT-Tiny width on 112 px faces (7x7 = 49 tokens): trains on a CPU in minutes.
    "small": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
                  patch_size=16, image_size=112),
    "siglip2-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                         patch_size=16, image_size=224),
    "siglip2-so400m": dict(hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304,
                           patch_size=14, image_size=224),
}

# NeMo AudioToMelSpectrogramPreprocessor config of the FastConformer family (16 kHz, 80 mels, 25 ms window,
# 10 ms hop), as NeMo trains it; `dfer.encoders.audio` switches dither off when it builds one.
FASTCONFORMER_PREPROCESSOR: dict = {
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000,
    "normalize": "per_feature",
    "window_size": 0.025,
    "window_stride": 0.01,
    "window": "hann",
    "features": 80,
    "n_fft": 512,
    "frame_splicing": 1,
    "dither": 1e-5,
    "pad_to": 0,
}

# NeMo ConformerEncoder config shared by every FastConformer size: 8x depthwise-striding subsampling
# (10 ms mel hop x 8 = one token per 80 ms), kernel-9 convolutions, relative positions; as in NeMo's
# examples/asr/conf/fastconformer/hybrid_transducer_ctc/fastconformer_hybrid_transducer_ctc_bpe.yaml.
_FASTCONFORMER_ENCODER: dict = {
    "_target_": "nemo.collections.asr.modules.ConformerEncoder",
    "feat_in": 80,
    "feat_out": -1,
    "subsampling": "dw_striding",
    "subsampling_factor": 8,
    "subsampling_conv_channels": 256,
    "ff_expansion_factor": 4,
    "self_attention_model": "rel_pos",
    "att_context_size": [-1, -1],
    "att_context_style": "regular",
    "xscaling": True,
    "pos_emb_max_len": 5000,
    "conv_kernel_size": 9,
    "conv_norm_type": "batch_norm",
    "dropout": 0.1,
    "dropout_pre_encoder": 0.1,
    "dropout_emb": 0.0,
    "dropout_att": 0.1,
}

AUDIO_ARCHS: dict[str, dict] = {
    "tiny": {**_FASTCONFORMER_ENCODER, "n_layers": 2, "d_model": 32, "n_heads": 2,
             "subsampling_conv_channels": 32, "ff_expansion_factor": 2},
    # FastConformer-small width and heads (d_model 176, 4 heads) at 6 of its 16 layers, to train on a CPU.
    "small": {**_FASTCONFORMER_ENCODER, "n_layers": 6, "d_model": 176, "n_heads": 4},
    "fastconformer-large": {**_FASTCONFORMER_ENCODER, "n_layers": 17, "d_model": 512, "n_heads": 8},
}


class EncoderPair(NamedTuple):
    """A preset: the specs of the two historic streams, `video` (a vision encoder) and `audio` (`dfer.streams`)."""

    vision: str
    audio: str

    def streams(self, vision: str | None = None, audio: str | None = None) -> dict[str, tuple[str, str]]:
        """The preset as a list of streams, stream -> (encoder kind, spec), with `--vision` / `--audio` in place of
        its own specs where given."""
        return {"audio": ("audio", audio or self.audio), "video": ("vision", vision or self.vision)}


PRESETS: dict[str, EncoderPair] = {
    "tiny": EncoderPair("random:tiny", "random:tiny"),
    "lite": EncoderPair("faceapi", "ge2e"),
    "small": EncoderPair("random:small", "random:small"),
    "base": EncoderPair("google/siglip2-base-patch16-224", "nvidia/stt_en_fastconformer_hybrid_large_pc"),
    "large": EncoderPair("google/siglip2-so400m-patch14-224", "nvidia/stt_en_fastconformer_hybrid_large_pc"),
    "base-random": EncoderPair("random:siglip2-base", "random:fastconformer-large"),
    "large-random": EncoderPair("random:siglip2-so400m", "random:fastconformer-large"),
}


# The preset every command defaults to (extract, params, the Makefile's PRESET): pretrained weights inside dfer's own
# package (face-api.js's FaceExpressionNet and resemblyzer's GE2E, both vendored), so it works offline and on a CPU,
# and its tokens are real ones, unlike tiny's random encoders; base and large need the hub and a GPU to be quick.
DEFAULT_PRESET = "lite"


def resolve_preset(name: str) -> EncoderPair:
    """The (vision spec, audio spec) a preset names."""
    if name not in PRESETS:
        raise ValueError(f"unknown encoder preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def random_arch(spec: str, archs: dict[str, dict], kind: str) -> str | None:
    """The architecture name of a `random:<arch>` spec, None for a pretrained spec."""
    if not spec.startswith(RANDOM_PREFIX):
        return None
    arch = spec[len(RANDOM_PREFIX):]
    if arch not in archs:
        raise ValueError(f"unknown {kind} architecture {arch!r} in {spec!r}; architectures: {', '.join(archs)}")
    return arch


_SNAPSHOT = re.compile(r"snapshots/([0-9a-f]{40})/")


def hub_commit(resolved_file: str | Path) -> str | None:
    """The commit hash in a Hugging Face cache path (`.../snapshots/<commit>/file`), None elsewhere.

    transformers 5 no longer keeps `config._commit_hash`, and NeMo never did; the cache path is where both
    libraries leave the revision they actually loaded.
    """
    match = _SNAPSHOT.search(Path(resolved_file).as_posix())
    return match.group(1) if match else None


def local_revision(path: str | Path) -> str:
    """A cheap identity for local weights: resolved path, total size and newest mtime of its files.

    Hashing gigabytes of weights on every extraction would cost more than it protects; a re-saved or
    replaced checkpoint changes size or mtime, which is what the cache fingerprint must notice.
    """
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [f.stat() for f in files]
    size = sum(s.st_size for s in stats)
    mtime_ns = max((s.st_mtime_ns for s in stats), default=0)
    return f"{path}|size={size}|mtime_ns={mtime_ns}"
