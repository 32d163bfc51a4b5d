"""The `acoustic` family: pitch, voicing, loudness and spectral shape every 10 ms with librosa, on ge2e's frames; a
tone's pitch and level read back, unvoiced frames carried, the same in a padded batch as alone, and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dfer.encoders import build_encoder
from dfer.encoders.acoustic import FEATURES, carried_pitch
from dfer.encoders.ge2e import power_mel
from dfer.encoders.librosa_kernels import librosa_module
from dfer.store.reader import open_cache

from acceptance import cli

REPO = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope="module")
def acoustic():
    return build_encoder("audio", "acoustic")


def _tone(hz: float, seconds: float, amplitude: float = 0.2, seed: int = 0, noise: float = 1e-3) -> np.ndarray:
    """A harmonic tone at `hz` in faint noise, (S,) float32."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * k * hz * t) / k for k in range(1, 6))
    noise = noise * np.random.default_rng(seed).standard_normal(len(t))
    return (amplitude * tone + noise).astype(np.float32)


def _tokens(acoustic, wave: np.ndarray) -> torch.Tensor:
    tokens, length = acoustic(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    return tokens[0, : int(length[0])]  # (F, 30)


def test_a_tone_reads_back_its_pitch_and_level_on_ge2es_frames(acoustic):
    wave = _tone(220.0, 1.0, noise=1e-2)  # noise above the spectrum's floor at half the level too, so shape holds
    tokens = _tokens(acoustic, wave)
    assert tokens.shape == (len(power_mel(wave)), len(FEATURES)) == (1 + len(wave) // 160, 30)
    middle = tokens[10:-10]  # clear of the clip's edges
    f0, voicing = middle[:, FEATURES.index("f0")], middle[:, FEATURES.index("voicing")]
    torch.testing.assert_close(f0, torch.full_like(f0, 12 * np.log2(220 / 27.5)), atol=0.1, rtol=0)  # 36 semitones
    assert voicing.min() > 0.05
    quieter = _tokens(acoustic, wave / 2)[10:-10, FEATURES.index("loudness")]
    torch.testing.assert_close(middle[:, FEATURES.index("loudness")] - quieter,
                               torch.full_like(quieter, 20 * np.log10(2)), atol=0.05, rtol=0)  # half the level: -6 dB
    shape = [FEATURES.index(name) for name in ("centroid", "bandwidth", "rolloff")]
    torch.testing.assert_close(middle[:, shape], _tokens(acoustic, wave / 2)[10:-10, shape], atol=0.05, rtol=0)


def test_pitch_follows_a_glide_and_is_carried_across_silence(acoustic):
    """A tone gliding 150 -> 300 Hz, then 300 ms of silence, then 200 Hz: the pitch rises an octave (12 semitones)
    over the glide and moves straight from 300 to 200 Hz across the silence, whose voicing is near zero."""
    t = np.arange(SR) / SR
    glide = 0.2 * np.sin(2 * np.pi * np.cumsum(150 * 2 ** t) / SR)
    wave = np.concatenate([glide, np.zeros(int(0.3 * SR)), _tone(200.0, 0.5)]).astype(np.float32)
    tokens = _tokens(acoustic, wave)
    f0, voicing = tokens[:, FEATURES.index("f0")].numpy(), tokens[:, FEATURES.index("voicing")].numpy()
    semitones = lambda hz: 12 * np.log2(hz / 27.5)  # noqa: E731
    assert abs(f0[10] - semitones(150 * 2 ** 0.1)) < 0.3 and abs(f0[90] - semitones(150 * 2 ** 0.9)) < 0.3
    assert abs(f0[150] - semitones(200)) < 0.3
    middle = (semitones(300) + semitones(200)) / 2  # the silence's middle (frame 115), half way along the line
    assert abs(f0[115] - middle) < 1 and np.all(np.diff(f0[102:128]) < 0)
    assert voicing[105:125].max() < 0.01 and voicing[140:-10].min() > 0.05
    assert np.isfinite(tokens.numpy()).all()


def test_a_16_bit_recording_of_a_clip_measures_as_the_clip(acoustic):
    """A voice with nothing above 1 kHz, as codecs leave bands empty, and its 16-bit recording: the same measures, within
    a tenth of each value's spread over the clip. Without the spectrum's floor, the empty bands' contrast moved by
    standard deviations."""
    t = np.arange(SR) / SR
    wave = (0.1 * sum(np.sin(2 * np.pi * k * 180 * t) / k for k in range(1, 6)) * (1 + np.sin(2 * np.pi * 3 * t)))
    recorded = np.round(wave * 32767) / 32767  # (S,) what a 16-bit file keeps
    clean = _tokens(acoustic, wave.astype(np.float32)).numpy()  # (F, 30)
    quantised = _tokens(acoustic, recorded.astype(np.float32)).numpy()
    spread = clean.std(0) + 1e-3  # (30,) a value that never moves needs to stay within 1e-4 of itself
    moved = np.abs(clean - quantised) / spread  # (F, 30)
    zcr = FEATURES.index("zcr")  # a crossing more or less where the wave nears zero: 1/512, a large part of a tone's
    assert np.delete(moved, zcr, axis=1).max() < 0.1 and np.abs(clean - quantised)[:, zcr].max() <= 2 / 512


def test_carried_pitch_interpolates_holds_and_has_a_value_without_voice():
    f0 = np.array([np.nan, 110.0, np.nan, np.nan, 220.0, np.nan])
    np.testing.assert_allclose(carried_pitch(f0), [24, 24, 28, 32, 36, 36], atol=1e-5)
    assert carried_pitch(np.full(4, np.nan)).tolist() == [0, 0, 0, 0]


def test_padded_batch_is_each_clip_alone(acoustic):
    lengths = [16000, 9000, 700, 100]  # the last two are shorter than pYIN's 64 ms frame
    waves = [_tone(120.0 + 40 * i, n / SR, seed=i)[:n] for i, n in enumerate(lengths)]
    batch = torch.from_numpy(10 * np.random.default_rng(2).standard_normal((4, max(lengths))).astype(np.float32))
    for row, wave in zip(batch, waves):
        row[: len(wave)] = torch.from_numpy(wave)  # loud noise past each length, which must not reach its tokens
    tokens, length = acoustic(batch, torch.tensor(lengths))
    assert length.tolist() == [1 + n // 160 for n in lengths] and tokens.shape == (4, 101, 30)
    for row, n, wave in zip(tokens, length.tolist(), waves):
        torch.testing.assert_close(row[:n], _tokens(acoustic, wave))
        assert not row[n:].any() and torch.isfinite(row).all()


def test_record_names_the_measures_and_there_is_nothing_to_train(acoustic, tmp_path):
    record = acoustic.describe()
    assert record["id"] == "acoustic" and record["revision"] == f"librosa-{librosa_module().__version__},v2"
    assert (record["dim"], record["frame_seconds"], record["sample_rate"]) == (30, 0.01, 16000)
    assert record["features"] == list(FEATURES)
    with pytest.raises(ValueError, match="acoustic audio family has no weights to fine-tune"):
        acoustic.parts()
    with pytest.raises(ValueError, match="takes no options"):
        build_encoder("audio", "acoustic,layer=2")


@pytest.mark.slow
def test_a_stream_beside_ge2e_from_extract_to_predict(tmp_path):
    store, sample = tmp_path / "store", REPO / "samples" / "cremad"
    cli("extract", "cremad", sample, "--out", store, "--stream", "speech=ge2e", "--stream", "acoustic=acoustic")
    cache = open_cache(store)
    tokens = cache.read("acoustic/tokens", 0)
    assert tokens.shape[1] == 30 and np.isfinite(tokens.astype(np.float32)).all()
    assert len(tokens) == len(cache.read("speech/tokens", 0))  # the same 10 ms frames as GE2E
    cli("train", store, "--out", tmp_path / "run", "--fold", "none", "--epochs", "1")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert [stream["name"] for stream in config["heads"]["streams"]] == ["acoustic", "speech"]
    assert config["fingerprint"]["streams"]["acoustic"]["id"] == "acoustic"
    clip = sample / "VideoFlash" / "1001_DFA_ANG_XX.flv"
    answer = json.loads(cli("predict", clip, "--model", tmp_path / "run", "--json"))  # rebuilt from the run
    assert len(answer["probs"]) == 6 and abs(sum(answer["probs"]) - 1) < 1e-4
