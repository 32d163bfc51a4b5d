"""The `hf:` encoder family at toy size: tiny random configs of the real transformers classes, saved as checkpoint
folders the way the hub holds them (heads, text towers and decoders included), loaded through the family's loaders
and checked against the transformers models' own outputs."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from dfer.encoders.hf_audio import HfAudioEncoder, default_layer, load_hf_audio
from dfer.encoders.hf_common import hf_folder_kind
from dfer.encoders.hf_vision import load_hf_vision

# WavLM's own attention call mixes a float and a bool mask, which torch warns about on every padded batch.
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")

# A 3-conv front end with the released models' 320-sample stride (20 ms): 1 s -> 49 frames, as wav2vec2-base gives.
_CONV = dict(conv_dim=(8, 8, 8), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8), num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=2)
_TRANSFORMER = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64)

# family -> (checkpoint class, config): one per padding regime and norm placement.
AUDIO = {
    # large-lv60 style: layer-normed convs (padding mask), pre-LN blocks; saved with its CTC head.
    "wav2vec2": ("Wav2Vec2ForCTC", transformers.Wav2Vec2Config(
        **_CONV, **_TRANSFORMER, feat_extract_norm="layer", do_stable_layer_norm=True, vocab_size=8)),
    # base style: group-normed convs (no mask), post-LN blocks.
    "hubert": ("HubertModel", transformers.HubertConfig(**_CONV, **_TRANSFORMER, feat_extract_norm="group")),
    "wavlm": ("WavLMModel", transformers.WavLMConfig(**_CONV, **_TRANSFORMER, feat_extract_norm="layer")),
    # 50 positions = a 1 s window (100 mel frames); saved whole, decoder included, as the hub holds Whisper.
    "whisper": ("WhisperForConditionalGeneration", transformers.WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50,
        max_target_positions=8, vocab_size=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1)),
}

_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=16)
VISION = {
    "clip": ("CLIPModel", transformers.CLIPConfig(  # a whole CLIP: the text tower is dropped at load
        vision_config=dict(**_VISION, intermediate_size=64),
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         vocab_size=16, max_position_embeddings=8, bos_token_id=0, eos_token_id=1))),
    "dinov2": ("Dinov2Model", transformers.Dinov2Config(**_VISION, mlp_ratio=2)),
    "dinov2_with_registers": ("Dinov2WithRegistersModel", transformers.Dinov2WithRegistersConfig(
        **_VISION, mlp_ratio=2, num_register_tokens=2)),
    "vit": ("ViTForImageClassification", transformers.ViTConfig(**_VISION, intermediate_size=64)),
}
# What each family's pixels are normalised with when the checkpoint saves no image processor config.
VISION_NORMALISATION = {
    "clip": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "dinov2": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    "dinov2_with_registers": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    "vit": ((0.5,) * 3, (0.5,) * 3),
}


def _checkpoint(folder, class_name: str, config) -> str:
    """Save a seeded random model; its norms get random affine weights, so a norm applied twice or skipped shows."""
    torch.manual_seed(0)
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=list(AUDIO))
def audio_folder(request, tmp_path_factory) -> tuple[str, str]:
    return request.param, _checkpoint(tmp_path_factory.mktemp(request.param), *AUDIO[request.param])


@pytest.fixture(scope="module", params=list(VISION))
def vision_folder(request, tmp_path_factory) -> tuple[str, str]:
    return request.param, _checkpoint(tmp_path_factory.mktemp(request.param), *VISION[request.param])


def _clips() -> tuple[torch.Tensor, torch.Tensor]:
    """1 s and 0.5 s of noise in one padded batch; the padding is loud, so a leak into the short clip shows."""
    waveform = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))  # (B, S)
    waveform[1, 8000:] = 0.5
    return waveform, torch.tensor([16000, 8000])


def _reference(family: str, folder: str, encoder: HfAudioEncoder, clip: torch.Tensor, layer: int) -> torch.Tensor:
    """Block `layer`'s output for one unpadded clip from the full transformers model, its inputs made by the
    checkpoint's own feature extractor; through the final norm for pre-LN models (see `dfer.encoders.hf_audio`)."""
    features = encoder.extractor(clip.numpy(), sampling_rate=16000, return_tensors="pt",
                                 **({"padding": "max_length", "max_length": 16000} if family == "whisper" else {}))
    if family == "whisper":
        full = transformers.WhisperModel.from_pretrained(folder).get_encoder().eval()
        inputs = {"input_features": features.input_features}
    else:
        full = transformers.AutoModel.from_pretrained(folder).eval()
        inputs = {"input_values": features.input_values}
    with torch.no_grad():
        output = full(**inputs, output_hidden_states=True)
        if layer == full.config.num_hidden_layers:
            return output.last_hidden_state[0]  # (T, D)
        hidden = output.hidden_states[layer][0]  # (T, D)
        stack = full if family == "whisper" else full.encoder
        return stack.layer_norm(hidden) if encoder.parts().final else hidden


