"""The `egemaps` family: openSMILE's eGeMAPS v02 descriptors as tokens, frame for frame against openSMILE itself,
aligned in time as the family's docstring says, the same in a padded batch as alone, and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opensmile
import pytest
import torch

from dfer.encoders import build_encoder
from dfer.encoders.egemaps import LONG_WINDOW
from dfer.store.reader import open_cache

from acceptance import cli

REPO = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope="module")
def egemaps():
    return build_encoder("audio", "egemaps")


def _voice(seconds: float, seed: int = 0) -> np.ndarray:
    """A gliding harmonic tone in noise, loud and quiet stretches: voiced and unvoiced frames, every descriptor
    moving. (S,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(140 + 60 * np.sin(2 * np.pi * 1.3 * t)) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * (np.sin(2 * np.pi * 2 * t) > -0.3)
    return (0.2 * voice + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _reference(wave: np.ndarray) -> np.ndarray:
    """openSMILE's own descriptors of the clip, (F, 25)."""
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    return smile.process_signal(wave, SR).to_numpy()


def test_tokens_are_opensmiles_descriptors_frame_for_frame(egemaps):
    wave = _voice(1.5)
    tokens, length = egemaps(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    reference = _reference(wave)  # (F, 25)
    assert egemaps.features == list(opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    ).feature_names)
    assert tokens.shape == (1, len(reference), 25)
    assert length.tolist() == [len(reference)] == [(len(wave) - 800) // 160 + 1]
    long = [name in LONG_WINDOW for name in egemaps.features]
    lagged = np.maximum(np.arange(len(reference)) - 2, 0)  # 60 ms windows: frame j - 2, the first one repeated
    expected = np.where(long, reference[lagged], reference)
    np.testing.assert_allclose(tokens[0].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert (reference[:, long] != 0).any() and (reference[:, long] == 0).any()  # voiced and unvoiced frames both


def test_every_descriptor_of_a_token_is_measured_at_one_instant(egemaps):
    """A tone burst over [0.5, 0.7) s in near-silence: the tokens that hear it are the same for the 20 ms loudness and
    the 60 ms pitch, and within a token of the burst's [50, 70) x 10 ms. openSMILE's raw frames put pitch 2 earlier."""
    rng = np.random.default_rng(1)
    t = np.arange(SR) / SR
    wave = 1e-4 * rng.standard_normal(SR)
    burst = (t >= 0.5) & (t < 0.7)
    wave[burst] += 0.3 * np.sin(2 * np.pi * 200 * t[burst]) + 0.1 * np.sin(2 * np.pi * 400 * t[burst])
    tokens = egemaps(torch.from_numpy(wave.astype(np.float32))[None], torch.tensor([SR]))[0][0]  # (F, 25)
    loudness = tokens[:, egemaps.features.index("Loudness_sma3")]
    pitch = tokens[:, egemaps.features.index("F0semitoneFrom27.5Hz_sma3nz")]
    loud = torch.nonzero(loudness > loudness.max() / 2).flatten().tolist()
    voiced = torch.nonzero(pitch > 0).flatten().tolist()
    assert voiced == loud == list(range(49, 70))
    raw_pitch = _reference(wave.astype(np.float32))[:, egemaps.features.index("F0semitoneFrom27.5Hz_sma3nz")]
    assert np.nonzero(raw_pitch > 0)[0].tolist() == list(range(47, 68))


def test_padded_batch_is_each_clip_alone(egemaps):
    lengths = [24000, 13000, 961, 300]  # the last is shorter than openSMILE's first frame: 60 ms of silence added
    waves = [_voice(n / SR, seed=i)[:n] for i, n in enumerate(lengths)]
    batch = torch.from_numpy(10 * np.random.default_rng(2).standard_normal((4, max(lengths))).astype(np.float32))
    for row, wave in zip(batch, waves):
        row[: len(wave)] = torch.from_numpy(wave)  # loud noise past each length, which must not reach its tokens
    tokens, length = egemaps(batch, torch.tensor(lengths))
    assert length.tolist() == [(n - 800) // 160 + 1 for n in lengths[:3]] + [2] and tokens.shape == (4, 146, 25)
    for row, n, wave in zip(tokens, length.tolist(), waves):
        alone, alone_length = egemaps(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
        assert alone_length.tolist() == [n]
        torch.testing.assert_close(row[:n], alone[0])
        assert not row[n:].any() and torch.isfinite(row).all()


def test_record_names_the_set_and_the_version_and_there_is_nothing_to_train(egemaps, tmp_path):
    record = egemaps.describe()
    assert record["id"] == "egemaps" and record["revision"] == f"opensmile-{opensmile.__version__}"
    assert (record["dim"], record["frame_seconds"], record["sample_rate"]) == (25, 0.01, 16000)
    assert record["feature_set"] == "eGeMAPSv02" and record["features"] == egemaps.features
    with pytest.raises(ValueError, match="egemaps audio family has no weights to fine-tune"):
        egemaps.parts()
    with pytest.raises(ValueError, match="its spec `egemaps` rebuilds it"):
        egemaps.save(tmp_path / "audio")
    with pytest.raises(ValueError, match="takes no options"):
        build_encoder("audio", "egemaps,layer=2")


def test_extract_train_and_probe_on_the_bundled_sample(tmp_path):
    store, sample = tmp_path / "store", REPO / "samples" / "cremad"
    cli("extract", "cremad", sample, "--out", store, "--preset", "tiny", "--audio", "egemaps", "--frames", "2")
    cache = open_cache(store)
    assert cache.fingerprint["audio"]["id"] == "egemaps" and cache.fingerprint["audio"]["dim"] == 25
    tokens = cache.read("audio/tokens", 0)
    assert tokens.shape[1] == 25 and np.isfinite(tokens.astype(np.float32)).all()
    cli("train", store, "--out", tmp_path / "run", "--modalities", "audio", "--fold", "none", "--epochs", "1")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["fingerprint"]["audio"]["id"] == "egemaps"
    clip = sample / "VideoFlash" / "1001_DFA_ANG_XX.flv"
    answer = json.loads(cli("predict", clip, "--model", tmp_path / "run", "--json"))  # egemaps rebuilt from the run
    assert len(answer["probs"]) == 6 and abs(sum(answer["probs"]) - 1) < 1e-4
    cli("probe", store, "--out", tmp_path / "probe", "--modalities", "audio", "--fold", "none")
    assert (tmp_path / "probe" / "config.json").exists()
