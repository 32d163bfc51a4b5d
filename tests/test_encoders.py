"""Encoders at toy size through the real SigLIP / NeMo classes; the real sizes on the meta device only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dfer.encoders import resolve_preset
from dfer.encoders.audio import AudioEncoder, load_audio
from dfer.encoders.librosa_kernels import librosa_module
from dfer.encoders.vision import VisionEncoder, load_vision
from dfer.encoders.presets import PRESETS, hub_commit, local_revision

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_audio() -> AudioEncoder:
    return load_audio("random:tiny")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_tiny_vision_shapes_and_input_scaling():
    encoder = load_vision("random:tiny")
    assert (encoder.image_size, encoder.patch_size, encoder.grid, encoder.num_tokens) == (64, 16, 4, 16)
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)  # (B, 3, S, S)
    with torch.no_grad():
        tokens = encoder(images)
        from_float = encoder(images.float() / 255)
    assert tokens.shape == (3, encoder.num_tokens, encoder.dim)
    torch.testing.assert_close(tokens, from_float)
    with pytest.raises(ValueError, match="64x64"):
        encoder(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def backward_reaches_every_weight(encoder: torch.nn.Module, tokens: torch.Tensor) -> None:
    """Backpropagate a random projection of `tokens` and check every parameter got a finite, nonzero gradient.
    Not their sum: the last LayerNorm's outputs sum to its bias alone, so the sum's gradient cancels on its way
    back (measured: 8e-6 on the tiny vision encoder's patch embedding, zero but for rounding)."""
    direction = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(0))
    (tokens * direction).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_vision_is_differentiable():
    encoder = load_vision("random:tiny")
    backward_reaches_every_weight(encoder, encoder(torch.rand(1, 3, 64, 64)))  # (1, N, D)


def test_tiny_audio_lengths_and_padding_invariance(tiny_audio):
    assert (tiny_audio.sample_rate, tiny_audio.frame_seconds) == (16000, 0.08)
    waveform = 0.1 * torch.randn(2, 32000)  # 2.0 s and 1.25 s of "speech"
    length = torch.tensor([32000, 20000])
    waveform[1, 20000:] = 0.3  # non-silent padding must not leak into the shorter clip either
    with torch.no_grad():
        tokens, token_length = tiny_audio(waveform, length)
        alone, alone_length = tiny_audio(waveform[1:, :20000], length[1:])
    assert tokens.shape == (2, 25, tiny_audio.dim)  # 2 s / 80 ms
    assert token_length.tolist() == [25, 16]
    assert alone_length.tolist() == [16] and alone.shape == (1, 16, tiny_audio.dim)
    torch.testing.assert_close(tokens[1, :16], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("samples, expected_tokens", [(1600, 2), (100, 1), (1, 1)])
def test_short_audio_gives_finite_tokens(tiny_audio, samples, expected_tokens):
    with torch.no_grad():
        tokens, token_length = tiny_audio(torch.randn(1, samples), torch.tensor([samples]))
    assert token_length.tolist() == [expected_tokens]
    assert tokens.shape == (1, expected_tokens, tiny_audio.dim) and torch.isfinite(tokens).all()


def test_audio_is_differentiable(tiny_audio):
    tokens, _ = tiny_audio(torch.randn(1, 8000), torch.tensor([8000]))  # (1, Ta, D)
    backward_reaches_every_weight(tiny_audio, tokens)
    tiny_audio.zero_grad(set_to_none=True)


@pytest.mark.parametrize("load", [load_vision, load_audio])
def test_random_init_is_seeded_and_leaves_global_rng_alone(load):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first = load("random:tiny", seed=0)
    assert torch.equal(torch.rand(1), expected)
    assert _same_weights(first, load("random:tiny", seed=0))
    assert not _same_weights(first, load("random:tiny", seed=1))


def test_describe_keys(tiny_audio):
    vision = load_vision("random:tiny", seed=7).describe()
    assert vision == {"id": "random:tiny", "revision": "seed=7", "dim": 32, "image_size": 64, "num_tokens": 16,
                      "grid": 4}
    audio = tiny_audio.describe()
    assert audio == {"id": "random:tiny", "revision": "seed=0", "dim": 32, "sample_rate": 16000,
                     "frame_seconds": 0.08}


@pytest.mark.parametrize(
    "spec, low, high, dim, tokens",
    [("random:siglip2-base", 80e6, 90e6, 768, 196), ("random:siglip2-so400m", 390e6, 430e6, 1152, 256)],
)
def test_real_size_vision_on_meta(spec, low, high, dim, tokens):
    encoder = load_vision(spec, meta=True)
    assert all(p.is_meta for p in encoder.parameters())
    assert low < _param_count(encoder) < high  # tower without the pooling head (base with it: ~93M)
    assert not any(name.startswith("model.head.") for name, _ in encoder.named_parameters())
    assert (encoder.dim, encoder.num_tokens) == (dim, tokens)


def test_real_size_audio_on_meta():
    encoder = load_audio("random:fastconformer-large", meta=True)
    assert all(t.is_meta for t in [*encoder.parameters(), *encoder.buffers()])
    assert 100e6 < _param_count(encoder) < 120e6  # encoder only; the hybrid ASR model is ~115M with decoders
    assert (encoder.dim, encoder.frame_seconds) == (512, 0.08)


def test_vision_save_load_round_trip(tmp_path):
    encoder = load_vision("random:tiny", seed=3)
    encoder.save(tmp_path / "vision")
    loaded = load_vision(str(tmp_path / "vision"))
    assert isinstance(loaded, VisionEncoder) and not loaded.training
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), encoder(images), atol=0, rtol=0)
    assert loaded.describe()["revision"] == local_revision(tmp_path / "vision")
    assert load_vision(str(tmp_path / "vision"), meta=True).num_tokens == 16


