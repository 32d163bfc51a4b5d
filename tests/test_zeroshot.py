"""Zero-shot runs: the vision encoder's own classifier on the heads' splits and run files, its labels matched to the
store's classes by meaning, the prior for a clip without a face, and the row `dfer train` prints beside the heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dfer.cli import app
from dfer.data.names import match_labels
from dfer.encoders import build_encoder
from dfer.evaluation.evaluate import evaluate_run
from dfer.heads import ZeroShot
from dfer.heads.probe import ABSENT
from dfer.runs.load import load_run
from dfer.testing.synthetic_store import make_synthetic_store

FACEAPI = build_encoder("vision", "faceapi", meta=True).describe()  # its fingerprint entry, weights not needed
LABELS = FACEAPI["labels"]  # neutral, happy, sad, angry, fearful, disgusted, surprised


def test_labels_match_classes_by_meaning():
    cremad = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    assert match_labels(LABELS, cremad) == [4, 3, 5, 0, 2, 1, -1]  # "disgusted" is "disgust"; no "surprised"
    ravdess = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    matched = match_labels(LABELS, ravdess)
    assert 1 not in matched and sorted(matched) == [0, 2, 3, 4, 5, 6, 7]  # calm: no label means it
    assert match_labels(LABELS, ["Anger", "joy", "Sadness", "contempt"]) == [-1, 1, 2, 0, -1, -1, -1]


def zeroshot_model(class_of_label: list[int], num_classes: int) -> ZeroShot:
    model = ZeroShot(4, ["neutral", "happy", "sad"], class_of_label, num_classes)
    with torch.no_grad():
        model.classifier.linear.weight.copy_(torch.eye(3, 4))  # label l's logit: the mean of token dimension l
        model.classifier.linear.bias.zero_()
    return model


def test_frames_average_over_the_faces_and_a_faceless_clip_gets_the_prior():
    model = zeroshot_model([1, 0, -1], 3)  # neutral -> class 1, happy -> class 0, sad unmatched, class 2 unknown
    model.set_prior(torch.tensor([0, 0, 0, 1]))  # 3/4 class 0, 1/4 class 1, none of class 2
    tokens = torch.zeros(2, 3, 5, 4)  # (B, T, N, D)
    tokens[:, 0, :, 0] = 2.0  # frame 0: neutral; frame 1: happy; frame 2 (no face): sad, loudly
    tokens[:, 1, :, 1] = 2.0
    tokens[:, 2, :, 2] = 50.0
    batch = {"video_tokens": tokens, "has_video": torch.tensor([True, True]),
             "face_found": torch.tensor([[True, True, False], [False, False, False]])}
    probs = model(batch)["logits"].softmax(-1)  # (2, 3)
    frame0 = torch.tensor([2.0, 0.0]).softmax(0)  # sad is asked nothing: the store has no such class
    expected = (frame0 + frame0.flip(0)) / 2  # (neutral, happy) averaged over the two frames with a face
    assert torch.allclose(probs[0], torch.tensor([expected[1], expected[0], 0.0]), atol=1e-6)
    assert torch.allclose(probs[1], torch.tensor([0.75, 0.25, 0.0]))  # no face: the prior
    assert model.log_prior[2] == ABSENT and not model.known[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Tokens with the faceapi family's shapes and fingerprint entry; classes angry, calm and happy."""
    return make_synthetic_store(tmp_path_factory.mktemp("zs") / "store", names=["angry", "calm", "happy"],
                                vision=FACEAPI, frames=2, clips_per_speaker=6)


def test_zeroshot_command_writes_probe_s_run_files_and_names_what_it_cannot_predict(store, tmp_path):
    out = tmp_path / "zs"
    result = CliRunner().invoke(app, ["zeroshot", str(store), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "never predicted (the classifier has no such label): calm" in " ".join(result.output.split())
    assert "test clips have no face: they get the class prior" in " ".join(result.output.split())
    config = json.loads((out / "fold1" / "config.json").read_text())
    assert config["model"] == "zeroshot" and config["unmatched"] == ["calm"]
    assert config["heads"]["class_of_label"] == [-1, 2, -1, 0, -1, -1, -1]
    for name in ("best.safetensors", "results.json", "predictions.csv", "confusion.png"):
        assert (out / "fold1" / name).exists()
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert 0 <= summary["UAR"]["mean"] <= 2 / 3  # calm counts in UAR and is never predicted
    results = json.loads((out / "fold1" / "results.json").read_text())["test"]
    assert results["faceless"] and all(clip.startswith("s") for clip in results["faceless"])

    model, _ = load_run(out / "fold1")
    assert isinstance(model, ZeroShot)
    scored = evaluate_run(out / "fold1", store)  # a zero-shot run is evaluated like any other
    assert scored["per_class"]["calm"] == {"code": "calm", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 4}


@pytest.mark.slow  # a whole training run: 18 s; CI runs it
def test_train_prints_zero_shot_probe_and_heads_rows(store, tmp_path):
    recipe = tmp_path / "train.yaml"
    recipe.write_text("# dfer train STORE --out RUN --recipe train.yaml\nepochs: 1\nbatch_size: 16\nfusion: concat\n"
                      "heads: {d_model: 16, roi_queries: 2, temporal_layers: 1, heads: 2, cfc_units: 16, "
                      "statistics_width: 8}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(store), "--out", str(out), "--recipe", str(recipe)])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert printed.index("│ zero-shot │") < printed.index("│ linear probe │") < printed.index("│ heads (concat) │")
    rows = (out / "results.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| synthetic av concat", "| synthetic av zero-shot",
                                                         "| synthetic av probe"]
    heads, zeroshot = (json.loads((out / part / "fold1" / "config.json").read_text()) for part in (".", "zeroshot"))
    assert heads["split"]["test"] == zeroshot["split"]["test"]  # the same clips are scored


def test_a_store_whose_encoder_has_no_classifier_is_refused(tmp_path):
    store = make_synthetic_store(tmp_path / "plain", frames=2, clips_per_speaker=2)
    result = CliRunner().invoke(app, ["zeroshot", str(store), "--out", str(tmp_path / "zs")])
    assert isinstance(result.exception, ValueError) and "has no classifier of its own" in str(result.exception)
    assert not (tmp_path / "zs").exists()
