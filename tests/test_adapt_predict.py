"""Adapted prediction on real clips (the six sample clips of CREMA-D speaker 1001) with the bundled `voice`: groups,
lone clips, saved statistics, the fused default's zero-shot member, and timelines adapted over a file's windows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dfer.adapt.saved import load_statistics, merged
from dfer.cli import app
from dfer.predict.adapted import file_groups, predict_adapted
from dfer.predict.ensemble import load_model
from dfer.predict.predictor import Predictor, predict_paths
from dfer.predict.timeline import FileTimeline

REPO = Path(__file__).resolve().parents[1]
CLIPS = sorted((REPO / "samples" / "cremad" / "VideoFlash").glob("*.flv"))


def answers(records: list[dict]) -> list[dict]:
    """Records without their timings."""
    return [{key: value for key, value in record.items() if key != "seconds"} for record in records]


@pytest.fixture(scope="module")
def voice() -> Predictor:
    return Predictor("voice")


def test_files_group_by_folder_together_or_alone():
    files = [Path("a/1.wav"), Path("b/2.wav"), Path("a/3.wav")]
    assert file_groups(files, "folder") == [[Path("a/1.wav"), Path("a/3.wav")], [Path("b/2.wav")]]
    assert file_groups(files, "together") == [files]
    assert file_groups(files, "none") == [[f] for f in files]


def test_a_group_is_standardised_with_its_own_statistics_and_none_is_todays_answer(voice):
    plain = list(predict_paths(voice, CLIPS))
    assert answers(predict_adapted(voice, CLIPS, "none")) == answers(plain)  # the default: exactly today's answers
    together = list(predict_adapted(voice, CLIPS, "together"))
    assert all(r["notes"].endswith("adapted to its group of 6 clips") for r in together)
    # by hand: the six clips' moments, the run's prior and shrink, the heads on the standardised tokens
    encoded = [voice.encode_clip(p, voice.decode(p)[0]) for p in CLIPS]
    group = merged(*(voice.moments(e) for e in encoded))
    assert set(voice.adapt_keys) == {"speech", "acoustic"}  # GE2E and the acoustic measures, each its own statistics
    for stream, key in voice.adapt_keys.items():
        mean, std = group[key].standardiser(voice.prior[stream], voice.shrink)
        tokens = [e.row[f"{stream}/tokens"][:int(e.row[f"{stream}/length"])].astype(np.float64) for e in encoded]
        assert group[key].clips == 6 and np.allclose(group[key].mean * group[key].count, sum(t.sum(0) for t in tokens))
        assert np.all(std > 0) and tokens[0].shape[1] == mean.shape[0]
    assert voice.score(encoded[0], group)["probs"] == together[0]["probs"]
    assert together[0]["probs"] != plain[0]["probs"]


def test_a_lone_clip_falls_back_and_says_so(voice):
    record = next(predict_adapted(voice, CLIPS[:1], "together"))
    assert record["notes"] == "not adapted: a group of one clip (the training set's statistics)"
    assert record["probs"] == next(predict_paths(voice, CLIPS[:1]))["probs"]


def test_saved_statistics_let_a_later_lone_clip_join_its_speakers_recordings(voice, tmp_path):
    runner = CliRunner()
    folder = tmp_path / "me"
    folder.mkdir()
    for clip in CLIPS[1:]:
        shutil.copy(clip, folder)
    saved = tmp_path / "me.stats"
    result = runner.invoke(app, ["predict", str(folder), "--model", "voice", "--adapt", "together",
                                 "--save-statistics", str(saved), "--json"])
    assert result.exit_code == 0, result.output
    assert [load_statistics(saved)[key].clips for key in voice.adapt_keys.values()] == [5, 5]
    result = runner.invoke(app, ["predict", str(CLIPS[0]), "--model", "voice", "--statistics", str(saved), "--json"])
    later = json.loads(result.stdout)
    together = next(predict_adapted(voice, CLIPS, "together"))  # the same six clips as one group
    assert later["probs"] == together["probs"] and later["notes"].endswith("group of 6 clips")


def test_the_fused_default_adapts_the_voice_and_leaves_the_zero_shot_face_as_it_is():
    fused = load_model(None)
    records = list(predict_adapted(fused, CLIPS[:2], "together"))
    face = {m["run"]: m for m in records[0]["members"]}["face"]
    alone = next(predict_paths(Predictor("face"), CLIPS[:1]))
    assert face["probs"] == alone["probs"]
    assert "face: not adapted: a zeroshot run reads its encoder's tokens as they are" in records[0]["notes"]
    assert "voice: adapted to its group of 2 clips" in records[0]["notes"]


def test_a_timeline_adapts_causally_over_the_files_own_windows(voice):
    timeline = FileTimeline(voice, CLIPS[0], window=0.8, hop=0.4, adapt="file")
    rows = list(timeline)
    assert len(rows) >= 3 and "adapted" in timeline.notes[-1]
    plain = list(FileTimeline(voice, CLIPS[0], window=0.8, hop=0.4, adapt="none"))
    assert rows[0]["probs"] == plain[0]["probs"]  # the first window is a group of one
    assert rows[-1]["probs"] != plain[-1]["probs"]


def test_a_serve_session_adapts_later_recordings_to_the_earlier_ones(voice):
    from fastapi.testclient import TestClient

    from dfer.serve.app import create_app

    def post(client, clip, **form):
        response = client.post("/predict", files={"file": (clip.name, clip.read_bytes(), "video/x-flv")}, data=form)
        assert response.status_code == 200, response.text
        return response.json()

    with TestClient(create_app(voice, max_timeline_seconds=0)) as client:
        first = post(client, CLIPS[0], session="me")
        assert first["notes"].endswith("a group of one clip (the training set's statistics)")
        second = post(client, CLIPS[1], session="me")
        assert second["notes"].endswith("adapted to its group of 2 clips")
        together = list(predict_adapted(voice, CLIPS[:2], "together"))
        assert second["probs"] == together[1]["probs"]  # the session so far: the first recording and this one
        other = post(client, CLIPS[1], session="someone else")
        assert other["notes"].endswith("a group of one clip (the training set's statistics)")
        plain = post(client, CLIPS[1])  # without a session nothing changes
        assert plain["probs"] == next(predict_paths(voice, CLIPS[1:2]))["probs"] and plain["notes"] == ""
        assert client.post("/predict", files={"file": (CLIPS[0].name, CLIPS[0].read_bytes(), "video/x-flv")},
                           data={"session": "x" * 129}).status_code == 422


def test_a_timeline_adapting_over_a_long_file_keeps_its_memory_flat(voice, tmp_path):
    """The running statistics are sums of a fixed size: after the first windows, reading more of the file adds
    nothing that stays (a window's audio tokens alone are 400 kB: keeping them would grow by megabytes)."""
    import tracemalloc

    from dfer.testing.synth import write_concatenation

    long = tmp_path / "long.mp4"
    write_concatenation(long, CLIPS, repeat=2)  # about 26 s
    rows = iter(FileTimeline(voice, long, window=1.0, hop=0.5, adapt="file"))
    for _ in range(4):
        next(rows)
    tracemalloc.start()
    try:
        early = tracemalloc.take_snapshot()
        count = 4 + sum(1 for _ in rows)
        late = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in late.compare_to(early, "filename"))
    assert count >= 40 and grown < 256 * 1024, (count, grown)
