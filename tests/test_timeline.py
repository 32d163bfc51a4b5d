"""`dfer predict --timeline`: windows over the whole file, the four files, defaults, flat memory, bad input."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from dfer.faces.track import Detections, FaceTrace, continuing_track, plan_track
from dfer.media.stream import WindowReader
from dfer.cli.predict import predict
from dfer.predict.timeline import FileTimeline, default_window, plan_windows, segment_top
from dfer.predict.timeline_files import FIXED, PROB
from dfer.store.reader import open_cache
from dfer.testing.synth import write_clip

VTT_CUE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2}):(\d{2}):(\d{2})\.(\d{3})$")


@pytest.fixture(scope="module")
def run(sample_made) -> Path:
    return sample_made[1]


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(predict)
    return app


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_windows_cover_the_whole_file():
    for duration, window, hop in [(10.0, 2.0, 2 / 3), (7.3, 2.5, 1.0), (2.0, 2.0, 0.5), (60.0, 2.1, 0.7)]:
        spans = plan_windows(duration, window, hop)
        starts = np.array([s for s, _ in spans])
        assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(duration)
        assert all(e - s == pytest.approx(window) for s, e in spans)
        assert np.all(np.diff(starts) <= hop + 1e-6) and np.all(np.diff(starts) > 0)
    assert plan_windows(1.5, 2.0, 0.5) == [(0.0, 1.5)]  # shorter than a window: the whole file once
    with pytest.raises(ValueError):
        plan_windows(10.0, 2.0, 0.0)


def test_default_window_is_the_runs_clip_length(run, tmp_path):
    config = json.loads((run / "config.json").read_text())
    spans = open_cache(Path(config["store"])).read_all("span")  # (n, 2)
    train = [list(open_cache(Path(config["store"])).read_all("clip_id").astype(str)).index(c)
             for c in config["split"]["train"]]
    assert config["clip_seconds"] == pytest.approx(float(np.median(spans[train, 1] - spans[train, 0])), abs=1e-3)
    assert default_window(config) == (config["clip_seconds"], "the run's clip_seconds")
    old = {key: value for key, value in config.items() if key != "clip_seconds"}  # a run made before the field
    window, source = default_window(old)
    assert window == pytest.approx(float(np.median(spans[:, 1] - spans[:, 0])), abs=1e-3) and "median" in source
    gone = {**old, "store": str(tmp_path / "moved")}
    assert default_window(gone) == (config["fingerprint"]["max_seconds"],
                                    "the store's max_seconds (the run predates clip_seconds)")


def test_reader_holds_a_few_windows_of_frames_whatever_the_length(tmp_path):
    """Memory is flat: the frames held at once are bounded by the open windows, not the file's length."""
    frames, window, hop, fps = 4, 2.0, 2 / 3, 25
    peaks = []
    for length in (10.0, 30.0):
        path = write_clip(tmp_path / f"{length:g}.mp4", seconds=length, fps=fps, size=(64, 48))
        spans = plan_windows(length, window, hop)
        reader = WindowReader(path, spans, frames)
        clips = list(reader)
        assert [c.span for c in clips] == spans and not reader.notes
        for clip in clips:
            assert clip.frames.shape == (frames, 48, 64, 3)
            assert np.all((clip.frame_time >= 0) & (clip.frame_time <= window))
            assert clip.waveform.shape == (round(window * 16000),)
        peaks.append(reader.peak_frames)
    open_at_once = int(np.ceil((window + 1.0) / hop)) + 1  # a window opens 1 s (the preroll) before its start
    assert max(peaks) <= frames * open_at_once < window * fps  # fewer than one window's worth of decoded frames
    assert peaks[0] == peaks[1]


def test_the_face_is_followed_from_window_to_window():
    """Of two faces, the one the previous window tracked is kept, even when the other is larger; a window without
    any detection is cropped where the face was last seen."""
    big, small = [300, 50, 460, 210], [40, 60, 120, 140]  # x1, y1, x2, y2
    frame = Detections(np.array([big, small], np.float32), np.ones(2, np.float32), np.zeros((2, 5, 2), np.float32))
    detections = [frame] * 3
    tracks = [np.zeros(3, int), np.ones(3, int)]  # the larger face's track first, as candidate_tracks ranks them
    trace = FaceTrace(-0.1, np.array([45, 62, 124, 142], np.float32))  # the small face, just before this window
    assert continuing_track(detections, tracks, np.array([0.0, 0.5, 1.0]), trace) == 1
    far = FaceTrace(-0.1, np.array([200, 300, 230, 330], np.float32))  # nobody there now
    assert continuing_track(detections, tracks, np.array([0.0, 0.5, 1.0]), far) == -1
    empty = [Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))] * 3
    plan = plan_track(empty, np.full(3, -1), (360, 480), 64, 0.25, 5, fallback=trace.box)
    centre = (plan.box[:, :2] + plan.box[:, 2:]) / 2  # (3, 2)
    assert np.allclose(centre, [84.5, 102]) and not plan.face_found.any()


