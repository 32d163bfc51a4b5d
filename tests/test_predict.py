"""`dfer predict` on raw files: the same numbers as extract + evaluate, per-file errors, folders, saved encoders."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from dfer.encoders.audio import load_audio
from dfer.encoders.vision import load_vision
from dfer.errors import InputError
from dfer.inference.score import predict as run_heads
from dfer.media.clip_error import ClipError
from dfer.cli.predict import predict
from dfer.predict.predictor import FilePredictor, Predictor, UnusableClip, predict_paths
from dfer.runs.load import load_run
from dfer.testing.sample import SAMPLE, SMALL_HEADS
from dfer.store.reader import open_cache
from dfer.testing.synth import write_clip
from dfer.train.config import make_config
from dfer.train.data import CachedClips
from dfer.train.loop import loader_for
from dfer.train.run import train

CLIPS = sorted((SAMPLE / "VideoFlash").glob("*.flv"))


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(predict)  # a one-command app: invoked with the command's own arguments
    return app


def test_raw_file_gives_what_the_cache_gives(sample_made, predictor):
    """Decode, faces and encoders rebuilt from the run's fingerprint reproduce the extraction's tokens exactly."""
    store, run = sample_made
    reader = open_cache(store)
    heads, config = load_run(run)
    clips = CachedClips(reader, [0, 1], config["heads"]["modalities"])
    _, cached = run_heads(heads, loader_for(clips, make_config(None, batch_size=2)), torch.device("cpu"))  # (2, C)
    for index, clip_id in enumerate(reader.read_all("clip_id").astype(str)):
        result = predictor.predict_file(SAMPLE / "VideoFlash" / f"{clip_id}.flv")
        assert result["classes"] == reader.classes
        np.testing.assert_allclose(result["probs"], cached[index], atol=1e-4)  # batch-of-2 vs 1 float noise
        assert result["top1"] == result["labels"][int(cached[index].argmax())]
        assert result["face_found_ratio"] == 1.0 and result["has_audio"] and result["has_video"]
        assert set(result["seconds"]) == {"decode", "faces", "encoders", "heads"}


def test_json_lines_with_per_file_errors_and_exit_1(sample_made, predictor, tmp_path):
    """A bad file found in a folder is that file's failure: the others are still scored."""
    folder = tmp_path / "clips" / "nested"
    folder.mkdir(parents=True)
    shutil.copy(CLIPS[0], folder / CLIPS[0].name)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video either")
    (folder / "notes.txt").write_text("not a video, and not picked up from a folder")
    result = CliRunner().invoke(cli(), [str(tmp_path / "clips"), "--model", str(sample_made[1]), "--json"])
    assert result.exit_code == 1, result.output
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == {CLIPS[0].name, "empty.mp4", "text.mp4"}
    good, alone = records[CLIPS[0].name], predictor.predict_file(CLIPS[0])
    assert (good["labels"], good["probs"], good["top1"]) == (alone["labels"], alone["probs"], alone["top1"])
    assert good["top1"] == good["labels"][int(np.argmax(good["probs"]))]
    assert "empty" in records["empty.mp4"]["error"]
    assert "not a decodable" in records["text.mp4"]["error"]


class Decoding(FilePredictor):
    """A stand-in model over files named 0.mp4, 1.mp4, ...: `decode` marks when it starts on file k (and fails on
    the files in `bad`); the prediction of file k waits until file k + 1's decoding has started."""

    suffixes = {".mp4"}

    def __init__(self, n: int, bad: set[int]):
        self.n, self.bad = n, bad
        self.decoding = [threading.Event() for _ in range(n)]
        self.overlapped: list[int] = []  # files whose prediction saw the next file's decoding begin

    def decode(self, path: Path) -> tuple[int, float]:
        k = int(path.stem)
        self.decoding[k].set()
        if k in self.bad:
            raise ClipError(path, f"file {k} is bad")
        return k, 0.5

    def predict_decoded(self, path: Path, decoded: int, decode_seconds: float) -> dict:
        if decoded + 1 < self.n and self.decoding[decoded + 1].wait(10):
            self.overlapped.append(decoded)
        return {"path": str(path), "top1": decoded, "seconds": {"decode": decode_seconds}}


