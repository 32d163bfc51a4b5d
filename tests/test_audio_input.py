"""Audio files as input: a run that hears reads a voice recording (a file with sound and no video, whatever its
suffix) in predict, --timeline and serve; a run that only sees answers it with one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dfer.media.decode import decode_clip
from dfer.cli.predict import predict
from dfer.predict.predictor import Predictor, UnusableClip
from dfer.testing.sample import SAMPLE
from dfer.serve.app import create_app


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> Path:
    """A folder of the sample's own voice as .wav and .flac, and a text file that is not media."""
    folder = tmp_path_factory.mktemp("voices")
    for clip in sorted((SAMPLE / "VideoFlash").glob("*.flv"))[:2]:
        wave = decode_clip(None, clip, 4, 16000, 8.0).waveform  # (S,) the clip's own soundtrack
        soundfile.write(folder / f"{clip.stem}.wav", wave, 16000)
    soundfile.write(folder / "third.flac", np.sin(np.arange(24000) / 9.0) * 0.3, 16000)
    (folder / "notes.txt").write_text("not audio")
    return folder


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(predict)
    return app


def test_an_av_run_predicts_a_folder_of_voice_recordings(predictor, voices):
    results = {path.name: predictor.predict_file(path) for path in sorted(voices.glob("*.wav"))}
    for result in results.values():
        assert result["has_audio"] and not result["has_video"] and result["face_found_ratio"] is None
        assert abs(sum(result["probs"]) - 1) < 1e-4 and result["top1"] == result["labels"][np.argmax(result["probs"])]
    outcome = CliRunner().invoke(cli(), [str(voices), "--model", str(predictor.run), "--json"])
    assert outcome.exit_code == 0, outcome.output
    records = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("{")]
    printed = {Path(record["path"]).name: record for record in records}
    assert sorted(printed) == ["1001_DFA_ANG_XX.wav", "1001_DFA_DIS_XX.wav", "third.flac"]  # not notes.txt
    for name, result in results.items():  # the command's answer is the model's
        assert (printed[name]["probs"], printed[name]["top1"]) == (result["probs"], result["top1"])


def test_a_timeline_of_a_voice_recording(predictor, voices, tmp_path):
    wav = sorted(voices.glob("*.wav"))[0]
    outcome = CliRunner().invoke(cli(), [str(wav), "--model", str(predictor.run), "--timeline", str(tmp_path),
                                         "--window", "1.0", "--hop", "0.5"])
    assert outcome.exit_code == 0, outcome.output
    rows = (tmp_path / f"{wav.stem}.csv").read_text().splitlines()
    assert len(rows) >= 3 and rows[1].startswith("0.0,1.0,")


def test_serve_takes_an_audio_upload(predictor, voices):
    wav = sorted(voices.glob("*.wav"))[0]
    with TestClient(create_app(predictor)) as client:
        answer = client.post("/predict", files={"file": ("voice", wav.read_bytes(), "audio/wav")})  # no suffix
    assert answer.status_code == 200, answer.text
    assert answer.json()["has_audio"] and answer.json()["face_found_ratio"] is None


def test_a_run_that_only_sees_refuses_an_audio_file_in_one_line(voices):
    face = Predictor("face")  # the bundled zero-shot face model
    with pytest.raises(UnusableClip, match="an audio file, and this run's model is video-only"):
        face.predict_file(voices / "third.flac")
    outcome = CliRunner().invoke(cli(), [str(voices / "third.flac"), "--model", "face"])
    assert "third.flac" in outcome.output and "video-only" in outcome.output