def test_timeline_files_and_per_file_errors(run, tmp_path):
    """A broken file found in a folder is that file's error record; the others still get their timelines."""
    (tmp_path / "clips").mkdir()
    write_clip(tmp_path / "clips" / "talk.mp4", seconds=6.0, size=(96, 72))
    (tmp_path / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "timeline"
    result = CliRunner().invoke(cli(), [str(tmp_path / "clips"), "--model", str(run), "--timeline", str(out), "--json"])
    assert result.exit_code == 1, result.output
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.strip().splitlines())}
    assert set(records) == {"broken.mp4", "talk.mp4"} and "error" in records["broken.mp4"]
    assert sorted(p.name for p in out.iterdir()) == ["talk.csv", "talk.jsonl", "talk.png", "talk.vtt"]

    config = json.loads((run / "config.json").read_text())
    window, labels = config["clip_seconds"], config["display_names"]
    with open(out / "talk.csv") as file:
        header, *rows = list(csv.reader(file))
    assert header == FIXED + [PROB + name for name in labels]
    assert len(rows) == records["talk.mp4"]["windows"] > 3
    starts, ends = np.array([float(r[0]) for r in rows]), np.array([float(r[1]) for r in rows])
    assert starts[0] == 0 and ends[-1] == pytest.approx(6.0, abs=0.05)
    assert np.allclose(np.diff(starts)[:-1], window / 3, atol=2e-3)  # the default hop
    assert np.allclose(ends - starts, window, atol=2e-3)  # the default window
    for row in rows:
        probs = np.array(row[len(FIXED):], float)
        assert probs.sum() == pytest.approx(1, abs=1e-4) and row[2] == labels[int(probs.argmax())]
        assert row[5] == "1"  # has audio

    windows = [json.loads(line) for line in (out / "talk.jsonl").read_text().splitlines()]
    assert len(windows) == len(rows) and list(windows[0]["probs"]) == labels
    assert segment_top(windows, (0, 6.0)) in labels

    lines = (out / "talk.vtt").read_text().splitlines()
    assert lines[0] == "WEBVTT" and lines[1] == ""
    cues = [VTT_CUE.match(line) for line in lines if "-->" in line]
    assert len(cues) == len(rows) and all(cues)
    bounds = [(seconds(*c.groups()[:4]), seconds(*c.groups()[4:])) for c in cues]
    assert bounds[0][0] == 0 and bounds[-1][1] == pytest.approx(ends[-1], abs=1e-3)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:]))  # contiguous, never overlapping
    texts = [lines[lines.index(line) + 1] for line in lines if "-->" in line]
    assert all(re.fullmatch(rf"({'|'.join(labels)}) [01]\.\d\d", text) for text in texts)
    assert (out / "talk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class Constant:
    """A stand-in model for `FileTimeline` that sees only: the same answer for every window, noting whether a
    reading thread was alive while it answered."""

    max_seconds, frames, sample_rate, hears, frame_short_side, trained_adapt = 8.0, 2, 16000, False, None, False

    def __init__(self):
        self.reading: list[bool] = []

    def check_readable(self, path: Path) -> bool:
        return False

    def predict_clip(self, path, clip, follow=None, group_of=None) -> tuple[dict, None]:
        self.reading.append(any(thread.name == "dfer-prefetch" for thread in threading.enumerate()))
        return {"labels": ["calm", "angry"], "probs": [0.4, 0.6], "face_found_ratio": 1.0, "has_audio": False}, None


def test_windows_are_read_in_the_background_and_stopping_early_leaves_no_thread(tmp_path):
    clip = write_clip(tmp_path / "talk.mp4", seconds=4.0, size=(96, 72))
    model = Constant()
    rows = iter(FileTimeline(model, clip, 1.0, 0.5))
    assert [next(rows)["top"] for _ in range(2)] == ["angry", "angry"]
    rows.close()
    assert model.reading == [True, True]
    assert not [thread for thread in threading.enumerate() if thread.name == "dfer-prefetch"]
    assert len(list(FileTimeline(model, clip, 1.0, 0.5))) == len(plan_windows(4.0, 1.0, 0.5))


def test_window_and_hop_options(run, tmp_path):
    clip = write_clip(tmp_path / "short.mp4", seconds=3.0, size=(96, 72))
    result = CliRunner().invoke(cli(), [str(clip), "--model", str(run), "--timeline", str(tmp_path / "t"),
                                        "--window", "1.0", "--hop", "0.5"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "t" / "short.csv") as file:
        spans = [(float(r["start"]), float(r["end"])) for r in csv.DictReader(file)]
    assert spans == plan_windows(3.0, 1.0, 0.5) == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, 3.0)]


@pytest.mark.slow
def test_a_long_file_agrees_with_its_clips_block_by_block(tmp_path):
    """The done-when check: `make demo`'s run, LONG.mp4 = the six sample clips each three times in a row; the
    timeline covers the whole file and, in at least 5 of the 6 blocks, the most common top emotion of the windows
    inside the block is what `dfer predict` says of the clip alone (bench/timeline_blocks.py; minutes on CPU)."""
    root = Path(__file__).resolve().parents[1]
    dfer = [sys.executable, "-m", "dfer"]
    subprocess.run([*dfer, "extract", "cremad", "samples/cremad", "--out", str(tmp_path / "cache"),
                    "--recipe", "recipes/demo/extract.yaml"], cwd=root, check=True, capture_output=True)
    subprocess.run([*dfer, "train", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
                    "--recipe", "recipes/demo/train.yaml"], cwd=root, check=True, capture_output=True)
    out = subprocess.run([sys.executable, "bench/timeline_blocks.py", "--model", str(tmp_path / "run")], cwd=root,
                         check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["covered"] == [0.0, pytest.approx(result["duration"], abs=0.05)]
    assert result["agree"] >= 5, out.stdout
