"""Photos: a still image is a one-frame clip. Decoding (EXIF orientation, shrinking), one face search per photo, and
`dfer predict`, `dfer.load(...).predict` and `dfer serve` on photos and folders of them, with the bundled `face`
model, the fused default (the voice abstains) and a run trained on clips (which refuses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

import dfer
from dfer.cli.predict import predict
from dfer.faces import FaceCropper
from dfer.media.clip_error import ClipError
from dfer.media.decode import decode_clip
from dfer.media.still import decode_still, read_still
from dfer.predict.predictor import Predictor, UnusableClip, predict_paths
from dfer.predict.timeline import timeline_paths
from dfer.serve.app import create_app
from dfer.testing.sample import SAMPLE

HAPPY = SAMPLE / "VideoFlash" / "1001_DFA_HAP_XX.flv"  # a clear, frontal smile
EXIF_ORIENTATION = 0x0112
TURNED_LEFT = 6  # EXIF: the stored picture is to be turned 90 degrees clockwise to be upright (a phone held upright)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A frame of the happy sample clip at 1.5 s, where the smile is broadest: (360, 480, 3) uint8 RGB."""
    return decode_clip(HAPPY, None, frames=12).frames[9]


@pytest.fixture(scope="module")
def stills(picture, tmp_path_factory) -> dict[str, Path]:
    """The frame as a PNG and a JPEG in a folder (with a text file beside them), and the JPEG stored turned a quarter
    left with the EXIF orientation that turns it back."""
    folder = tmp_path_factory.mktemp("stills")
    (folder / "photos" / "more").mkdir(parents=True)
    image = Image.fromarray(picture)
    paths = {"png": folder / "photos" / "face.png", "jpg": folder / "photos" / "more" / "face.jpg",
             "turned": folder / "turned.jpg"}
    image.save(paths["png"])
    image.save(paths["jpg"], quality=95)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = TURNED_LEFT
    image.transpose(Image.Transpose.ROTATE_90).save(paths["turned"], quality=95, exif=exif)
    (folder / "photos" / "notes.txt").write_text("not a photo")
    return paths


@pytest.fixture(scope="module")
def face() -> Predictor:
    return Predictor("face")


def test_a_still_is_one_picture_seen_t_times(stills, picture):
    clip = decode_still(stills["png"], frames=4)
    assert clip.still and clip.frames.shape == (4, *picture.shape) and clip.frames.strides[0] == 0
    np.testing.assert_array_equal(clip.frames[3], picture)  # PNG is lossless: the very frame
    assert clip.waveform is None and clip.duration == 0 and not clip.frame_time.any()


def test_exif_orientation_is_honoured(stills, picture):
    stored = Image.open(stills["turned"])
    assert stored.size == picture.shape[:2]  # stored on its side: 360 wide, 480 high
    upright, turned = read_still(stills["jpg"]), read_still(stills["turned"])
    assert turned.shape == picture.shape
    assert np.abs(turned.astype(int) - upright).mean() < 2  # the same picture, but for JPEG's rounding


def test_a_photo_is_shrunk_as_video_frames_are(picture, tmp_path):
    """A 2000-pixel photo comes out at the frame size a run decodes video to, the same picture (up to resampling)."""
    large = tmp_path / "large.jpg"
    Image.fromarray(picture).resize((2400, 1800), Image.Resampling.BICUBIC).save(large, quality=95)
    shrunk = read_still(large, max_short_side=360)
    assert shrunk.shape == picture.shape
    assert np.abs(shrunk.astype(int) - picture).mean() < 6
    assert read_still(large, max_short_side=None).shape == (1800, 2400, 3)


def test_a_bad_image_is_the_files_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ClipError, match="not a readable image") as error:
        decode_still(bad)
    assert error.value.path == bad


def test_the_face_of_a_photo_is_found_and_cropped_once(stills):
    """T views of one picture are one frame to the cropper: one detection, the track of that frame T times over."""
    cropper = FaceCropper(112, 0.1)
    clip = decode_still(stills["png"], frames=8)
    searched = []
    detect = cropper.detect
    cropper.detect = lambda frames: searched.append(len(frames)) or detect(frames)
    track = cropper(clip.frames)
    assert searched == [1] and track.faces.shape == (8, 3, 112, 112) and track.face_found.all()
    alone = cropper(clip.frames[:1].copy())  # the picture as a clip of its own one frame
    for name in ("faces", "box", "landmarks", "detect_prob"):
        np.testing.assert_array_equal(getattr(track, name), np.repeat(getattr(alone, name), 8, axis=0))


def test_the_turned_photo_gives_the_upright_ones_face_and_answer(stills, face):
    tracks = [face.face_track(path, decode_still(path, face.frames, face.frame_short_side))
              for path in (stills["jpg"], stills["turned"])]
    assert all(track.face_found.all() for track in tracks)
    np.testing.assert_allclose(tracks[1].face_box(), tracks[0].face_box(), atol=3)  # pixels of 480 x 360
    upright, turned = (face.predict_file(stills[name]) for name in ("jpg", "turned"))
    assert turned["top1"] == upright["top1"] == "happy"
    np.testing.assert_allclose(turned["probs"], upright["probs"], atol=0.05)


def test_predict_a_photo_and_a_folder_of_them(stills, tmp_path):
    """Each photo its own answer; a folder's photos are found (its text file is not); the bundled face model."""
    result = CliRunner().invoke(_cli(), ["--model", "face", "--json", str(stills["png"].parent),
                                         str(stills["turned"])])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["face.png", "face.jpg", "turned.jpg"]
    for record in records:
        assert record["top1"] == "happy" and record["face_found_ratio"] == 1.0
        assert record["has_video"] and not record["has_audio"]


def test_the_api_and_the_fused_default_answer_photos(stills):
    """`dfer.load()` (voice + face): the voice abstains on a photo and the face answers; a folder as with a file."""
    records = dfer.load().predict(stills["png"].parent)
    assert len(records) == 2
    for record in records:
        voice, face = record["members"]
        assert "abstained" in voice and face["top1"] == "happy" and record["top1"] == "happy"


def test_a_run_trained_on_clips_refuses_a_photo_in_one_line(stills, predictor):
    with pytest.raises(UnusableClip, match="a still image, and this heads run was trained on clips"):
        predictor.predict_file(stills["png"])
    records = list(predict_paths(predictor, [stills["png"].parent]))
    assert len(records) == 2 and all("trained on clips" in r["error"] and "\n" not in r["error"] for r in records)
    result = CliRunner().invoke(_cli(), ["--model", str(predictor.run), str(stills["jpg"])])
    assert result.exit_code == 1 and "trained on clips" in result.output


def test_a_photo_has_no_timeline(stills, face, tmp_path):
    """A photo named is refused in one line; a folder's photos are not looked for."""
    records = {r["path"]: r for r in timeline_paths(face, [stills["png"], stills["png"].parent], tmp_path, 1.0, 0.5)}
    assert records[str(stills["png"])]["error"] == "a still image has no timeline: give it without --timeline"
    assert records[str(stills["png"].parent)]["error"].startswith("no video files")


def test_serve_answers_a_photo(stills, face):
    with TestClient(create_app(face, workers=1)) as client:
        response = client.post("/predict", params={"explain": "false"},
                               files={"file": ("face.jpg", stills["turned"].read_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["top1"] == "happy" and body["face_found_ratio"] == 1.0 and body["timeline"] is None


def _cli():
    import typer

    app = typer.Typer()
    app.command()(predict)
    return app