def _check_lora_targets(encoder) -> None:
    """The attention projections and MLP linears of every block, and no linear outside the blocks."""
    targets = encoder.lora_targets()
    assert {"q_proj", "k_proj", "v_proj"} <= set(targets) and len(targets) >= 6
    for name, module in encoder.model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rpartition(".")[2] in targets:
            assert any(module is m for block in encoder.parts().blocks for m in block.modules()), name


def test_audio_tokens_lengths_and_description(audio_folder):
    family, folder = audio_folder
    encoder = load_hf_audio(folder)
    # Whisper: the tokens starting inside each clip; the others: what their convolutions leave
    frames = {"whisper": [50, 25]}.get(family, [49, 24])
    with torch.no_grad():
        tokens, token_length = encoder(*_clips())
    assert token_length.tolist() == frames and tokens.shape == (2, frames[0], 32)
    depth = 2 if family == "whisper" else 3
    assert encoder.layer == default_layer(family, depth) == 2  # Whisper: the last of 2; others: 2/3 of 3
    assert len(encoder.parts().blocks) == encoder.layer  # the blocks above the layer are never built
    assert encoder.describe() == {"id": f"hf:{folder},layer={encoder.layer}", "revision": encoder.revision, "dim": 32,
                                  "sample_rate": 16000, "frame_seconds": 0.02, "family": "hf", "layer": encoder.layer}
    assert encoder.revision.startswith(str(folder)) and hf_folder_kind(folder) == "audio"
    _check_lora_targets(encoder)


@pytest.mark.parametrize("layer", [0, 1, "last"])
def test_audio_layer_is_that_blocks_output(audio_folder, layer):
    family, folder = audio_folder
    encoder = load_hf_audio(folder, layer=(2 if family == "whisper" else 3) if layer == "last" else layer)
    waveform, length = _clips()
    with torch.no_grad():
        tokens, token_length = encoder(waveform[:1], length[:1])
    expected = _reference(family, folder, encoder, waveform[0], encoder.layer)[: int(token_length[0])]
    torch.testing.assert_close(tokens[0], expected, atol=1e-4, rtol=1e-4)


def test_audio_padding_and_short_clips(audio_folder):
    family, folder = audio_folder
    encoder = load_hf_audio(folder, layer=2)
    waveform, length = _clips()
    with torch.no_grad():
        tokens, _ = encoder(waveform, length)
        alone, alone_length = encoder(waveform[1:, :8000], length[1:])
        short, short_length = encoder(torch.randn(1, 100), torch.tensor([100]))
    assert short_length.tolist() == [1] and short.shape == (1, 1, 32) and torch.isfinite(short).all()
    if family == "hubert":  # group-normed front end: no padding mask, as the base checkpoints were trained
        assert not encoder.use_mask
        return
    torch.testing.assert_close(tokens[1, : int(alone_length[0])], alone[0], atol=1e-4, rtol=1e-4)


def test_audio_save_round_trip_and_gradients(audio_folder, tmp_path):
    _, folder = audio_folder
    encoder = load_hf_audio(folder, layer=1)
    encoder.save(tmp_path)
    again = load_hf_audio(str(tmp_path))  # the layer comes from dfer_encoder.json
    assert again.layer == 1 and json.loads((tmp_path / "dfer_encoder.json").read_text())["kind"] == "audio"
    assert hf_folder_kind(tmp_path) == "audio"
    waveform, length = _clips()
    tokens, _ = encoder(waveform, length)
    with torch.no_grad():
        torch.testing.assert_close(again(waveform, length)[0], tokens, atol=0, rtol=0)
    tokens.sum().backward()
    assert all(p.grad is not None for p in encoder.parts().blocks[0].parameters() if p.requires_grad)


