"""The models that ship inside the package: the files `make models` wrote (their recorded SHA-256), addressable by
name, listed by `dfer models`, with cards that load offline, and each predicting a real file in words."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from dfer.cli import app
from dfer.media.decode import decode_clip
from dfer.models import bundled, model_facts
from dfer.predict.predictor import Predictor
from dfer.runs.bundle import sha256
from dfer.runs.folder import resolve_run
from dfer.testing.sample import SAMPLE

from acceptance import ATOL, FIXTURES, VOICE_BEFORE, one_thread

DISGUST = SAMPLE / "VideoFlash" / "1001_DFA_DIS_XX.flv"
HAPPY = SAMPLE / "VideoFlash" / "1001_DFA_HAP_XX.flv"


def test_the_committed_weights_are_the_ones_make_models_wrote():
    assert set(bundled()) == {"voice", "face"}
    for name, folder in bundled().items():
        recorded = json.loads((folder / "model.json").read_text())
        assert sha256(folder / "best.safetensors") == recorded["sha256"], f"{name}: weights differ from model.json"
        config = json.loads((folder / "config.json").read_text())
        assert not config["store"].startswith("/")  # no path of the machine that built it


def test_names_resolve_and_folders_win(tmp_path, monkeypatch):
    assert resolve_run("voice") == bundled()["voice"]
    with pytest.raises(FileNotFoundError, match="not a bundled model \\(face, voice\\)"):
        resolve_run("vocie")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "voice").mkdir()
    assert resolve_run("voice") == tmp_path.joinpath("voice").relative_to(tmp_path)  # a folder of that name wins


def test_dfer_models_lists_what_a_user_needs_to_choose():
    outcome = CliRunner().invoke(app, ["models", "--json"])
    assert outcome.exit_code == 0, outcome.output
    listed = {model["name"]: model for model in json.loads(outcome.stdout)}
    assert listed["voice"]["modalities"] == "speech,acoustic" and "calm" in listed["voice"]["classes"]
    assert listed["voice"]["encoders"] == {"speech": "ge2e,layer=2", "acoustic": "acoustic"}
    assert listed["face"]["modalities"] == "video" and listed["face"]["encoders"] == {"video": "faceapi"}
    for model in listed.values():
        for key in ("folder", "training_data", "training_data_licence", "headline", "protocol", "limitations"):
            assert model[key], f"{model['name']}: no {key}"
    assert "CC BY-NC-SA" in listed["voice"]["training_data_licence"]
    assert listed["face"]["scored"]["n"] == 8
    assert model_facts("face")["classes"][5] == "disgust"


def test_each_card_loads_offline_with_its_licence_datasets_and_results(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, folder in bundled().items():
        card = ModelCard.load(folder / "README.md")
        assert card.data.license == "apache-2.0" and card.data.datasets, name
        assert "Limitations" in card.text
    voice = ModelCard.load(bundled()["voice"] / "README.md")
    assert "non-commercial" in voice.text.lower() and "CREMA-D" in voice.text
    face = ModelCard.load(bundled()["face"] / "README.md")
    assert face.data.eval_results and face.data.eval_results[0].metric_value == pytest.approx(0.625)


def test_voice_hears_a_recording_and_face_sees_a_video(tmp_path):
    """The voice of 7c92bdc (kept as a fixture: the bundled one has been retrained with adaptation since) and the
    bundled face answer the disgust clip as recorded then (tests/fixtures/acceptance/bundled.json), the voice also
    from a 16-bit recording of the clip's sound: the same answer, give or take the quantisation. The bundled voice
    of now hears the happy clip as happy, from the video file and from a recording of its sound alike."""
    recorded = json.loads((FIXTURES / "bundled.json").read_text())[DISGUST.name]
    wav, happy_wav = tmp_path / "disgust.wav", tmp_path / "happy.wav"
    soundfile.write(wav, decode_clip(None, DISGUST, 4, 16000, 8.0).waveform, 16000)
    soundfile.write(happy_wav, decode_clip(None, HAPPY, 4, 16000, 8.0).waveform, 16000)
    with one_thread():
        before, voice, face = Predictor(VOICE_BEFORE), Predictor("voice"), Predictor("face")
        heard, recording, seen = before.predict_file(DISGUST), before.predict_file(wav), face.predict_file(DISGUST)
        happy, happy_recording = voice.predict_file(HAPPY), voice.predict_file(happy_wav)
    assert heard["top1"] == recorded["voice"]["top1"] == "happy" and heard["labels"] == recorded["voice"]["labels"]
    np.testing.assert_allclose(heard["probs"], recorded["voice"]["probs"], rtol=0, atol=ATOL)
    assert recording["top1"] == "happy" and recording["has_audio"] and not recording["has_video"]
    np.testing.assert_allclose(recording["probs"], recorded["voice"]["probs"], rtol=0, atol=3e-3)
    assert seen["top1"] == recorded["face"]["top1"] == "disgust" and seen["face_found_ratio"] == 1.0
    np.testing.assert_allclose(seen["probs"], recorded["face"]["probs"], rtol=0, atol=ATOL)
    assert happy["top1"] == happy_recording["top1"] == "happy"
    # pYIN's voicing on the quantised samples moves the acoustic stream a little more than GE2E's mel frames move
    np.testing.assert_allclose(happy_recording["probs"], happy["probs"], rtol=0, atol=1e-2)
