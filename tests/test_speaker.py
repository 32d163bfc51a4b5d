"""The speaker's face track: voiced steps from the audio, mouth-to-eye motion, and the choice on a two-person clip
(real MTCNN on a bundled CREMA-D head pasted twice), with its fallbacks to the largest face."""

from __future__ import annotations

import numpy as np
import pytest

from dfer.faces import FaceCropper
from dfer.faces.speaker import choose_speaker, mouth_motion, voiced_steps
from dfer.media.decode import decode_clip

RATE = 16000


def _bursts(amplitude: float, seconds: float = 2.0) -> np.ndarray:
    """A 220 Hz tone during 0.2-0.8 s and 1.2-1.8 s, silence elsewhere."""
    t = np.arange(round(seconds * RATE)) / RATE
    on = ((0.2 <= t) & (t < 0.8)) | ((1.2 <= t) & (t < 1.8))
    return (amplitude * np.sin(2 * np.pi * 220 * t) * on).astype(np.float32)  # (S,)


def test_voiced_steps_follow_the_speech_whatever_its_level():
    frame_time = np.arange(10) * 0.2  # (10,) 0, 0.2, ... 1.8 s
    expected = [False, True, True, True, False, False, True, True, True]  # steps 0-0.2 s, 0.2-0.4 s, ...
    assert voiced_steps(_bursts(0.5), RATE, frame_time).tolist() == expected
    assert voiced_steps(_bursts(0.01), RATE, frame_time).tolist() == expected  # relative to the clip's level
    hiss = np.random.default_rng(0).normal(0, 1e-4, 2 * RATE).astype(np.float32)  # below the -60 dBFS floor
    assert not voiced_steps(hiss, RATE, frame_time).any()
    assert not voiced_steps(np.zeros(0, np.float32), RATE, frame_time).any()


def _face_frames(mouth_changes: bool, everything_changes: bool) -> tuple[np.ndarray, np.ndarray]:
    """(6, 120, 160, 3) frames of one still textured face and its (6, 5, 2) landmarks; the mouth patch, or the whole
    picture, gets new noise in every frame."""
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    frames = np.repeat(still[None], 6, axis=0)  # (6, 120, 160, 3)
    for t in range(6):
        if mouth_changes:
            frames[t, 80:96, 62:98] = rng.integers(0, 255, (16, 36, 3))
        if everything_changes:
            frames[t] = np.clip(frames[t] + rng.normal(0, 20, frames[t].shape), 0, 255).astype(np.uint8)
    points = np.tile(np.array([[60, 50], [100, 50], [80, 70], [65, 88], [95, 88]], np.float32), (6, 1, 1))
    return frames, points


def test_mouth_motion_is_measured_against_the_eyes():
    talking = mouth_motion(*_face_frames(mouth_changes=True, everything_changes=False))  # (5,)
    shaking = mouth_motion(*_face_frames(mouth_changes=False, everything_changes=True))  # camera noise everywhere
    still = mouth_motion(*_face_frames(mouth_changes=False, everything_changes=False))
    assert talking.shape == (5,) and np.all(talking > 2) and np.all(still == 0)
    assert np.all(shaking < 1)  # the mouth changes as much as the eyes: no speech
    frames, points = _face_frames(mouth_changes=True, everything_changes=False)
    points[2] = np.nan  # the face was not detected in frame 2
    assert np.isnan(mouth_motion(frames, points)).tolist() == [False, True, True, False, False]


def test_no_track_or_no_audio_keeps_the_largest_and_says_why():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    assert choose_speaker(frames, [], [], np.ones(2, bool)).rank == -1
    two = [np.zeros(3, int), np.zeros(3, int)]
    choice = choose_speaker(frames, [], two, None)
    assert (choice.rank, choice.count, choice.reason) == (0, 2, "largest: no audio")
    assert choice.note() == "face track 1 of 2 by size: largest: no audio" and np.isnan(choice.score)


@pytest.fixture(scope="module")
def croppers() -> dict[str, FaceCropper]:
    return {mode: FaceCropper(image_size=64, face_track=mode) for mode in ("largest", "speaker")}


def _centre_x(track) -> float:
    return float(np.mean((track.box[:, 0] + track.box[:, 2]) / 2))


def test_the_smaller_face_that_talks_is_the_speaker(talking_pair, croppers):
    d = decode_clip(talking_pair["talking"], talking_pair["talking"], frames=16)
    largest = croppers["largest"](d.frames, d.waveform, d.frame_time, RATE)
    speaker = croppers["speaker"](d.frames, d.waveform, d.frame_time, RATE)
    assert (largest.choice.rank, largest.choice.count, largest.choice.note()) == (0, 2, "")
    assert _centre_x(largest) < 160 and largest.face_found.all()  # the larger face, on the left
    assert (speaker.choice.rank, speaker.choice.count) == (1, 2) and speaker.face_found.all()
    assert speaker.choice.reason == "speaker: mouth motion while voiced" and speaker.choice.score > 1
    assert _centre_x(speaker) > 160  # the smaller face, on the right
    assert speaker.box[0, 2] - speaker.box[0, 0] < largest.box[0, 2] - largest.box[0, 0]


def test_without_voiced_audio_the_largest_face_is_kept(talking_pair, croppers):
    d = decode_clip(talking_pair["silent"], talking_pair["silent"], frames=16)  # the mouth moves, nobody is heard
    silent = croppers["speaker"](d.frames, d.waveform, d.frame_time, RATE)
    assert (silent.choice.rank, silent.choice.reason) == (0, "largest: no voiced audio") and _centre_x(silent) < 160
    mute = croppers["speaker"](d.frames)  # a clip without an audio stream
    assert (mute.choice.rank, mute.choice.reason) == (0, "largest: no audio")
