"""A run of several seeds' heads (`--members`): each member trains exactly as a run of its seed, the run answers with
their mean log-probability wherever a run answers, and what cannot take several heads says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

import dfer
from dfer.cli import app
from dfer.evaluation.evaluate import evaluate_run
from dfer.finetune.config import make_finetune_config
from dfer.finetune.run import finetune
from dfer.heads import DferHeads, HeadMembers
from dfer.inference.batch import collate
from dfer.predict.explain import explain_batch
from dfer.runs.card import write_card
from dfer.runs.load import load_run
from dfer.store.reader import open_cache
from dfer.testing.sample import SAMPLE, SMALL_HEADS
from dfer.train.config import make_config
from dfer.train.data import CachedClips
from dfer.train.metrics import classification_metrics
from dfer.train.predictions import read_predictions
from dfer.train.run import train

pytestmark = pytest.mark.usefixtures("one_thread")


def quick(**overrides):
    settings = dict(epochs=4, batch_size=16, lr=3e-3, patience=4, heads=SMALL_HEADS, fold="1", modalities="audio",
                    val_fraction=0)  # members share the run's split: with validation speakers, those of its seed
    return make_config(None, **{**settings, **overrides})


@pytest.fixture(scope="module")
def runs(synthetic_store, tmp_path_factory):
    """A run of two members from seed 5 (`dfer train --members 2`), and the two runs of seeds 5 and 6 alone."""
    root = tmp_path_factory.mktemp("members")
    made = {"members": root / "members", 5: root / "seed5", 6: root / "seed6"}
    recipe = root / "train.yaml"
    recipe.write_text(yaml.safe_dump(quick().to_dict()))
    result = CliRunner().invoke(app, ["train", str(synthetic_store), "--out", str(made["members"]), "--recipe",
                                      str(recipe), "--seed", "5", "--members", "2"])
    assert result.exit_code == 0, result.output
    for seed in (5, 6):
        train(synthetic_store, made[seed], quick(seed=seed), show=False)
    return made


def test_each_member_trains_as_a_run_of_its_seed(runs):
    for k, seed in enumerate((5, 6)):
        member = load_file(runs["members"] / f"member{k}" / "best.safetensors")
        alone = load_file(runs[seed] / "best.safetensors")
        assert member.keys() == alone.keys()
        assert all(torch.equal(member[key], alone[key]) for key in alone)
        assert json.loads((runs["members"] / f"member{k}/config.json").read_text())["train"]["seed"] == seed
    assert json.loads((runs["members"] / "config.json").read_text())["train"]["members"] == 2


def test_the_run_answers_with_the_members_mean_log_probability(runs, synthetic_store):
    model, _ = load_run(runs["members"])
    assert isinstance(model, HeadMembers) and isinstance(load_run(runs["members"] / "member1")[0], DferHeads)
    alone = [read_predictions(runs[seed] / "predictions.csv") for seed in (5, 6)]
    together = read_predictions(runs["members"] / "predictions.csv")
    assert together.clip_ids == alone[0].clip_ids
    expected = geometric_mean(*(one.probs for one in alone))  # (n, C)
    np.testing.assert_allclose(together.probs, expected, rtol=1e-5, atol=1e-7)
    results = json.loads((runs["members"] / "results.json").read_text())["test"]
    assert results["UAR"] == pytest.approx(classification_metrics(together.labels, expected, ["0", "1", "2"])["UAR"])
    assert len(results["best_epoch"]) == 2
    assert evaluate_run(runs["members"], synthetic_store)["UAR"] == pytest.approx(results["UAR"])


def test_explanations_read_the_members_together(runs, synthetic_store):
    model, config = load_run(runs["members"])
    reader = open_cache(synthetic_store)
    index = reader.read_all("clip_id").astype(str).tolist().index(config["split"]["test"][0])
    batch = collate([CachedClips(reader, [index], "audio")[0]])
    explanation, arrays = explain_batch(model, batch, ["a", "b", "c"])
    with torch.no_grad():
        np.testing.assert_allclose(arrays["probs"], model(batch)["logits"].softmax(-1)[0].numpy(), rtol=1e-5)
    assert explanation["available"] == ["audio"] and len(explanation["steps"]) == batch["frame_time"].shape[1]


def test_the_card_names_the_members(runs):
    card = write_card(runs["members"]).read_text()
    assert "2 members trained alike from seeds 5 to 6" in card


def test_stage_3_refuses_a_run_of_members_and_names_one(runs, synthetic_store, tmp_path):
    with pytest.raises(ValueError, match="start from one member, e.g. .*member0"):
        finetune(synthetic_store, runs["members"], tmp_path / "tuned", make_finetune_config(None), show=False)


def test_members_are_at_least_one():
    with pytest.raises(ValueError, match="members must be at least 1"):
        quick(members=0)


def geometric_mean(*probs: np.ndarray) -> np.ndarray:
    """(..., C) each -> the softmax of their mean log-probability."""
    mean = np.mean([np.log(p) for p in probs], 0)
    return np.exp(mean) / np.exp(mean).sum(-1, keepdims=True)


def test_predict_and_timelines_from_files_answer_with_the_members_mean(sample_made, tmp_path):
    store, _ = sample_made
    run = tmp_path / "members"
    train(store, run, make_config(None, fold="none", epochs=1, heads=SMALL_HEADS, members=2), show=False)
    clips = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[:2]
    models = [dfer.load(run), *(dfer.load(run / f"member{k}") for k in range(2))]
    together, *alone = ([record["probs"] for record in model.predict(clips, adapt="together")] for model in models)
    np.testing.assert_allclose(together, geometric_mean(*(np.array(a) for a in alone)), atol=2e-4)
    together, *alone = ([list(row["probs"].values()) for row in model.timeline(clips[0], window=1)["rows"]]
                        for model in models)
    assert len(together) > 1
    np.testing.assert_allclose(together, geometric_mean(*(np.array(a) for a in alone)), atol=2e-4)


class StopAt:
    """A TrainProgress that interrupts the split named `name` after epoch 2, as Ctrl-C would."""

    def __init__(self, name: str, *_, **__):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def step(self, epoch, loss):
        pass

    def epoch_done(self, row):
        if self.name.endswith("member1") and row["epoch"] == 2:
            raise KeyboardInterrupt


def test_resume_keeps_finished_members_and_continues_the_rest(runs, synthetic_store, tmp_path, monkeypatch):
    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr("dfer.train.run.TrainProgress", StopAt)
    with pytest.raises(KeyboardInterrupt):
        train(synthetic_store, interrupted, quick(seed=5, members=2), show=False)
    finished = (interrupted / "member0" / "best.safetensors").stat().st_mtime_ns
    train(synthetic_store, interrupted, quick(seed=5, members=2), resume=True, show=False)
    assert (interrupted / "member0" / "best.safetensors").stat().st_mtime_ns == finished  # not trained again
    for folder in ("member0", "member1", "."):
        x, y = (load_file(run / folder / "best.safetensors") for run in (runs["members"], interrupted))
        assert all(torch.equal(x[key], y[key]) for key in x), folder
    assert len((interrupted / "member1" / "log.csv").read_text().splitlines()) == 5  # header + 4 epochs