def test_audio_meta_builds_without_weights(audio_folder):
    _, folder = audio_folder
    meta = load_hf_audio(folder, meta=True)
    assert all(p.device.type == "meta" for p in meta.parameters())
    real = load_hf_audio(folder)
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in real.parameters())


def test_audio_rejects_a_layer_beyond_the_model(audio_folder):
    with pytest.raises(ValueError, match="layer must be in"):
        load_hf_audio(audio_folder[1], layer=9)


def test_vision_tokens_are_the_normalised_patch_tokens(vision_folder):
    family, folder = vision_folder
    encoder = load_hf_vision(folder)
    assert (encoder.image_size, encoder.patch_size, encoder.grid, encoder.num_tokens, encoder.dim) == (32, 16, 2, 4, 32)
    assert encoder.describe() == {"id": f"hf:{folder}", "revision": encoder.revision, "dim": 32, "image_size": 32,
                                  "num_tokens": 4, "grid": 2, "family": "hf"}
    assert len(encoder.parts().blocks) == 2 and hf_folder_kind(folder) == "vision"
    _check_lora_targets(encoder)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in VISION_NORMALISATION[family])
    tower = transformers.CLIPVisionModel if family == "clip" else transformers.AutoModel
    with torch.no_grad():
        tokens = encoder(images)
        torch.testing.assert_close(encoder(images.float() / 255), tokens)
        hidden = tower.from_pretrained(folder).eval()(pixel_values=(images / 255 - mean) / std).last_hidden_state
    skipped = 1 + (2 if family == "dinov2_with_registers" else 0)  # the class token, then the registers
    assert tokens.shape == (2, 4, 32)
    torch.testing.assert_close(tokens, hidden[:, skipped:], atol=1e-5, rtol=1e-5)


def test_vision_save_round_trip_gradients_and_meta(vision_folder, tmp_path):
    _, folder = vision_folder
    encoder = load_hf_vision(folder)
    encoder.save(tmp_path)
    assert hf_folder_kind(tmp_path) == "vision"
    images = torch.rand(1, 3, 32, 32)
    tokens = encoder(images)
    with torch.no_grad():
        torch.testing.assert_close(load_hf_vision(str(tmp_path))(images), tokens, atol=0, rtol=0)
    tokens.sum().backward()
    assert all(p.grad is not None for p in encoder.parts().blocks[0].parameters())
    meta = load_hf_vision(folder, meta=True)
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in encoder.parameters())


@pytest.mark.parametrize("family", ["dinov2", "vit"])
def test_vision_follows_a_saved_image_processor_config(family, tmp_path):
    """Its crop size beats the model config's (position embeddings interpolated) and its mean and std are used."""
    folder = _checkpoint(tmp_path, *VISION[family])
    processor = {"do_center_crop": True, "crop_size": {"height": 48, "width": 48}, "size": {"shortest_edge": 56},
                 "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.3, 0.4]}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    encoder = load_hf_vision(folder)
    assert (encoder.image_size, encoder.grid, encoder.num_tokens) == (48, 3, 9)
    images = torch.rand(1, 3, 48, 48)
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1), torch.tensor([0.2, 0.3, 0.4]).view(3, 1, 1)
    kwargs = {"interpolate_pos_encoding": True} if family == "vit" else {}
    with torch.no_grad():
        hidden = transformers.AutoModel.from_pretrained(folder).eval()(pixel_values=(images - mean) / std, **kwargs)
        torch.testing.assert_close(encoder(images), hidden.last_hidden_state[:, 1:], atol=1e-5, rtol=1e-5)
    encoder.save(tmp_path / "saved")
    assert load_hf_vision(str(tmp_path / "saved")).image_size == 48


def test_folder_kind_of_other_sources(tmp_path):
    assert hf_folder_kind(tmp_path) is None
    (tmp_path / "model.nemo").write_bytes(b"")
    assert hf_folder_kind(tmp_path / "model.nemo") is None
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert hf_folder_kind(tmp_path) is None
