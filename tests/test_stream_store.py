"""A store of three streams (format 4) through every command: extract, info, train, probe, evaluate, predict,
explain and serve; and the historic two named as streams giving today's store, byte for byte in its records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zarr
from typer.testing import CliRunner

from dfer.cli import app
from dfer.store.reader import open_cache

FIXTURES = Path(__file__).parent / "fixtures" / "acceptance"
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "cremad" / "VideoFlash"
THREE = ["--stream", "face=faceapi", "--stream", "speech=ge2e", "--stream", "prosody=egemaps"]  # the three


def cli(*arguments) -> str:
    result = CliRunner().invoke(app, [str(argument) for argument in arguments], catch_exceptions=False,
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def three_streams(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("streams") / "store"
    cli("extract", "manifest", FIXTURES / "manifest.csv", "--out", store, "--frames", 4, *THREE)
    return store


def test_a_store_records_its_streams_and_resumes_in_its_format(three_streams):
    group = zarr.open_group(str(three_streams), mode="r")
    assert group.attrs["format"] == "dfer-cache/4"
    reader = open_cache(three_streams)
    assert [(s.name, s.input) for s in reader.streams] == [("face", "face"), ("prosody", "waveform"),
                                                           ("speech", "waveform")]
    assert set(reader.fingerprint["streams"]) == {"face", "speech", "prosody"} and "vision" not in reader.fingerprint
    clip = reader.clip(0)
    assert clip["face/tokens"].shape == (4, 49, 256) and clip["speech/tokens"].shape[1] == 256
    assert clip["prosody/tokens"].shape[1] == 25 and "video/tokens" not in clip
    info = cli("info", three_streams)
    assert "stream speech" in info and "ge2e,layer=2 (waveform)" in info
    # the same command again resumes the finished store: nothing to do, nothing changed
    before = json.loads((three_streams / "zarr.json").read_text())["attributes"]
    cli("extract", "manifest", FIXTURES / "manifest.csv", "--out", three_streams, "--frames", 4, *THREE)
    assert json.loads((three_streams / "zarr.json").read_text())["attributes"] == before


def test_three_streams_train_evaluate_predict_explain_and_serve(three_streams, tmp_path):
    run = tmp_path / "heads"
    cli("train", three_streams, "--out", run, "--recipe", FIXTURES / "train.yaml", "--fold", "none")
    config = json.loads((run / "config.json").read_text())
    assert [stream["name"] for stream in config["heads"]["streams"]] == ["face", "prosody", "speech"]
    scored = json.loads(cli("evaluate", run, "--store", three_streams, "--json"))
    assert scored["n"] == 6 and 0 <= scored["UAR"] <= 1
    clip = SAMPLE / "1001_DFA_HAP_XX.flv"
    answer = json.loads(cli("predict", clip, "--model", run, "--json"))
    record = answer[0] if isinstance(answer, list) else answer
    assert abs(sum(record["probs"]) - 1) < 1e-5 and record["has_video"] and record["has_audio"]
    cli("explain", clip, "--model", run, "--out", tmp_path / "explained")
    assert any((tmp_path / "explained").iterdir())

    from fastapi.testclient import TestClient

    from dfer.predict.predictor import Predictor
    from dfer.serve.app import create_app

    with TestClient(create_app(Predictor(run), workers=1)) as client:
        assert client.get("/health").json()["status"] == "ok"
        with clip.open("rb") as file:
            served = client.post("/predict", files={"file": (clip.name, file, "video/x-flv")}).json()
    assert served["probs"] == pytest.approx(record["probs"], abs=1e-3)  # float32 sums in other thread counts


def test_a_selection_of_streams_trains_and_probes_on_them_alone(three_streams, tmp_path):
    cli("train", three_streams, "--out", tmp_path / "voice", "--recipe", FIXTURES / "train.yaml", "--fold", "none",
        "--modalities", "speech,prosody")
    heads = json.loads((tmp_path / "voice" / "config.json").read_text())["heads"]
    assert [stream["name"] for stream in heads["streams"]] == ["prosody", "speech"]
    cli("probe", three_streams, "--out", tmp_path / "probe", "--fold", "none", "--modalities", "audio")
    probe = json.loads((tmp_path / "probe" / "config.json").read_text())["heads"]
    assert [stream["name"] for stream in probe["streams"]] == ["prosody", "speech"]  # audio: every waveform stream


def test_the_historic_streams_named_as_streams_are_todays_store(tmp_path):
    """`--stream video=faceapi --stream audio=ge2e` is `--vision faceapi --audio ge2e`: format 3, the same records."""
    named, aliased = tmp_path / "named", tmp_path / "aliased"
    arguments = ("extract", "manifest", FIXTURES / "manifest.csv", "--frames", 2, "--limit", 2, "--no-keep-media")
    cli(*arguments, "--out", named, "--stream", "video=faceapi", "--stream", "audio=ge2e")
    cli(*arguments, "--out", aliased, "--vision", "faceapi", "--audio", "ge2e")
    attributes = [json.loads((store / "zarr.json").read_text())["attributes"] for store in (named, aliased)]
    assert attributes[0]["format"] == "dfer-cache/3"
    assert attributes[0] == attributes[1]


def test_a_stream_spec_that_does_not_say_its_input_is_refused_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["extract", "manifest", str(FIXTURES / "manifest.csv"), "--out",
                                      str(tmp_path / "s"), "--stream", "x=random:tiny"])
    assert isinstance(result.exception, ValueError)  # `dfer` prints it as one line (dfer.cli.main)
    assert "face:random:tiny or waveform:random:tiny" in str(result.exception)
    assert not (tmp_path / "s").exists()  # refused before anything was made


def test_a_store_of_sound_alone_looks_for_no_face(tmp_path):
    store = tmp_path / "hearing"
    cli("extract", "manifest", FIXTURES / "manifest.csv", "--out", store, "--frames", 2, "--limit", 2,
        "--stream", "speech=ge2e", "--stream", "spectrum=mel")
    reader = open_cache(store)
    assert [stream.name for stream in reader.streams] == ["spectrum", "speech"]
    assert not reader.has("video/landmarks") and not reader.has("video/faces") and reader.has("audio/waveform")
    assert reader.read_all("has_audio").all() and not reader.read_all("has_video").any()  # no face stream to read
    info = json.loads(cli("info", store, "--json"))
    assert info["face_found_ratio"] is None and info["clips_with_audio"] == 2
