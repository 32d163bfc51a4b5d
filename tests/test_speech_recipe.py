"""`make ravdess-speech` at toy size: the recipe's own YAML files, end to end through the CLI, on a RAVDESS-named
folder of tones (two folds of four actors), with the real shipped GE2E weights. Only the epochs are cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dfer.store.reader import open_cache
from dfer.testing.synth import write_audio

from acceptance import cli

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "ravdess_speech"


@pytest.fixture(scope="module")
def speech_root(tmp_path_factory) -> Path:
    """Actors 01-08 (folds 1 and 2), two clips each: angry (05) is a high tone, calm (02) a low one."""
    root = tmp_path_factory.mktemp("ravdess_speech")
    for actor in range(1, 9):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for emotion, tone in (("02", 180.0), ("05", 700.0)):
            write_audio(folder / f"03-01-{emotion}-01-01-01-{actor:02d}.flac", 1.0 + 0.05 * actor, tone_hz=tone)
    return root


@pytest.mark.parametrize("token_dtype", ["float16", pytest.param("int8", marks=pytest.mark.slow)])  # CI runs both
def test_the_speech_recipe_end_to_end(tmp_path, speech_root, token_dtype):
    out = tmp_path / "out"
    cli("extract", "ravdess", speech_root, "--out", out / "cache", "--recipe", RECIPE / "extract.yaml",
        "--token-dtype", token_dtype)
    fingerprint = open_cache(out / "cache").fingerprint
    assert fingerprint["audio"]["id"] == "ge2e,layer=2" and fingerprint["audio"]["frame_seconds"] == 0.01
    assert fingerprint["token_dtype"] == token_dtype

    cli("train", out / "cache", "--out", out / "stage2", "--recipe", RECIPE / "train.yaml", "--epochs", "2")
    stage2 = json.loads((out / "stage2" / "summary.json").read_text())
    assert set(stage2["folds"]) == {"fold1", "fold2"}  # folds 3-6 have no actors here and are skipped
    assert stage2["config"]["heads"] == yaml.safe_load((RECIPE / "train.yaml").read_text())["heads"]
    rows = (out / "stage2" / "results.md").read_text()
    assert "liquid" in rows and "probe" in rows  # the heads' row and the probe's row, side by side
    assert (out / "stage2" / "probe" / "summary.json").exists()

    cli("finetune", out / "cache", "--init", out / "stage2", "--out", out / "stage3", "--recipe",
        RECIPE / "finetune.yaml", "--epochs", "1")
    assert set(json.loads((out / "stage3" / "summary.json").read_text())["folds"]) == {"fold1", "fold2"}
    assert json.loads((out / "stage3" / "fold1" / "audio" / "config.json").read_text())["layer"] == 2
