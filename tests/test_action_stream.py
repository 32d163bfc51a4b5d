"""Face actions as a stream (`dfer.encoders.actions`, input `frame`): a store with an action stream beside a face and a
voice stream, through extract, info, train, probe, evaluate and predict; its tokens are the FaceActionReader's own
on the same frames; without mediapipe, the store and a run of it fail in one line naming the extra."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dfer.cli import main
from dfer.errors import MissingExtra
from dfer.faces import FaceTrack
from dfer.media.decode import decode_clip
from dfer.store.fingerprint import Fingerprint
from dfer.store.reader import open_cache
from test_stream_store import cli

pytest.importorskip("mediapipe", reason="face actions need mediapipe (pip install 'dfer[actions]')")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "acceptance"
SAMPLE = REPO / "samples" / "cremad" / "VideoFlash" / "1001_DFA_HAP_XX.flv"
STREAMS = ["--stream", "face=faceapi", "--stream", "actions=mediapipe", "--stream", "speech=ge2e"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("actions") / "store"
    cli("extract", "manifest", FIXTURES / "manifest.csv", "--out", path, "--frames", 4, *STREAMS)
    return path


@pytest.fixture(scope="module")
def runs(store, tmp_path_factory) -> dict[str, Path]:
    """Heads of the three streams, and of the action stream alone."""
    folder = tmp_path_factory.mktemp("runs")
    made = {"all": folder / "all", "actions": folder / "actions"}
    for name, run in made.items():
        cli("train", store, "--out", run, "--recipe", FIXTURES / "train.yaml", "--fold", "none",
            *(["--modalities", "actions"] if name == "actions" else []))
    return made


def test_the_store_holds_the_readers_actions_on_the_frames_it_decoded(store):
    reader = open_cache(store)
    assert [(s.name, s.input, s.tokens) for s in reader.streams] == [
        ("actions", "frame", "vector"), ("face", "face", "grid"), ("speech", "waveform", "sequence")]
    entry = reader.fingerprint["streams"]["actions"]
    assert entry["kind"] == "actions" and entry["id"] == "mediapipe" and (entry["dim"], entry["points"]) == (58, 478)
    assert entry["revision"].startswith("mediapipe-") and entry["features"][-6:] == ["yaw", "pitch", "roll", "tx",
                                                                                     "ty", "tz"]
    assert "stream actions" in cli("info", store) and "mediapipe (frame)" in cli("info", store)

    from dfer.encoders.face_actions import FaceActionReader

    fingerprint = Fingerprint.from_dict(reader.fingerprint)
    index = [str(clip).endswith(SAMPLE.stem) for clip in reader.read_all("clip_id")].index(True)
    frames = decode_clip(SAMPLE, None, fingerprint.frames, max_seconds=fingerprint.max_seconds,
                         max_short_side=fingerprint.decode_short_side).frames  # as extraction decoded them
    box = reader.read("video/box", index)  # (T, 4) the crops' boxes: the face's less the margin
    face = FaceTrack(None, box, None, None, None, None, margin=fingerprint.crop_margin).face_box()
    actions = FaceActionReader()(frames, face)
    assert actions.found.all()
    np.testing.assert_array_equal(reader.read("actions/found", index), actions.found)
    expected = np.concatenate([actions.blendshapes, actions.pose], axis=1)  # (T, 58)
    np.testing.assert_allclose(reader.tokens("actions", index), expected, rtol=1e-3, atol=1e-3)  # float16
    np.testing.assert_array_equal(reader.read("actions/landmarks", index), actions.landmarks)
    assert reader.clip(index)["actions/tokens"].shape == (4, 58)


def test_an_action_stream_trains_probes_evaluates_and_predicts(store, runs, tmp_path):
    heads = json.loads((runs["all"] / "config.json").read_text())["heads"]
    assert [(s["name"], s["input"]) for s in heads["streams"]] == [("actions", "frame"), ("face", "face"),
                                                                   ("speech", "waveform")]
    for run in runs.values():
        record = json.loads(cli("predict", SAMPLE, "--model", run, "--json"))
        assert abs(sum(record["probs"]) - 1) < 1e-5 and record["has_video"] and record["face_found_ratio"] == 1.0
    assert not record["has_audio"]  # the action stream alone reads no sound
    scored = json.loads(cli("evaluate", runs["actions"], "--store", store, "--json"))
    assert scored["n"] == 6
    cli("probe", store, "--out", tmp_path / "probe", "--fold", "none", "--modalities", "video")
    probe = json.loads((tmp_path / "probe" / "config.json").read_text())["heads"]
    assert [s["name"] for s in probe["streams"]] == ["actions", "face"]  # video: face crops and whole frames


def test_without_mediapipe_a_store_and_a_run_of_actions_fail_in_one_line(runs, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` now fails as if it were not installed
    monkeypatch.setattr(sys, "argv", ["dfer", "extract", "manifest", str(FIXTURES / "manifest.csv"), "--out",
                                      str(tmp_path / "store"), *STREAMS])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.strip().count("\n") == 0, err
    assert "mediapipe (not installed): pip install 'dfer[actions]'" in err
    assert not (tmp_path / "store").exists()  # refused before anything was made

    from dfer.predict.predictor import Predictor

    with pytest.raises(MissingExtra, match=r"^the actions encoder mediapipe needs mediapipe \(not installed\): "
                                           r"pip install 'dfer\[actions\]'$"):
        Predictor(runs["actions"])
