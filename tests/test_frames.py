"""Frame folders (a dataset's own face crops) decoded like a clip: order, sampling, times, audio and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfer.media.clip_error import ClipError
from dfer.media.frames import decode_frame_folder
from dfer.testing.synth import write_clip


def frames_folder(folder: Path, count: int, name=lambda y: f"7_{y}.jpg") -> Path:
    """Frame y (from 1) is a flat grey picture of level 10 * y, so a decoded frame tells which image it was."""
    folder.mkdir(parents=True, exist_ok=True)
    for y in range(1, count + 1):
        Image.fromarray(np.full((24, 32, 3), 10 * y, np.uint8)).save(folder / name(y), quality=95)
    return folder


def which(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 10) for f in frames]


def test_frames_are_sampled_in_number_order_and_timed_at_the_nominal_rate(tmp_path):
    folder = frames_folder(tmp_path / "7", 12)  # 7_1.jpg ... 7_12.jpg: unpadded, so name order would put 10 first
    (folder / "notes.txt").write_text("not a frame")
    d = decode_frame_folder(folder, None, frames=4, fps=10)
    assert d.frames.shape == (4, 24, 32, 3) and d.waveform is None and d.notes == []
    assert which(d.frames) == [2, 5, 8, 11]  # the middle of each quarter of 12 frames
    np.testing.assert_allclose(d.frame_time, (np.array([1, 4, 7, 10]) + 0.5) / 10, atol=1e-6)
    assert d.span == (0.0, 1.2) and d.duration == pytest.approx(1.2)


def test_the_original_clip_gives_the_sound_and_the_timeline(tmp_path):
    folder = frames_folder(tmp_path / "7", 10)
    original = write_clip(tmp_path / "7.mp4", seconds=2.0, size=(64, 48), sample_rate=16000)
    d = decode_frame_folder(folder, original, frames=5, sample_rate=16000)
    assert d.duration == pytest.approx(2.0, abs=0.05) and len(d.waveform) == round(d.span[1] * 16000)
    assert which(d.frames) == [2, 4, 6, 8, 10]
    np.testing.assert_allclose(d.frame_time, (np.arange(5) * 2 + 1.5) * d.duration / 10, atol=1e-5)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    d = decode_frame_folder(folder, broken, frames=5, fps=25)  # unreadable sound: video-only, timed at 25 fps
    assert d.waveform is None and d.duration == pytest.approx(0.4) and d.notes[0].startswith(f"audio {broken}: ")


def test_bad_folders_name_the_file_and_the_reason(tmp_path):
    with pytest.raises(ClipError, match="no frame images"):
        decode_frame_folder((tmp_path / "empty").mkdir() or tmp_path / "empty", None)
    with pytest.raises(ClipError, match="frame folder not found"):
        decode_frame_folder(tmp_path / "absent", None)
    folder = frames_folder(tmp_path / "7", 3)
    (folder / "7_2.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ClipError, match="7_2.jpg: unreadable image"):
        decode_frame_folder(folder, None, frames=3)