def test_files_decode_ahead_and_a_bad_one_is_its_own_record_in_order(tmp_path):
    """predict_paths over 0..4.mp4, 2 undecodable: every record in file order, 2's the error; each good file's
    prediction ran while the next file was decoding, and reports its own decode time."""
    for k in range(5):
        (tmp_path / f"{k}.mp4").write_bytes(b"x")
    model = Decoding(5, bad={2})
    records = list(predict_paths(model, [tmp_path, tmp_path / "gone.mp4"]))
    assert records[0] == {"path": str(tmp_path / "gone.mp4"), "error": "file not found"}
    assert [Path(r["path"]).name for r in records[1:]] == [f"{k}.mp4" for k in range(5)]
    assert records[3] == {"path": str(tmp_path / "2.mp4"), "error": "file 2 is bad"}
    assert [r["top1"] for r in records[1:] if "error" not in r] == [0, 1, 3, 4]
    assert all(r["seconds"] == {"decode": 0.5} for r in records[1:] if "error" not in r)
    assert model.overlapped == [0, 1, 3]


@pytest.mark.parametrize("name, reason", [("gone.mp4", "file not found"), ("text.mp4", "not a decodable media file"),
                                          ("empty", "no video, audio or image files")])
def test_a_bad_named_input_stops_before_any_model_loads(sample_made, tmp_path, name, reason):
    """A path named on the command line is checked first: one bad one is the user's mistake, not a file's failure."""
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli(), [str(CLIPS[0]), str(tmp_path / name), "--model", str(sample_made[1]), "--json"])
    assert isinstance(result.exception, InputError) and not result.stdout
    assert str(result.exception).startswith(f"{tmp_path / name}: {reason}")


def test_table_shows_top_k(sample_made):
    result = CliRunner().invoke(cli(), [str(CLIPS[1]), "--model", str(sample_made[1]), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "#2" in result.output and "#3" not in result.output and "100%" in result.output
    assert any(word in result.output for word in ("angry", "disgust", "fearful", "happy", "neutral", "sad"))


def test_labels_are_words_and_classes_the_store_s_codes(sample_made, predictor, tmp_path):
    """CREMA-D's codes ANG, DIS, ... reach people as angry, disgust, ...: predict --json's `labels` and `top1` are
    the words recorded in config.json, `classes` the codes; a run made before the words were recorded gets them
    from its dataset and codes."""
    words = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    config = json.loads((sample_made[1] / "config.json").read_text())
    assert config["classes"] == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"] and config["display_names"] == words
    result = CliRunner().invoke(cli(), [str(CLIPS[0]), "--model", str(sample_made[1]), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["labels"] == config["display_names"] and record["classes"] == config["classes"]
    assert record["top1"] == record["labels"][int(np.argmax(record["probs"]))]
    older = tmp_path / "older"
    shutil.copytree(sample_made[1], older)
    del config["display_names"]
    (older / "config.json").write_text(json.dumps(config))
    assert Predictor(older).labels == predictor.labels == words


def test_missing_model_is_an_error(tmp_path):
    result = CliRunner().invoke(cli(), [str(CLIPS[0]), "--model", str(tmp_path)])
    assert isinstance(result.exception, InputError) and "not a dfer run (no config.json)" in str(result.exception)
    result = CliRunner().invoke(cli(), [str(CLIPS[0]), "--model", "vocie"])
    assert isinstance(result.exception, FileNotFoundError) and "not a bundled model" in str(result.exception)


def test_fine_tuned_encoders_in_the_run_folder_are_preferred(sample_made, predictor, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sample_made[1], run)
    # the same weights the fingerprint names, saved as a fine-tune would save its own
    load_vision("random:tiny", seed=0).save(run / "vision")
    load_audio("random:tiny", seed=0).save(run / "audio")
    tuned = Predictor(run)
    assert tuned.encoders == {"video": str(run / "vision"), "audio": str(run / "audio")}
    np.testing.assert_allclose(tuned.predict_file(CLIPS[0])["probs"], predictor.predict_file(CLIPS[0])["probs"],
                               atol=1e-5)


def test_clips_without_a_stream(sample_made, predictor, tmp_path):
    """An AV model predicts a silent clip from its video; an audio-only model refuses it, naming why."""
    silent = write_clip(tmp_path / "silent.mp4", seconds=1.0, audio=False)
    result = predictor.predict_file(silent)
    assert not result["has_audio"] and result["has_video"] and "no audio stream" in result["notes"]
    train(sample_made[0], tmp_path / "audio-run", make_config(None, fold="none", epochs=1, heads=SMALL_HEADS,
                                                       modalities="audio"), show=False)
    audio_only = Predictor(tmp_path / "audio-run")
    assert set(audio_only.stream_encoders) == {"audio"} and audio_only.cropper is None  # never loaded
    assert audio_only.predict_file(CLIPS[0])["face_found_ratio"] is None
    with pytest.raises(UnusableClip, match="no audio stream"):
        audio_only.predict_file(silent)
