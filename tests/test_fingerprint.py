"""The typed fingerprint (`dfer.store.fingerprint.Fingerprint`): every record a store or run holds reads back and writes
out unchanged, older records read as those stores were made, and it maps back to the settings it was made with."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dfer.evaluation.raw_folder import extract_like_run
from dfer.extract.pipeline import ExtractConfig, run
from dfer.faces.detect import DetectSettings
from dfer.faces.settings import FRAME_SHORT_SIDE, LEGACY_FACES, FaceSettings
from dfer.store.fingerprint import Fingerprint
from dfer.store.reader import open_cache
from dfer.store.schema import Layout
from dfer.testing.synth import write_clip

REPO = Path(__file__).resolve().parents[1]
# The bundled voice's config before it read two streams: a record of the two historic streams with every field they
# came to have (store format 3).
HISTORIC_VOICE = REPO / "tests/fixtures/voice-ge2e-adapted.config.json"
# Saved runs of the two historic streams, from the first record to the last.
SAVED_RUNS = [REPO / "dfer/models/face/config.json", REPO / "tests/fixtures/acceptance/before/voice/config.json",
              HISTORIC_VOICE]
NEWER_FIELDS = ("token_dtype", "face_track", "face_detect", "frame_short_side", "dataset_options")


def _recorded(config: Path) -> dict:
    return json.loads(config.read_text())["fingerprint"]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """A store made by extraction: two generated clips, the tiny preset."""
    folder = tmp_path_factory.mktemp("clips")
    for i in range(2):
        write_clip(folder / f"clip{i}.mp4", seconds=1.0, tone_hz=300 + 50 * i)
    (folder / "manifest.csv").write_text("path,label,speaker,split\nclip0.mp4,calm,s0,train\nclip1.mp4,angry,s1,test\n",
                                         encoding="utf-8")
    out = folder / "store"
    run(ExtractConfig(dataset="manifest", root=folder / "manifest.csv", out=out, preset="tiny", frames=4,
                      progress=False))
    return out


@pytest.mark.parametrize("config", SAVED_RUNS, ids=lambda p: str(p.relative_to(REPO).parent))
def test_a_saved_runs_fingerprint_reads_back_and_writes_out_unchanged(config):
    recorded = _recorded(config)
    fingerprint = Fingerprint.from_dict(recorded)
    assert json.dumps(fingerprint.to_dict()) == json.dumps(recorded)  # the same keys, values and order


def test_stores_made_by_the_tests_read_back_unchanged(extracted, synthetic_store):
    for store in (extracted, synthetic_store):
        recorded = open_cache(store).fingerprint
        assert json.dumps(Fingerprint.from_dict(recorded).to_dict()) == json.dumps(recorded)
    made = Fingerprint.from_dict(open_cache(extracted).fingerprint)
    assert (made.faces, made.face_track, made.token_dtype, made.unrecorded) == (FaceSettings(), "largest", "float16",
                                                                                frozenset())
    assert made.layout() == Layout.from_record(open_cache(extracted).layout)  # the store's arrays, from its fingerprint


@pytest.mark.parametrize("lacking", [
    NEWER_FIELDS,  # the first stores
    ("token_dtype", "face_detect", "frame_short_side"),  # with the face track and adapter options, before int8 tokens
    ("face_detect", "frame_short_side"),  # before face settings
])
def test_an_older_record_reads_as_its_store_was_made_and_writes_out_as_it_was(lacking):
    today = _recorded(HISTORIC_VOICE)
    old = {key: value for key, value in today.items() if key not in lacking}
    fingerprint = Fingerprint.from_dict(old)
    expected = {"token_dtype": "float16", "face_track": "largest", "dataset_options": {}}
    assert {key: getattr(fingerprint, key) for key in expected} == {key: today.get(key) if key not in lacking
                                                                     else value for key, value in expected.items()}
    assert fingerprint.faces == LEGACY_FACES and fingerprint.decode_short_side == FRAME_SHORT_SIDE
    assert json.dumps(fingerprint.to_dict()) == json.dumps(old)


def test_a_face_record_from_before_shrink_reads_bilinear_and_keeps_its_record():
    recorded = _recorded(HISTORIC_VOICE)
    recorded["face_detect"] = {key: value for key, value in recorded["face_detect"].items() if key != "shrink"}
    fingerprint = Fingerprint.from_dict(recorded)
    assert fingerprint.faces.detect == DetectSettings(large_face=(6, 8), shrink="bilinear")
    assert fingerprint.decode_short_side == 720 and fingerprint.to_dict() == recorded


def test_a_record_with_a_field_this_dfer_does_not_know_is_refused():
    with pytest.raises(ValueError, match="colour"):
        Fingerprint.from_dict({**_recorded(REPO / "dfer/models/face/config.json"), "colour": "red"})


def test_the_seed_comes_only_from_random_encoders_and_must_be_one():
    fingerprint = Fingerprint.from_dict(_recorded(HISTORIC_VOICE))  # random:tiny, ge2e
    random_vision = {**fingerprint.vision, "revision": "seed=7"}
    assert dataclasses.replace(fingerprint, vision=random_vision).seed == 7
    with pytest.raises(ValueError, match="different seeds"):
        dataclasses.replace(fingerprint, vision=random_vision,
                            audio={"id": "random:tiny", "revision": "seed=3"}).seed  # noqa: B018


def test_the_prediction_layout_holds_float16_tokens_and_no_media():
    recorded = {**_recorded(HISTORIC_VOICE), "token_dtype": "int8"}
    layout = Fingerprint.from_dict(recorded).prediction_layout()
    assert (layout.keep_media, layout.token_dtype, layout.frames, layout.samples) == (False, "float16", 16, 128000)


def _as_extract_like_run_made_it(config: dict, dataset: str, root: Path, out: Path, device: str) -> ExtractConfig:
    """What `extract_like_run` built before the fingerprint was typed: its fields read from the dict one by one."""
    fingerprint = config["fingerprint"]
    random = [fingerprint[kind] for kind in ("vision", "audio") if fingerprint[kind]["id"].startswith("random:")]
    seed = int(random[0]["revision"].removeprefix("seed=")) if random else 0
    return ExtractConfig(
        dataset=dataset, root=root, out=out, vision=fingerprint["vision"]["id"], audio=fingerprint["audio"]["id"],
        frames=fingerprint["frames"], sample_rate=fingerprint["sample_rate"], crop_margin=fingerprint["crop_margin"],
        max_seconds=fingerprint["max_seconds"], keep_media=fingerprint["keep_media"], seed=seed, device=device,
        face_track=fingerprint.get("face_track", "largest"), faces=FaceSettings.of(fingerprint),
        dataset_options=fingerprint.get("dataset_options", {}) if dataset == config["dataset"] else {},
    )


@pytest.mark.parametrize("config", SAVED_RUNS, ids=lambda p: str(p.relative_to(REPO).parent))
@pytest.mark.parametrize("dataset", ["dfew", "manifest"])
@pytest.mark.parametrize("old", [False, True], ids=["as-saved", "old-record"])
def test_extract_like_run_extracts_with_the_settings_it_always_did(config, dataset, old, monkeypatch, tmp_path):
    saved = json.loads(config.read_text())
    fingerprint = {**saved["fingerprint"], "dataset_options": {"frames": "precropped"}, "face_track": "speaker"}
    if old:
        fingerprint = {key: value for key, value in fingerprint.items() if key not in NEWER_FIELDS}
    if config.parent.name == "face":  # a run of random encoders with its seed
        fingerprint["vision"] = {**fingerprint["vision"], "id": "random:tiny", "revision": "seed=5"}
    run_config = {**saved, "fingerprint": fingerprint, "dataset": "dfew"}
    made = []
    monkeypatch.setattr(importlib.import_module("dfer.extract.pipeline"), "run",
                        lambda cfg: made.append(cfg) or SimpleNamespace(failures=[]))
    assert extract_like_run(run_config, dataset, tmp_path / "root", tmp_path / "out", "cuda") == tmp_path / "out"
    assert made == [_as_extract_like_run_made_it(run_config, dataset, tmp_path / "root", tmp_path / "out", "cuda")]
    if dataset == "dfew" and not old:  # the check can fail: the adapter's options and track did carry over
        assert (made[0].dataset_options, made[0].face_track) == ({"frames": "precropped"}, "speaker")


def test_a_run_of_named_streams_extracts_each_stream_with_its_encoder(monkeypatch, tmp_path):
    """The bundled voice reads two named streams (GE2E and the acoustic measures): raw files are extracted with both."""
    saved = json.loads((REPO / "dfer/models/voice/config.json").read_text())
    made = []
    monkeypatch.setattr(importlib.import_module("dfer.extract.pipeline"), "run",
                        lambda cfg: made.append(cfg) or SimpleNamespace(failures=[]))
    extract_like_run(saved, "ravdess", tmp_path / "root", tmp_path / "out", "cpu")
    assert made[0].streams == {"acoustic": "waveform:acoustic", "speech": "waveform:ge2e,layer=2"}
    assert (made[0].max_seconds, made[0].sample_rate) == (saved["fingerprint"]["max_seconds"], 16000)