# Builds the vision encoder argv[1] names and prints its revision and the sum of its weights, then tries argv[2].
BUILD_VISION = """import sys
from dfer.encoders import build_encoder
encoder = build_encoder("vision", sys.argv[1])
print(encoder.describe()["revision"], repr(sum(float(p.detach().double().sum()) for p in encoder.parameters())))
build_encoder("vision", sys.argv[2])
"""


def test_a_warm_hub_cache_serves_where_the_hub_name_does_not_resolve(tmp_path):
    """A hub id the local Hugging Face cache holds (laid out as huggingface_hub writes it) loads where the hub's name
    does not resolve (.invalid, RFC 2606), with the cached commit as its revision; one it does not hold fails in one
    line. A process of its own: huggingface_hub reads its endpoint and cache from the environment at import."""
    encoder = load_vision("random:tiny", seed=5)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub/models--dfer-test--tiny-siglip"
    encoder.save(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text(commit)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": "https://hub.dfer.invalid", "HF_HUB_OFFLINE": "0",
           "TRANSFORMERS_OFFLINE": "0", "HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub")}
    built = subprocess.run([sys.executable, "-c", BUILD_VISION, "dfer-test/tiny-siglip", "dfer-test/not-cached"],
                           env=env, capture_output=True, text=True, timeout=300)
    revision, weights = built.stdout.split()
    assert revision == commit
    assert float(weights) == sum(float(p.detach().double().sum()) for p in encoder.parameters())
    assert built.returncode == 1 and "EncoderUnavailable: vision encoder dfer-test/not-cached" in built.stderr
    assert "hub.dfer.invalid does not resolve, and the local Hugging Face cache does not hold it" in built.stderr


def test_audio_save_load_round_trip(tmp_path, tiny_audio):
    tiny_audio.save(tmp_path / "audio")
    loaded = load_audio(str(tmp_path / "audio"))
    assert isinstance(loaded, AudioEncoder) and not loaded.training
    waveform, length = 0.1 * torch.randn(2, 16000), torch.tensor([16000, 12000])
    with torch.no_grad():
        expected, expected_length = tiny_audio(waveform, length)
        tokens, token_length = loaded(waveform, length)
    torch.testing.assert_close(tokens, expected, atol=0, rtol=0)
    assert torch.equal(token_length, expected_length)
    assert loaded.describe()["revision"] == local_revision(tmp_path / "audio")
    assert _param_count(load_audio(str(tmp_path / "audio"), meta=True)) == _param_count(tiny_audio)


