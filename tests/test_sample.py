"""The bundled CREMA-D sample through stage 1 and stage 2, as `make demo` runs it, plus the shared real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dfer.cli import app
from dfer.extract.pipeline import ExtractConfig, run
from dfer.heads import FUSIONS
from dfer.store.info import store_info
from dfer.testing.sample import SAMPLE, SMALL_HEADS
from dfer.train.config import make_config
from dfer.train.run import train

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "store"
    summary = run(ExtractConfig(dataset="cremad", root=SAMPLE, out=out, preset="tiny", frames=8, progress=False))
    assert (summary.done, summary.failures) == (6, [])
    return out


def test_sample_extracts_with_faces(sample_store):
    facts = store_info(sample_store)
    assert (facts["done"], facts["failed"], facts["clips_with_audio"]) == (6, 0, 6)
    assert facts["face_found_ratio"] >= 0.95
    assert facts["classes"] == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_trains_on_the_sample(sample_store, tmp_path, fusion):
    cfg = make_config(None, fold="none", fusion=fusion, epochs=2, batch_size=3, heads=SMALL_HEADS)
    train(sample_store, tmp_path / "run", cfg, show=False)
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--store", str(sample_store), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 6


@pytest.mark.slow
def test_ravdess_speech_all_clips(tmp_path):
    """The 1,080 real RAVDESS speech clips (actors 1-18): every clip cached, audio only (about a minute)."""
    root = SHARED / "ravdess_speech_16k"
    if not root.exists():
        pytest.skip(f"{root} is absent (the shared real data is not part of a clone)")
    summary = run(ExtractConfig(dataset="ravdess", root=root, out=tmp_path / "store", preset="tiny", progress=False))
    assert (summary.done, summary.failures, summary.problems) == (1080, [], [])
    facts = store_info(tmp_path / "store")
    assert facts["clips_with_audio"] == 1080 and facts["clips_with_video"] == 0

