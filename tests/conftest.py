"""Fixtures several test files share."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfer.faces.detect import FaceDetector
from dfer.media.decode import decode_clip
from dfer.predict.predictor import Predictor
from dfer.testing.sample import sample_run
from dfer.testing.synth import write_talking_pair
from dfer.testing.synthetic_store import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
VOICED = [(0.2, 0.8), (1.2, 1.8)]  # seconds of the talking pair's speech


@pytest.fixture(scope="session")
def talking_pair(tmp_path_factory) -> dict[str, Path]:
    """Two-person scenes (a bundled CREMA-D head, and its smaller mirror image who talks during VOICED), one with the
    speech as a tone ("talking") and one silent ("silent"); skipped when the CREMA-D samples are absent."""
    flvs = sorted((REPO / "samples/cremad/VideoFlash").glob("*.flv"))
    if not flvs:
        pytest.skip("no CREMA-D samples")
    head = decode_clip(flvs[0], None, frames=1).frames[0][30:270, 120:320].copy()  # (240, 200, 3)
    mouth = FaceDetector()(head[None])[0].points[0, 3:5]  # (2, 2) the mouth corners
    folder = tmp_path_factory.mktemp("pair")
    return {name: write_talking_pair(folder / f"{name}.mp4", head, mouth, VOICED, silent=name == "silent")
            for name in ("talking", "silent")}


@pytest.fixture(scope="session")
def sample_made(tmp_path_factory) -> tuple[Path, Path]:
    """(store, run): the tiny trained run of the bundled sample (`dfer.testing.sample`), built once per session (per
    xdist worker) for the tests of predict, serve, explain, the API and the docs' commands."""
    folder = tmp_path_factory.getbasetemp() / "sample-run"
    return folder / "store", sample_run(folder)


@pytest.fixture(scope="session")
def predictor(sample_made) -> Predictor:
    """The tiny sample run, loaded once: the tests that share it only read it (test_browser loads its own)."""
    return Predictor(sample_made[1])


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Path:
    """The default synthetic store (`dfer.testing.synthetic_store`: 3 classes, 6 speakers in 3 folds), made once for
    the tests of stage 2 and the probe, which only read it."""
    return make_synthetic_store(tmp_path_factory.mktemp("synthetic") / "store")