def test_audio_folder_must_be_ours(tmp_path, tiny_audio):
    tiny_audio.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["encoder"]["_target_"] = "os.system"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="_target_"):
        load_audio(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="not an audio encoder folder"):
        load_audio(str(tmp_path))


def test_presets_and_unknown_names():
    assert resolve_preset("tiny") == ("random:tiny", "random:tiny")
    assert resolve_preset("base").vision == "google/siglip2-base-patch16-224"
    assert resolve_preset("lite") == ("faceapi", "ge2e")  # both pretrained, shipped in registry packages
    assert set(PRESETS) == {"tiny", "lite", "small", "base", "large", "base-random", "large-random"}
    with pytest.raises(ValueError, match="base-random"):
        resolve_preset("huge")
    with pytest.raises(ValueError, match="siglip2-base"):
        load_vision("random:huge")
    with pytest.raises(ValueError, match="fastconformer-large"):
        load_audio("random:huge")


def test_revisions():
    commit = "a" * 40
    assert hub_commit(f"/hf/models--google--siglip2/snapshots/{commit}/config.json") == commit
    assert hub_commit("/data/models/encoder.nemo") is None


def test_vision_loads_a_full_siglip_checkpoint(tmp_path):
    """Hub SigLIP2 checkpoints are whole SiglipModels (text tower, pooling head): only the vision tower loads."""
    from transformers import SiglipConfig, SiglipModel

    from dfer.encoders.presets import VISION_ARCHS

    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100,
                bos_token_id=None, eos_token_id=None)
    full = SiglipModel(SiglipConfig(text_config=text, vision_config=VISION_ARCHS["tiny"])).eval()
    full.save_pretrained(tmp_path)
    encoder = load_vision(str(tmp_path))
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = full.vision_model(pixel_values=images * 2 - 1).last_hidden_state
        # Exactly: (x - 0.5) / 0.5 and x * 2 - 1 round alike (scaling by 2 is exact), then the same weights and ops.
        torch.testing.assert_close(encoder(images), expected, atol=0, rtol=0)
    assert not hasattr(encoder.model, "head")


def test_audio_restores_a_nemo_file(tmp_path):
    """A real (tiny, CTC) NeMo ASR model saved as `.nemo`: the path the pretrained FastConformer takes."""
    librosa_module()  # NeMo imports librosa: first, under its lock
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    from dfer.encoders.presets import AUDIO_ARCHS, FASTCONFORMER_PREPROCESSOR

    vocabulary = list("ab ")
    decoder = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 32,
               "num_classes": len(vocabulary), "vocabulary": vocabulary}
    model = EncDecCTCModel(cfg=OmegaConf.create({
        "sample_rate": 16000, "labels": vocabulary, "preprocessor": FASTCONFORMER_PREPROCESSOR,
        "encoder": AUDIO_ARCHS["tiny"], "decoder": decoder, "train_ds": None, "validation_ds": None,
    })).eval()
    model.save_to(str(tmp_path / "tiny.nemo"))
    encoder = load_audio(str(tmp_path / "tiny.nemo"))
    waveform, length = 0.1 * torch.randn(2, 16000), torch.tensor([16000, 9000])
    with torch.no_grad():
        mel, mel_length = model.preprocessor(input_signal=waveform, length=length)
        expected, expected_length = model.encoder(audio_signal=mel, length=mel_length)
        tokens, token_length = encoder(waveform, length)
    assert torch.equal(token_length, expected_length)
    torch.testing.assert_close(tokens, expected.transpose(1, 2)[:, : int(expected_length.max())], atol=0, rtol=0)
    assert encoder.describe()["revision"] == local_revision(tmp_path / "tiny.nemo")
    assert _param_count(load_audio(str(tmp_path / "tiny.nemo"), meta=True)) == _param_count(encoder)
