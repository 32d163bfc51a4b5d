"""Model cards: every run folder's README.md loads with huggingface_hub, offline, with its licence, dataset and the
figures of its results.json / summary.json, and shows the baselines' rows beside its own."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from dfer.cli import app
from dfer.encoders import build_encoder
from dfer.runs.card import write_card
from dfer.testing.synthetic_store import make_synthetic_store

HEADS = "heads: {d_model: 16, roi_queries: 2, temporal_layers: 1, heads: 2, cfc_units: 16}\n"  # tiny, as test_probe's
KEYS = {("accuracy", None): "WAR", ("recall", "macro"): "UAR", ("f1", "weighted"): "weighted_f1",
        ("f1", "macro"): "macro_f1"}  # an EvalResult's (metric type, averaging) -> the key of results.json


def offline(patch: pytest.MonkeyPatch) -> None:
    """No card may reach the network: the Hub's offline switch, and any socket connection refused."""
    def refuse(*args, **kwargs):
        raise OSError("a model card tried to reach the network")

    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    patch.setattr(socket.socket, "connect", refuse)
    patch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    offline(monkeypatch)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """`dfer train --fold all` on a store without a zero-shot classifier: RUN/ (2 folds) and RUN/probe beside it."""
    folder = tmp_path_factory.mktemp("card")
    store = make_synthetic_store(folder / "store", speakers=4, folds=2, clips_per_speaker=4, frames=2)
    recipe = folder / "train.yaml"
    recipe.write_text("# dfer train STORE --out RUN --recipe train.yaml\nepochs: 1\nbatch_size: 16\nfusion: concat\n"
                      + HEADS)
    with pytest.MonkeyPatch.context() as patch:
        offline(patch)
        result = CliRunner().invoke(app, ["train", str(store), "--out", str(folder / "run"), "--recipe", str(recipe)])
    assert result.exit_code == 0, result.output
    return folder / "run"


def figures_of(card: ModelCard) -> dict[str, float]:
    return {KEYS[result.metric_type, result.metric_config]: result.metric_value for result in card.data.eval_results}


def test_train_writes_a_card_with_the_fold_mean_and_the_probe_row(run):
    card = ModelCard.load(run / "README.md")
    assert card.data.license == "apache-2.0" and card.data.datasets == ["synthetic"]
    summary = json.loads((run / "summary.json").read_text())["summary"]
    assert figures_of(card) == {key: summary[key]["mean"] for key in KEYS.values()}
    assert {result.dataset_config for result in card.data.eval_results} == {"2-fold cross-validation"}
    probe = json.loads((run / "probe" / "summary.json").read_text())["summary"]
    text = card.text
    assert f"| linear probe | {100 * probe['WAR']['mean']:.2f} ± " in text  # the probe's row, beside the heads'
    assert "| **this model** (concat heads) |" in text
    assert "zero-shot |" not in text  # the store's vision encoder has no classifier: no zero-shot row
    assert "class0, class1, class2" in text and "fold1: 4 training, 4 validation and 8 test clips" in text
    assert f"dfer predict FILE --model {run}/fold1" in text and "## Limitations" in text


def test_the_probe_beside_has_its_own_card(run):
    card = ModelCard.load(run / "probe" / "README.md")
    summary = json.loads((run / "probe" / "summary.json").read_text())["summary"]
    assert figures_of(card) == {key: summary[key]["mean"] for key in KEYS.values()}
    assert "linear-probe" in card.data.tags and "logistic regression" in card.text


def test_card_command_rewrites_a_deleted_card(run):
    written = (run / "README.md").read_text()
    (run / "README.md").unlink()
    result = CliRunner().invoke(app, ["card", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "README.md").read_text() == written
    missing = CliRunner().invoke(app, ["card", str(run / "nowhere")])
    assert isinstance(missing.exception, FileNotFoundError)  # `dfer` prints it as one red line


def test_a_bundled_model_s_facts_make_its_card(run, tmp_path):
    """A folder laid out as `make models` writes one (config.json + model.json, no results.json): model.json's
    licence, limitations and `scored` figures reach the card."""
    folder = tmp_path / "voice"
    folder.mkdir()
    (folder / "config.json").write_text((run / "fold1" / "config.json").read_text())
    scored = {"WAR": 0.653, "UAR": 0.659, "n": 120, "subset": "all clips", "store": "other-actors"}
    facts = {"training_data_licence": "RAVDESS: CC BY-NC-SA 4.0 (non-commercial).", "scored": scored,
             "limitations": "Acted speech, English, 18 speakers.", "description": "Speech emotion from the voice."}
    (folder / "model.json").write_text(json.dumps(facts))
    card = ModelCard.load(write_card(folder))
    assert figures_of(card) == {"WAR": 0.653, "UAR": 0.659}
    assert card.data.eval_results[0].dataset_name == "other-actors" and card.data.license == "apache-2.0"
    for fact in ("CC BY-NC-SA 4.0 (non-commercial)", "Acted speech, English, 18 speakers.", "Speech emotion"):
        assert fact in card.text
    assert "**Scored** on `other-actors` (all clips, n = 120)" in card.text
    del scored["store"]  # a cross-validation's figures (a summary.json) name no store
    (folder / "model.json").write_text(json.dumps(facts))
    assert "**Scored** (all clips, n = 120)" in ModelCard.load(write_card(folder)).text


def test_zeroshot_run_card_with_one_split_and_extra_limitations(tmp_path):
    faceapi = build_encoder("vision", "faceapi", meta=True).describe()  # its fingerprint entry, no weights
    store = make_synthetic_store(tmp_path / "store", names=["angry", "calm", "happy"], vision=faceapi, frames=2,
                                 clips_per_speaker=4)
    out = tmp_path / "zs"
    result = CliRunner().invoke(app, ["zeroshot", str(store), "--out", str(out), "--fold", "1"])
    assert result.exit_code == 0, result.output
    test = json.loads((out / "results.json").read_text())["test"]
    card = ModelCard.load(write_card(out, {"limitations": "Two frames per clip only."}))
    assert figures_of(card) == {key: test[key] for key in KEYS.values()}
    assert {result.dataset_config for result in card.data.eval_results} == {"fold1"}
    assert card.data.pipeline_tag == "video-classification" and "zero-shot" in card.data.tags
    assert "never predicts calm" in card.text and "Two frames per clip only." in card.text
