"""The linear-probe baseline: `dfer train`'s splits and files, torch = scikit-learn, and every tool that loads a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from dfer.cli import app
from dfer.evaluation.evaluate import evaluate_run
from dfer.finetune.config import make_finetune_config
from dfer.finetune.run import finetune
from dfer.heads import LinearProbe
from dfer.inference.batch import collate
from dfer.inference.score import predict
from dfer.predict.predictor import Predictor
from dfer.runs.load import load_run
from dfer.testing.sample import SAMPLE
from dfer.store.reader import open_cache
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train.config import make_config
from dfer.train.data import CachedClips
from dfer.train.loop import loader_for
from dfer.train.predictions import read_predictions
from dfer.train.probe import (PooledClips, ProbeConfig, fit_probe, logistic_regression, make_probe_config,
                             pooled_features, probe, probe_config_for)
from dfer.train.splits import plan

RUN_FILES = ("config.json", "best.safetensors", "results.json", "predictions.csv", "confusion.png", "recall.png",
             "reliability.png")


@pytest.fixture(scope="module")
def weak(tmp_path_factory) -> Path:
    """A store whose class signal is faint: the probe is neither perfect nor saturated (probabilities near 0 or 1)."""
    return make_synthetic_store(tmp_path_factory.mktemp("weak") / "store", signal=0.3)


@pytest.fixture(scope="module")
def probe_run(synthetic_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "run"
    result = CliRunner().invoke(app, ["probe", str(synthetic_store), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    (out / "stdout.json").write_text(result.stdout)
    return out


def test_fold_all_writes_train_s_files_and_beats_chance(synthetic_store, probe_run):
    printed = json.loads((probe_run / "stdout.json").read_text())  # --json: stdout is one JSON object
    assert set(printed["runs"]) == {"fold1", "fold2", "fold3"} and printed["summary"]["UAR"]["mean"] > 0.7  # chance 1/3
    summary = json.loads((probe_run / "summary.json").read_text())
    assert summary["summary"] == printed["summary"]
    rows = (probe_run / "results.md").read_text().splitlines()
    assert len(rows) == 3 and rows[-1].startswith("| synthetic av probe |")
    reader = open_cache(synthetic_store)
    clip_ids = reader.read_all("clip_id").astype(str)
    splits, _ = plan(reader, "all", "av", seed=0)  # what `dfer train --fold all` trains on
    grid = make_probe_config().c_grid
    for split in splits:
        run = probe_run / split.name
        for name in RUN_FILES:
            assert (run / name).exists(), name
        config = json.loads((run / "config.json").read_text())
        assert config["model"] == "probe" and config["classes"] == reader.classes
        streams = [{"name": "audio", "input": "waveform", "dim": 8}, {"name": "video", "input": "face", "dim": 8}]
        assert config["heads"] == {"streams": streams, "modalities": "av", "num_classes": 3}
        for part in ("train", "val", "test"):
            assert config["split"][part] == [str(clip_ids[i]) for i in getattr(split, part)]
        assert config["fit"]["C"] in grid and len(config["fit"]["validation"]) == len(grid)
        assert config["fit"]["fitted_on"] == ["train", "val"]


def test_evaluate_scores_a_probe_run_as_it_scored_itself(synthetic_store, probe_run):
    result = CliRunner().invoke(app, ["evaluate", str(probe_run / "fold2"), "--store", str(synthetic_store), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    own = json.loads((probe_run / "fold2" / "results.json").read_text())["test"]
    assert "test clips" in metrics["subset"]
    keys = ("WAR", "UAR", "n", "confusion")
    assert {k: metrics[k] for k in keys} == {k: own[k] for k in keys}


def test_fold_none_fits_every_clip_with_the_default_c(synthetic_store, tmp_path):
    result = probe(synthetic_store, tmp_path / "final", make_probe_config(fold="none", modalities="audio"), show=False)
    assert result.runs == {"all": {}} and result.summary is None
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["fit"]["C"] == 1.0 and config["fit"]["fitted_on"] == ["train"] and not config["fit"]["validation"]
    assert not (tmp_path / "final" / "results.json").exists()
    model, _ = load_run(tmp_path / "final")
    assert isinstance(model, LinearProbe)
    metrics = evaluate_run(tmp_path / "final", synthetic_store)
    assert "every usable clip" in metrics["subset"] and metrics["UAR"] > 0.9  # its own training clips


@pytest.mark.parametrize("classes", [3, 2])  # two classes: scikit-learn's binary model, one row of coefficients
def test_torch_probabilities_equal_scikit_learn_s(tmp_path, classes):
    store = make_synthetic_store(tmp_path / "store", classes=classes, signal=0.3)
    reader = open_cache(store)
    (split,), _ = plan(reader, "1", "av", seed=0)
    fitted = fit_probe(reader, split, make_probe_config(c_grid=[0.01]))  # one C, strong enough to keep it unsure
    batch = collate([CachedClips(reader, split.test, "av")[i] for i in range(len(split.test))])
    with torch.no_grad():
        mine = fitted.model(batch)["logits"].softmax(-1).numpy()  # (n, C)
        features = fitted.model.standardise(*fitted.model.pooled(batch)).numpy()  # what the fit saw
    theirs = fitted.classifier.predict_proba(features)
    assert 0.05 < theirs.max(1).mean() < 0.95  # not saturated: a wrong mapping could not hide
    np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_av_probe_reads_a_clip_without_video_from_its_audio(weak):
    reader = open_cache(weak)
    (split,), _ = plan(reader, "1", "av", seed=0)
    model = fit_probe(reader, split, make_probe_config()).model
    has_video = reader.read_all("has_video").astype(bool)
    silent_face = next(i for i in split.test if not has_video[i])  # an audio-only clip
    rows = [CachedClips(reader, [silent_face], "av")[0] for _ in range(3)]
    rows[1] = {**rows[1], "video_tokens": np.full_like(rows[1]["video_tokens"], 7.0)}  # whatever the store holds
    rows[2] = {**rows[2], "has_video": np.bool_(True), "face_found": np.zeros_like(rows[2]["face_found"])}  # no face
    batch = collate(rows)
    with torch.no_grad():
        features = model.standardise(*model.pooled(batch))  # (3, F): audio [mean, std] first, then video
        logits = model(batch)["logits"]  # (3, C)
    assert torch.all(features[:, 16:] == 0)  # the video stream's 2 x 8 features: the training mean
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits[0], logits[1]) and torch.allclose(logits[0], logits[2])
    assert features[0, :16].abs().sum() > 0  # the audio still speaks


@pytest.mark.slow  # trains every fold end to end (CI runs the slow tests after the default suite)
def test_train_fold_all_runs_the_probe_beside_the_heads(synthetic_store, tmp_path):
    recipe = tmp_path / "train.yaml"
    recipe.write_text("# dfer train STORE --out RUN --recipe train.yaml\nepochs: 1\nbatch_size: 16\nfusion: concat\n"
                      "heads: {d_model: 16, roi_queries: 2, temporal_layers: 1, heads: 2, cfc_units: 16}\n")
    out = tmp_path / "run"
    command = ["train", str(synthetic_store), "--out", str(out), "--recipe", str(recipe)]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    printed = " ".join(first.output.split())  # rich wraps lines at the terminal's width
    assert "│ heads (concat) │" in printed and "│ linear probe │" in printed
    assert "linear probe fitted now" in printed
    rows = (out / "results.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| synthetic av concat", "| synthetic av probe"]
    assert rows[-1] == (out / "probe" / "results.md").read_text().splitlines()[-1]
    for fold in ("fold1", "fold2", "fold3"):
        heads, probes = (json.loads((out / part / fold / "config.json").read_text()) for part in (".", "probe"))
        assert heads["split"] == probes["split"] and probes["model"] == "probe"
    fitted_at = (out / "probe" / "fold1" / "best.safetensors").stat().st_mtime_ns
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0 and "linear probe up to date" in " ".join(again.output.split())
    assert (out / "probe" / "fold1" / "best.safetensors").stat().st_mtime_ns == fitted_at
    assert len((out / "results.md").read_text().splitlines()) == 4  # header, separator, heads, probe: no duplicate
    other = CliRunner().invoke(app, [*command, "--seed", "1"])  # other validation speakers: another probe
    assert other.exit_code == 0 and "linear probe fitted now" in " ".join(other.output.split())


def test_finetune_refuses_a_probe_run(synthetic_store, probe_run, tmp_path):
    with pytest.raises(ValueError, match="a probe run has no heads to fine-tune"):
        finetune(synthetic_store, probe_run / "fold1", tmp_path / "tuned", make_finetune_config(None), show=False)


def test_predict_runs_a_probe_run_on_a_raw_file(sample_made, tmp_path):
    """`dfer predict` (and so `dfer serve`) rebuild the encoders and give what the cached tokens give."""
    store = sample_made[0]
    probe(store, tmp_path / "probe", make_probe_config(fold="none"), show=False)
    reader = open_cache(store)
    model, _ = load_run(tmp_path / "probe")
    _, cached = predict(model, loader_for(CachedClips(reader, [0, 1], "av"), make_config(None, batch_size=2)),
                        torch.device("cpu"))  # (2, C)
    predictor = Predictor(tmp_path / "probe")
    for index, clip_id in enumerate(reader.read_all("clip_id").astype(str)):
        result = predictor.predict_file(SAMPLE / "VideoFlash" / f"{clip_id}.flv")
        np.testing.assert_allclose(result["probs"], cached[index], atol=1e-4)


def test_probe_settings_from_a_recipe(tmp_path):
    recipe = tmp_path / "probe.yaml"
    recipe.write_text("# dfer probe STORE --out RUN --recipe probe.yaml\nmodalities: audio\nc_grid: [10, 0.1]\n")
    cfg = make_probe_config(recipe, fold=2)
    assert (cfg.modalities, cfg.fold, cfg.c_grid) == ("audio", "2", [0.1, 10.0])
    recipe.write_text("# dfer probe\nc_gird: [1]\n")
    with pytest.raises(ValueError, match="c_gird"):
        make_probe_config(recipe)


@pytest.mark.slow  # every fold; CI runs it
def test_a_cross_validation_pools_each_clip_once(weak, tmp_path, monkeypatch):
    """`dfer probe --fold all` reads a clip's tokens once, whichever folds it fits, validates or tests in, and
    scores each fold as one fold alone does (which pools its own clips)."""
    reads = []
    original = CachedClips.__getitem__
    monkeypatch.setattr(CachedClips, "__getitem__", lambda self, i: reads.append(self.indices[i]) or original(self, i))
    cross = probe(weak, tmp_path / "all", make_probe_config(), show=False)
    assert len(reads) == len(set(reads))
    alone = probe(weak, tmp_path / "fold2", make_probe_config(fold="2"), show=False)
    folders = (tmp_path / "all" / "fold2", tmp_path / "fold2")
    np.testing.assert_allclose(*(read_predictions(folder / "predictions.csv").probs for folder in folders), atol=1e-6)
    assert cross.runs["fold2"]["n"] == alone.runs["fold2"]["n"]


def test_shared_pooling_is_the_direct_pooling(weak):
    reader = open_cache(weak)
    (split,), _ = plan(reader, "1", "av", seed=0)
    pooled = PooledClips(reader, "av")
    pooled(split.test)  # an earlier split's clips pooled first, in other batches
    shared = pooled(split.train)
    direct = pooled_features(pooled.model, reader, split.train)
    for a, b in zip(shared, direct, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("C", [0.01, 10.0])
def test_the_probe_fits_the_minimum_so_rounding_cannot_move_it(C):
    """A large C on nearly separable features is where lbfgs at scikit-learn's tolerance stops early (coefficients
    0.08 off at C 10 here): another machine's rounding then moves the fit. The probe's fit equals a Newton solver's
    at a tolerance of 1e-12, and a relative change of 1e-6 in the features leaves it where it was."""
    rng = np.random.default_rng(0)
    labels = np.arange(240) % 4
    features = rng.normal(size=(240, 64)) + 2.4 * np.eye(4, 64)[labels]  # (n, F)
    minimum = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=10_000).fit(features, labels).coef_
    fitted = logistic_regression(C, ProbeConfig()).fit(features, labels).coef_
    np.testing.assert_allclose(fitted, minimum, atol=1e-4)
    rounded = features * (1 + 1e-6 * rng.normal(size=features.shape))
    np.testing.assert_allclose(logistic_regression(C, ProbeConfig()).fit(rounded, labels).coef_, fitted, atol=1e-4)


def test_a_probe_beside_balanced_heads_weighs_its_classes_as_they_do():
    """Heads trained with --balance sampler or loss weigh each class inversely to its count, as UAR weighs classes
    alike; the probe beside them fits that objective too, which finds more of a rare class than the plain fit."""
    assert [probe_config_for(make_config(None, balance=b)).balance for b in ("none", "sampler", "loss")] == [
        "none", "loss", "loss"]
    with pytest.raises(ValueError, match="balance must be none or loss"):
        ProbeConfig(balance="sampler")
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [200, 200, 20])  # class 2 is rare
    features = rng.normal(size=(420, 8)) + 0.8 * np.eye(3, 8)[labels]  # (n, F), classes overlap
    recall = {balance: (logistic_regression(1.0, ProbeConfig(balance=balance)).fit(features, labels)
                        .predict(features)[labels == 2] == 2).mean() for balance in ("none", "loss")}
    assert recall["loss"] > recall["none"] + 0.3


def test_a_balanced_probe_run_records_and_says_its_weighting(synthetic_store, tmp_path):
    probe(synthetic_store, tmp_path / "run", make_probe_config(fold="1", balance="loss"), show=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["probe"]["balance"] == "loss"
    assert "each class weighted inversely to its count" in (tmp_path / "run" / "README.md").read_text()
