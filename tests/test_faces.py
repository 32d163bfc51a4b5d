"""Face tracks, borrowing and smoothing (pure numpy), and FaceCropper on synthetic and real CREMA-D clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfer.faces import FaceCropper, FaceTrack, whole_frame_track
from dfer.faces.track import Detections, candidate_tracks, centre_square, plan_track, running_median
from dfer.media.decode import decode_clip
from dfer.testing.synth import write_clip

REPO = Path(__file__).resolve().parents[1]
CREMAD = REPO / "samples" / "cremad" / "VideoFlash"
S = 224


def _face(x1: float, y1: float, side: float, prob: float = 0.99) -> tuple[np.ndarray, float, np.ndarray]:
    """A square face box with a plausible 5-point layout inside it."""
    box = np.array([x1, y1, x1 + side, y1 + side], np.float32)
    layout = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]], np.float32)  # (5, 2)
    return box, prob, np.array([x1, y1], np.float32) + layout * side


def _frame(*faces) -> Detections:
    if not faces:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
    boxes, probs, points = zip(*faces)
    return Detections(np.stack(boxes), np.array(probs, np.float32), np.stack(points))


def test_missed_frames_borrow_the_nearest_detected_box():
    dets = [_frame(_face(100 + 4 * t, 50, 80)) if t in (0, 2, 5) else _frame() for t in range(7)]
    plan = plan_track(dets, candidate_tracks(dets)[0], (360, 480), S, margin=0.25, smooth=1)
    assert plan.face_found.tolist() == [True, False, True, False, False, True, False]
    assert plan.detect_prob[plan.face_found] == pytest.approx(0.99) and not plan.detect_prob[~plan.face_found].any()
    source = [0, 0, 2, 2, 5, 5, 5]  # frame 1 is as near to 0 as to 2: the earlier wins
    np.testing.assert_array_equal(plan.box, plan.box[source])
    np.testing.assert_array_equal(plan.landmarks, plan.landmarks[source])
    side = 80 * 1.5  # margin 0.25 on each side
    np.testing.assert_allclose(plan.box[0], [140 - side / 2, 90 - side / 2, 140 + side / 2, 90 + side / 2])
    left_eye = [(0.3 * 80 + 20) * S / side, (0.4 * 80 + 20) * S / side]  # 20 px of margin before the face box
    np.testing.assert_allclose(plan.landmarks[0, 0], left_eye, rtol=1e-5)


def test_the_track_follows_one_face_when_two_are_present():
    # A: large, drifting right; B: smaller, still, and listed first or more confident on some frames
    T = 8
    dets = []
    for t in range(T):
        a = _face(60 + 6 * t, 60, 120, prob=0.95)
        b = _face(330, 80, 70, prob=0.999)
        if t == 3:
            dets.append(_frame(b))  # A missed: the track must not jump to B
        else:
            dets.append(_frame(b, a) if t % 2 else _frame(a, b))
    tracks = candidate_tracks(dets)
    assert [track.tolist() for track in tracks] == [[0, 1, 0, -1, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0, 1, 0]]  # A, then B
    plan = plan_track(dets, tracks[0], (360, 480), S, margin=0.25, smooth=5)
    assert not plan.face_found[3]
    centres = (plan.box[:, 0] + plan.box[:, 2]) / 2
    assert np.all(np.abs(centres - (120 + 6 * np.arange(T))) <= 12)  # always on A (x centre 120 + 6t), never on B


def test_the_seed_is_the_largest_confident_face_even_if_it_appears_late():
    dets = [_frame(_face(300, 100, 40))] * 3 + [_frame(_face(300, 100, 40), _face(50, 50, 150))] * 3
    assert [track.tolist() for track in candidate_tracks(dets)] == [[-1, -1, -1, 1, 1, 1], [0, 0, 0, 0, 0, 0]]


def test_a_clip_without_faces_gets_a_centre_crop_and_says_so():
    assert candidate_tracks([_frame() for _ in range(4)]) == []
    plan = plan_track([_frame() for _ in range(4)], np.full(4, -1), (120, 160), S, margin=0.25, smooth=5)
    np.testing.assert_array_equal(plan.box, np.tile(centre_square(120, 160), (4, 1)))
    np.testing.assert_array_equal(centre_square(120, 160), [20, 0, 140, 120])
    assert not plan.face_found.any() and np.isnan(plan.landmarks).all() and not plan.detect_prob.any()


def test_running_median_drops_a_one_frame_outlier_and_keeps_steady_motion():
    x = np.arange(9, dtype=np.float32)[:, None] * 2  # steady motion
    x_out = x.copy()
    x_out[4] = 100  # one wrong box
    np.testing.assert_array_equal(running_median(x, 5)[2:-2], x[2:-2])
    assert running_median(x_out, 5)[4, 0] == pytest.approx(8.0, abs=2)


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper(image_size=S, device="cpu")


def test_frames_without_a_face(cropper):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 40, (1, 120, 160, 3), dtype=np.uint8), 4, axis=0)  # (4, 120, 160, 3) dark noise
    track = cropper(frames)
    assert isinstance(track, FaceTrack) and track.faces.shape == (4, 3, S, S) and track.faces.dtype == np.uint8
    assert not track.face_found.any() and np.isnan(track.landmarks).all()
    np.testing.assert_array_equal(track.box[0], [20, 0, 140, 120])
    assert (track.choice.rank, track.choice.count, track.choice.note()) == (-1, 0, "")


def test_precropped_frames_are_resized_whole_without_detection():
    frames = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)  # (3, 112, 112, 3)
    track = whole_frame_track(frames, 56)
    assert track.faces.shape == (3, 3, 56, 56) and track.face_found.all() and np.isnan(track.landmarks).all()
    np.testing.assert_array_equal(track.box, np.tile([0, 0, 112, 112], (3, 1)))
    assert track.choice.note() == "pre-cropped face frames: no detection"
    # a 2x shrink averages 2x2 pixels
    np.testing.assert_allclose(track.faces[0, :, 0, 0], frames[0, :2, :2].reshape(4, 3).mean(axis=0), atol=1)


def _cremad_clips() -> list[Path]:
    clips = sorted(CREMAD.glob("*.flv"))
    if not clips:
        pytest.skip(f"no CREMA-D samples in {CREMAD}")
    return clips


def test_pasted_real_face_is_found_in_a_synthetic_clip(tmp_path, cropper):
    frame = decode_clip(_cremad_clips()[0], None, frames=1).frames[0]  # (360, 480, 3)
    face = frame[30:270, 120:320]  # the actor's head with some green around it
    path = write_clip(tmp_path / "face.mp4", seconds=1.0, size=(320, 240), face=face)
    track = cropper(decode_clip(path, path).frames)
    assert track.face_found.mean() >= 0.9
    assert np.all((track.landmarks >= 0) & (track.landmarks <= S))


def test_real_cremad_faces(cropper):
    for path in _cremad_clips():
        frames = decode_clip(path, path).frames  # (16, 360, 480, 3)
        track = cropper(frames)
        assert track.faces.shape == (16, 3, S, S) and track.box.dtype == np.float32
        assert track.face_found.mean() >= 0.95, path.name
        assert np.all(track.detect_prob[track.face_found] >= 0.9)
        cx, cy = (track.box[:, 0] + track.box[:, 2]) / 2, (track.box[:, 1] + track.box[:, 3]) / 2
        assert np.all((0 < cx) & (cx < 480) & (0 < cy) & (cy < 360))
        assert np.all((track.landmarks >= 0) & (track.landmarks <= S))
        eyes_y, mouth_y = track.landmarks[:, :2, 1].mean(), track.landmarks[:, 3:, 1].mean()
        assert eyes_y < mouth_y  # upright face, points in the documented order
        assert track.faces.mean() > 40  # a face, not the black padding
