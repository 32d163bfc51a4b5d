"""Late fusion across runs (`dfer.predict.ensemble`): the rule, abstaining, shared work, and the default pair of
bundled models (`voice` + `face`) through predict and serve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dfer.media.decode import decode_clip
from dfer.cli.predict import predict
from dfer.predict.ensemble import Ensemble, fuse, load_model
from dfer.predict.predictor import UnusableClip
from dfer.runs.folder import resolve_run
from dfer.predict.timeline import FileTimeline
from dfer.testing.sample import SAMPLE
from dfer.serve.app import create_app
from dfer.testing.synth import write_clip

from acceptance import ATOL, FIXTURES, VOICE_BEFORE, one_thread

HAPPY = SAMPLE / "VideoFlash" / "1001_DFA_HAP_XX.flv"


def test_fusion_is_a_weighted_mean_of_log_probabilities_by_name():
    face = (["happy", "sad"], np.array([0.8, 0.2]), 1.0)
    voice = (["sad", "calm", "happy"], np.array([0.5, 0.3, 0.2]), 3.0)
    names, probs = fuse([face, voice])
    assert names == ["happy", "sad", "calm"]
    score = {"happy": (np.log(0.8) + 3 * np.log(0.2)) / 4, "sad": (np.log(0.2) + 3 * np.log(0.5)) / 4,
             "calm": (np.mean(np.log([0.8, 0.2])) + 3 * np.log(0.3)) / 4}  # face has no calm: its mean log-prob
    expected = np.exp([score[name] for name in names])
    assert np.allclose(probs, expected / expected.sum())
    alone, solo = fuse([face])
    assert alone == ["happy", "sad"] and np.allclose(solo, [0.8, 0.2])  # one member: its own answer


@pytest.fixture(scope="module")
def pair() -> Ensemble:
    return load_model(None)  # no --model: the bundled voice + face


def test_the_default_pair_answers_in_words_with_each_member(pair):
    """The default pair of 7c92bdc (its voice run kept as a fixture: the bundled voice has been retrained since) gives
    the fused answer on the happy clip recorded then (tests/fixtures/acceptance/bundled.json)."""
    assert [member.run.name for member in pair.members] == ["voice", "face"]
    before = Ensemble([VOICE_BEFORE, "face"])
    with one_thread():
        result = before.predict_file(HAPPY)
    recorded = json.loads((FIXTURES / "bundled.json").read_text())[HAPPY.name]["pair"]
    assert set(pair.labels) >= {"calm", "happy", "surprised"} and result["labels"] == pair.labels == recorded["labels"]
    assert result["top1"] == recorded["top1"] == "happy"
    np.testing.assert_allclose(result["probs"], recorded["probs"], rtol=0, atol=ATOL)
    members = {member["run"]: member for member in result["members"]}
    assert set(members) == {"voice", "face"} and not any("abstained" in m for m in members.values())
    assert "calm" in members["voice"]["labels"] and "calm" not in members["face"]["labels"]
    answers = [(m["labels"], np.array(m["probs"]), m["weight"]) for m in members.values()]
    assert np.allclose(result["probs"], fuse(answers)[1], atol=1e-5)  # the record is the rule applied


def test_a_member_without_input_abstains_and_says_why(pair, tmp_path):
    wav = tmp_path / "voice.wav"
    soundfile.write(wav, decode_clip(None, HAPPY, 4, 16000, 8.0).waveform, 16000)
    result = pair.predict_file(wav)  # sound, no video: the face model has nothing to read
    face = next(m for m in result["members"] if m["run"] == "face")
    assert "abstained" in face and "video" in face["abstained"]
    voice = next(m for m in result["members"] if m["run"] == "voice")
    assert np.allclose(result["probs"][: len(voice["labels"])], voice["probs"], atol=1e-5)  # voice alone decides
    assert "face abstained" in result["notes"]


def test_members_share_encoders_and_must_decode_alike(pair, tmp_path):
    again = Ensemble(["face", "face"])
    assert again.members[0].stream_encoders["video"] is again.members[1].stream_encoders["video"]  # one faceapi
    with pytest.raises(ValueError, match="decode a file differently"):
        Ensemble(["face", tmp_path_run(tmp_path)])
    with pytest.raises(ValueError, match="--weights needs 2"):
        Ensemble(["voice", "face"], weights=[1.0])


def tmp_path_run(tmp_path: Path) -> Path:
    """The bundled face run with another window, as a run made with other --max-seconds would be."""
    run = tmp_path / "face16"
    shutil.copytree(resolve_run("face"), run)
    config = json.loads((run / "config.json").read_text())
    config["fingerprint"]["max_seconds"] = 16.0
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_predict_and_serve_with_no_model_fuse_the_pair(pair):
    app = typer.Typer()
    app.command()(predict)
    outcome = CliRunner().invoke(app, [str(HAPPY), "--json"])
    assert outcome.exit_code == 0, outcome.output
    record = json.loads(next(line for line in outcome.stdout.splitlines() if line.startswith("{")))
    assert [m["run"] for m in record["members"]] == ["voice", "face"]
    with TestClient(create_app(pair)) as client:
        served = client.post("/predict?explain=true", files={"file": (HAPPY.name, HAPPY.read_bytes(), "video/x-flv")})
    assert served.status_code == 200, served.text
    body = served.json()
    assert len(body["members"]) == 2 and body["explain"] is None and body["labels"] == pair.labels


def test_every_member_abstaining_is_an_unusable_clip(tmp_path):
    ensemble = Ensemble(["face", "face"])
    with pytest.raises(UnusableClip, match=r"every member abstained \(face: no face; face: no face\)"):
        ensemble.predict_file(write_clip(tmp_path / "nobody.mp4", seconds=1.0))  # a synthetic scene, no face in it
    silent = tmp_path / "silence.wav"
    soundfile.write(silent, np.zeros(16000), 16000)
    with pytest.raises(UnusableClip, match="none of these runs hears"):
        ensemble.predict_file(silent)


def test_a_timeline_of_the_fused_pair(pair):
    rows = list(FileTimeline(pair, HAPPY, 1.0, 0.5))
    assert len(rows) >= 3 and all(row["labels"] == pair.labels and len(row["probs"]) == len(pair.labels)
                                  for row in rows)
    assert all(row["face_found_ratio"] == 1.0 and row["has_audio"] for row in rows)
