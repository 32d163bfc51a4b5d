"""The encoder families behind the one builder: `ge2e` on resemblyzer's real shipped weights, the encoder-free `mel`,
spec parsing, and rebuilding an encoder from what a fingerprint recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfer.encoders import build_encoder, rebuild_encoder, seed_of
from dfer.encoders.ge2e import SHIPPED_SHA256, Ge2eEncoder, load_ge2e
from dfer.encoders.librosa_kernels import librosa_module
from dfer.media.decode import decode_clip

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared/data/ravdess_speech_16k/Actor_01/03-01-05-02-01-01-01.flac"


@pytest.fixture(scope="module")
def ge2e() -> Ge2eEncoder:
    return build_encoder("audio", "ge2e")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A real utterance at 16 kHz: a RAVDESS speech file when ../shared is there, else a bundled CREMA-D clip."""
    if SPEECH.exists():
        import soundfile

        wave, rate = soundfile.read(SPEECH, dtype="float32")
        assert rate == 16000
        return wave
    clip = sorted((REPO / "samples/cremad/VideoFlash").glob("*.flv"))[0]
    return decode_clip(clip, clip, frames=1).waveform  # the sound of the same file


def test_ge2e_matches_resemblyzers_own_utterance_embedding(ge2e, speech):
    """Our mel front end and our three LSTM layers reproduce `VoiceEncoder.embed_utterance`, computed as the library
    computes it: its preprocessing, its 1.6 s windows, its shipped weights."""
    librosa_module()  # resemblyzer imports librosa: first, under its lock
    from resemblyzer import VoiceEncoder, preprocess_wav

    whole = build_encoder("audio", "ge2e,layer=3")
    wave = preprocess_wav(speech, source_sr=16000)
    reference = VoiceEncoder(device="cpu", verbose=False)
    expected = reference.embed_utterance(wave)  # (256,)
    wav_slices, mel_slices = reference.compute_partial_slices(len(wave), rate=1.3, min_coverage=0.75)
    padded = np.pad(wave, (0, max(0, wav_slices[-1].stop - len(wave))))  # as embed_utterance pads
    with torch.no_grad():
        ours = whole.utterance_embedding(padded, mel_slices).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def test_ge2e_tokens_every_10_ms_independent_of_padding(ge2e, speech):
    wave = torch.from_numpy(speech[:16000].copy())  # 1.0 s
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :8000] = wave, wave[:8000]
    batch[1, 8000:] = 0.3  # loud padding must not leak into the shorter clip
    with torch.no_grad():
        tokens, frames = ge2e(batch, torch.tensor([16000, 8000]))
        alone, _ = ge2e(wave[None, :8000], torch.tensor([8000]))
    assert ge2e.frame_seconds == 0.01 and ge2e.dim == 256 and ge2e.spec == "ge2e,layer=2"  # the default layer
    assert tokens.shape == (2, 101, 256) and frames.tolist() == [101, 51]  # 1 + samples // 160 centred frames
    torch.testing.assert_close(tokens[1, :51], alone[0])  # same computation on the same frames
    assert ge2e.describe()["revision"] == f"sha256={SHIPPED_SHA256}"


def test_ge2e_builds_layers_up_to_the_token_layer_and_is_differentiable():
    encoder = load_ge2e(layer=2)
    assert len(encoder.layers) == 2 and not hasattr(encoder, "linear")  # nothing above the tokens is built
    tokens, _ = encoder(0.1 * torch.randn(1, 4000), torch.tensor([4000]))
    tokens.pow(2).mean().backward()
    assert all(layer.weight_hh_l0.grad.abs().max() > 1e-6 for layer in encoder.layers)
    with torch.no_grad():  # layer 2 of the whole network is the same computation
        whole = load_ge2e(layer=3)
        mel, _ = whole.mel(0.1 * torch.ones(1, 4000), torch.tensor([4000]))
        torch.testing.assert_close(encoder.states(mel), whole.layers[1](whole.layers[0](mel)[0])[0])
    with pytest.raises(ValueError, match="layers 1..3"):
        load_ge2e(layer=4)


def test_ge2e_save_load_round_trip_and_refuses_other_weights(tmp_path, ge2e, monkeypatch):
    ge2e.save(tmp_path / "audio")
    loaded = build_encoder("audio", str(tmp_path / "audio"))
    assert isinstance(loaded, Ge2eEncoder) and loaded.layer == 2
    wave = 0.1 * torch.randn(1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave, torch.tensor([3000]))[0], ge2e(wave, torch.tensor([3000]))[0])
    tampered = tmp_path / "pretrained.pt"
    tampered.write_bytes(b"not the shipped weights")
    monkeypatch.setattr("dfer.encoders.ge2e.WEIGHTS", tampered)
    with pytest.raises(ValueError, match="SHA-256"):
        load_ge2e()


def test_mel_family_is_the_fastconformers_own_front_end():
    mel = build_encoder("audio", "mel")
    conformer = build_encoder("audio", "random:tiny")
    wave, length = 0.1 * torch.randn(2, 16000), torch.tensor([16000, 9600])
    with torch.no_grad():
        tokens, frames = mel(wave, length)
        expected, expected_frames = conformer.preprocessor(input_signal=wave, length=length)  # (B, 80, Tm)
    assert (mel.dim, mel.frame_seconds) == (80, 0.01)
    assert frames.tolist() == expected_frames.tolist() == [100, 60]  # NeMo's frame count: samples // 160
    assert tokens.shape == (2, 100, 80)
    torch.testing.assert_close(tokens, expected.transpose(1, 2)[:, :100])
    assert sum(p.numel() for p in mel.parameters()) == 0


def test_meta_builds_of_every_audio_family():
    sizes = {spec: sum(p.numel() for p in build_encoder("audio", spec, meta=True).parameters())
             for spec in ("ge2e", "ge2e,layer=3", "mel", "random:tiny")}
    assert sizes["ge2e"] == 305_152 + 526_336  # LSTM layers 1 and 2
    assert sizes["ge2e,layer=3"] == 305_152 + 2 * 526_336 + 65_792  # all 3 layers + the speaker projection
    assert sizes["mel"] == 0 and sizes["random:tiny"] > 0


def test_specs_that_do_not_parse_are_refused():
    with pytest.raises(ValueError, match="layer=N"):
        build_encoder("audio", "hf:some/model,depth=3")
    with pytest.raises(ValueError, match="layer=N"):
        build_encoder("audio", "ge2e,layer=two")
    with pytest.raises(ValueError, match="hub id or a path"):
        build_encoder("audio", "hf:")
    with pytest.raises(ValueError, match="kind"):
        build_encoder("text", "ge2e")
    with pytest.raises(ValueError, match="unknown audio architecture"):
        build_encoder("audio", "random:huge")


def test_seeds_come_from_the_fingerprint_and_only_from_random_encoders():
    random_vision = {"id": "random:tiny", "revision": "seed=7"}
    assert seed_of(random_vision) == 7 and seed_of({"id": "ge2e,layer=2", "revision": "sha256=abc"}) == 0


def test_rebuild_checks_the_recorded_token_shapes(ge2e):
    recorded = ge2e.describe()
    assert isinstance(rebuild_encoder("audio", recorded), Ge2eEncoder)
    with pytest.raises(ValueError, match="audio.dim"):
        rebuild_encoder("audio", {**recorded, "dim": 512})
    with pytest.raises(ValueError, match="audio.dim: expected 256, encoder mel gives 80"):
        rebuild_encoder("audio", recorded, source="mel")  # a --audio override of another shape
