"""Stage 2 through the real store, reader, splits, loop and CLI, on a synthetic cache that carries its labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from dfer.cli import app
from dfer.distributed import Ranks
from dfer.evaluation.evaluate import evaluate_run
from dfer.extract.pipeline import extract_config
from dfer.finetune.config import make_finetune_config
from dfer.heads import FUSIONS, DferHeads
from dfer.store.fingerprint import FingerprintMismatch
from dfer.store.h5 import export_h5
from dfer.store.reader import open_cache
from dfer.testing.ranks import torchrun
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train import checkpoint
from dfer.train.config import head_config, make_config
from dfer.train.data import CachedClips
from dfer.train.loop import fit
from dfer.train.predictions import read_predictions
from dfer.train.run import train
from dfer.train.splits import plan

REPO = Path(__file__).resolve().parents[1]
CLIP_FILES = ("predictions.csv", "confusion.png", "recall.png", "reliability.png")


def quick(**overrides):
    settings = dict(epochs=8, batch_size=16, lr=3e-3, patience=8, heads=SMALL_HEADS, fold="1")
    settings.update(overrides)
    return make_config(None, **settings)


# the default fusion in the default suite, the others with the slow tests (CI runs both)
@pytest.mark.parametrize("fusion", [f if f == "liquid" else pytest.param(f, marks=pytest.mark.slow) for f in FUSIONS])
def test_every_fusion_learns_av(synthetic_store, tmp_path, fusion):
    result = train(synthetic_store, tmp_path / "run", quick(fusion=fusion), show=False)
    assert result.runs["fold1"]["UAR"] > 0.7  # chance is 1/3


@pytest.mark.parametrize("modalities", ["audio", "video"])
def test_unimodal_modes_learn(synthetic_store, tmp_path, modalities):
    result = train(synthetic_store, tmp_path / "run", quick(modalities=modalities), show=False)
    assert result.runs["fold1"]["UAR"] > 0.7


def test_unimodal_models_skip_clips_without_their_modality(synthetic_store):
    reader = open_cache(synthetic_store)
    has_audio = reader.read_all("has_audio")
    (split,), _ = plan(reader, "1", "audio", seed=0)
    assert all(has_audio[i] for i in split.train + split.val + split.test)


def test_validation_is_held_out_by_speaker(synthetic_store):
    reader = open_cache(synthetic_store)
    speakers = reader.read_all("speaker")
    splits, skipped = plan(reader, "all", "av", seed=0)
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3"] and skipped == []
    for split in splits:
        train_, val, test = (set(speakers[getattr(split, p)]) for p in ("train", "val", "test"))
        assert val and not (train_ & val) and not (train_ & test) and not (val & test)
        assert any("held out training speakers" in note for note in split.notes)


def test_official_split_protocol(tmp_path):
    store = make_synthetic_store(tmp_path / "store", split_protocol=True)
    (split,), _ = plan(open_cache(store), "all", "av", seed=0)
    assert split.name == "official" and split.val and split.test


@pytest.mark.slow  # every fold trained: 22 s; CI runs it
def test_fold_all_reports_mean_and_std(synthetic_store, tmp_path):
    result = CliRunner().invoke(app, ["train", str(synthetic_store), "--out", str(tmp_path / "run"), "--epochs", "2",
                                      "--batch-size", "16", "--fusion", "concat"])
    assert result.exit_code == 0, result.output
    assert "±" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["folds"]) == {"fold1", "fold2", "fold3"}
    tested = [json.loads((tmp_path / "run" / fold / "results.json").read_text())["test"]
              for fold in ("fold1", "fold2", "fold3")]
    for key in ("WAR", "UAR"):  # mean and sample standard deviation of the folds' own test figures
        values = [figures[key] for figures in tested]
        folds = summary["summary"][key]
        assert folds["values"] == pytest.approx(values)
        assert folds["mean"] == pytest.approx(np.mean(values))
        assert folds["std"] == pytest.approx(np.std(values, ddof=1))
    for fold in ("fold1", "fold2", "fold3"):
        run = tmp_path / "run" / fold
        for name in ("config.json", "best.safetensors", "last.safetensors", "log.csv", "results.json", *CLIP_FILES):
            assert (run / name).exists(), name
        assert list((run / "tensorboard").iterdir())
    assert (tmp_path / "run" / "results.md").read_text().count("|") > 8
    # RUN/predictions.csv pools the folds: every fold's test clips, each once, as each fold scored them
    pooled = read_predictions(tmp_path / "run" / "predictions.csv")
    folds = [read_predictions(tmp_path / "run" / fold / "predictions.csv") for fold in ("fold1", "fold2", "fold3")]
    tested = [c for fold in ("fold1", "fold2", "fold3")
              for c in json.loads((tmp_path / "run" / fold / "config.json").read_text())["split"]["test"]]
    assert pooled.clip_ids == tested and len(set(tested)) == len(tested)
    np.testing.assert_array_equal(pooled.probs, np.concatenate([fold.probs for fold in folds]))
    for name in CLIP_FILES:
        assert (tmp_path / "run" / name).exists(), name


@pytest.mark.slow  # several processes (CI runs the slow tests after the default suite)
def test_torchrun_spreads_the_folds_and_gathers_one_summary(synthetic_store, tmp_path):
    """`torchrun --nproc_per_node 2 -m dfer train --fold all`: folds 1 and 3 train on rank 0, fold 2 on rank 1, and
    rank 0's summary.json (and the probe's beside it) equal one process's exactly: each fold is seeded on its own
    and trains on 1 thread either way."""
    recipe = tmp_path / "small.yaml"
    recipe.write_text(json.dumps({"heads": SMALL_HEADS, "epochs": 2, "batch_size": 16}))  # YAML reads JSON
    args = ["train", synthetic_store, "--recipe", recipe, "--fold", "all"]
    result = CliRunner().invoke(app, [*map(str, args), "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    torchrun([*args, "--out", tmp_path / "two"])
    for summary in ("summary.json", "probe/summary.json"):
        one, two = (json.loads((tmp_path / run / summary).read_text()) for run in ("one", "two"))
        assert list(two["folds"]) == ["fold1", "fold2", "fold3"]
        assert two["folds"] == one["folds"] and two["summary"] == one["summary"]
    assert (tmp_path / "two" / "results.md").read_text() == (tmp_path / "one" / "results.md").read_text()
    assert (tmp_path / "two" / "predictions.csv").read_text() == (tmp_path / "one" / "predictions.csv").read_text()


def test_fewer_batches_than_ranks_is_refused(synthetic_store, tmp_path):
    """A rank without a single batch could not take part in the gradient all-reduce: refused before any is made."""
    reader, cfg = open_cache(synthetic_store), quick()
    model = DferHeads(head_config(reader.streams, reader.classes, cfg))
    with pytest.raises(ValueError, match="1 batches of 16, fewer than the 2 ranks"):
        fit(model, CachedClips(reader, [0, 1], "av"), None, cfg, tmp_path, reader.classes, ranks=Ranks(0, 2, 0, 2))


def test_missing_fold_is_skipped_with_a_note(tmp_path):
    store = make_synthetic_store(tmp_path / "store", speakers=2, folds=3)  # speakers in folds 1 and 2 only
    splits, skipped = plan(open_cache(store), "all", "av", seed=0)
    assert [s.name for s in splits] == ["fold1", "fold2"]
    assert skipped and "fold 3" in skipped[0]


@pytest.mark.slow  # 17 s: two full runs; CI runs it
def test_same_seed_same_metrics(synthetic_store, tmp_path):
    a = train(synthetic_store, tmp_path / "a", quick(epochs=1), show=False).runs["fold1"]
    b = train(synthetic_store, tmp_path / "b", quick(epochs=1), show=False).runs["fold1"]
    assert a == b
    c = train(synthetic_store, tmp_path / "c", quick(epochs=1, seed=1), show=False).runs["fold1"]
    assert c["nll"] != a["nll"]


def test_resume_continues_where_it_stopped(synthetic_store, tmp_path):
    straight = tmp_path / "straight"
    train(synthetic_store, straight, quick(epochs=4), show=False)
    interrupted = tmp_path / "interrupted"

    class StopAfterTwo:
        def step(self, epoch, loss):
            pass

        def epoch_done(self, row):
            if row["epoch"] == 2:
                raise KeyboardInterrupt

    from dfer.train import run as run_module

    original = run_module.TrainProgress
    run_module.TrainProgress = lambda *a, **k: _Context(StopAfterTwo())
    try:
        with pytest.raises(KeyboardInterrupt):
            train(synthetic_store, interrupted, quick(epochs=4), show=False)
    finally:
        run_module.TrainProgress = original
    assert json.loads((interrupted / "resume.json").read_text())["epoch"] == 2
    train(synthetic_store, interrupted, quick(epochs=4), resume=True, show=False)
    for name in ("last", "best"):
        x, y = load_file(str(straight / f"{name}.safetensors")), load_file(str(interrupted / f"{name}.safetensors"))
        for key in x:
            np.testing.assert_allclose(x[key].numpy(), y[key].numpy(), atol=1e-6, err_msg=key)
    assert len((interrupted / "log.csv").read_text().splitlines()) == 5  # header + 4 epochs, no repeats


def test_resume_state_for_other_parameters_is_refused_by_name(tmp_path):
    """An interrupted run whose heads had another parameter list (before roi.saliency.bias was removed) cannot go
    on: the optimizer's moments are stored by parameter position. The error says what to do."""
    def optimizer_and_scheduler(count):
        params = [torch.nn.Parameter(torch.ones(2)) for _ in range(count)]
        optimizer = torch.optim.AdamW(params)
        sum(p.sum() for p in params).backward()
        optimizer.step()
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    checkpoint.save_resume(tmp_path, *optimizer_and_scheduler(3), {"epoch": 2})
    with pytest.raises(ValueError, match="without --resume"):
        checkpoint.load_resume(tmp_path, *optimizer_and_scheduler(2))


class _Context:
    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        return self.inner

    def __exit__(self, *exc):
        return False


@pytest.mark.slow  # three runs: 18 s; CI runs it
def test_h5_export_and_in_memory_give_the_same_run(synthetic_store, tmp_path):
    reference = train(synthetic_store, tmp_path / "zarr", quick(epochs=2), show=False).runs["fold1"]
    h5 = export_h5(synthetic_store, tmp_path / "store.h5")
    assert train(h5, tmp_path / "h5", quick(epochs=2), show=False).runs["fold1"] == reference
    in_memory = train(synthetic_store, tmp_path / "mem", quick(epochs=2, in_memory=True), show=False)
    assert in_memory.runs["fold1"] == reference


def test_evaluate_json_out_and_refusal(synthetic_store, tmp_path):
    train(synthetic_store, tmp_path / "run", quick(epochs=2), show=False)
    out = tmp_path / "evaluated"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--store", str(synthetic_store), "--json",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("WAR", "UAR", "macro_f1", "weighted_f1", "ece", "per_class", "confusion", "display_names"):
        assert key in metrics
    assert "test clips" in metrics["subset"] and metrics["n"] == len(json.loads(
        (tmp_path / "run" / "config.json").read_text())["split"]["test"])
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for name in CLIP_FILES:
        assert (out / name).exists(), name
    again, own = (read_predictions(folder / "predictions.csv") for folder in (out, tmp_path / "run"))
    assert again.clip_ids == own.clip_ids  # the run's own test clips, scored as the run scored them
    np.testing.assert_allclose(again.probs, own.probs, atol=1e-5)  # other batch sizes: float noise only
    other = make_synthetic_store(tmp_path / "other", frames=6)
    with pytest.raises(FingerprintMismatch, match="frames"):
        evaluate_run(tmp_path / "run", other)


def test_predictions_csv_is_the_test_clips_as_the_metrics_saw_them(synthetic_store, tmp_path):
    train(synthetic_store, tmp_path / "run", quick(epochs=2), show=False)
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    results = json.loads((run / "results.json").read_text())["test"]
    header, *rows = (run / "predictions.csv").read_text().splitlines()
    assert header == "clip_id,speaker,label,prediction,p_class0,p_class1,p_class2"
    assert [row.split(",")[0] for row in rows] == config["split"]["test"]
    scored = read_predictions(run / "predictions.csv")
    reader = open_cache(synthetic_store)
    row = {c: i for i, c in enumerate(reader.read_all("clip_id").astype(str))}
    test_rows = [row[c] for c in scored.clip_ids]
    np.testing.assert_array_equal(scored.labels, reader.read_all("label")[test_rows])
    assert scored.speakers == reader.read_all("speaker").astype(str)[test_rows].tolist()
    np.testing.assert_allclose(scored.probs.sum(1), 1.0, atol=1e-6)
    predicted = [line.split(",")[3] for line in rows]
    assert [scored.names[i] for i in scored.probs.argmax(1)] == predicted  # the recorded predictions
    assert np.mean(scored.labels == scored.probs.argmax(1)) == pytest.approx(results["WAR"], abs=1e-12)
    assert results["confusion"] == np.histogram2d(scored.labels, scored.probs.argmax(1), bins=3,
                                                  range=[[-0.5, 2.5]] * 2)[0].astype(int).tolist()
    for name in ("confusion.png", "recall.png", "reliability.png"):
        with Image.open(run / name) as image:
            assert image.format == "PNG"
            image.verify()


def test_every_recipe_loads():
    recipes = sorted((REPO / "recipes").rglob("*.yaml"))
    assert recipes
    for recipe in recipes:
        assert recipe.read_text().startswith("# "), f"{recipe}: the first line must be the command that runs it"
        if recipe.name.startswith("extract"):
            extract_config(recipe, dataset="cremad", root=Path("."), out=Path("x"))
        elif recipe.name.startswith("train"):
            make_config(recipe)
        elif recipe.name.startswith("finetune"):
            make_finetune_config(recipe)
        else:
            raise AssertionError(f"{recipe}: recipes are named extract*, train* or finetune*")


def test_unknown_recipe_key_is_named(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("# dfer train\nepochz: 3\n")
    with pytest.raises(ValueError, match="epochz"):
        make_config(recipe)


def test_inputs_are_standardised_with_training_statistics(synthetic_store, tmp_path):
    """Tokens are standardised per dimension with training-clip statistics, saved with the weights."""
    train(synthetic_store, tmp_path / "run", quick(epochs=1), show=False)
    weights = load_file(str(tmp_path / "run" / "best.safetensors"))
    reader = open_cache(synthetic_store)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    clip_ids = list(reader.read_all("clip_id"))
    train_rows = [clip_ids.index(c) for c in config["split"]["train"]]
    frames = np.concatenate([reader.read("audio/tokens", i)[: int(reader.read("audio/length", i))]
                             for i in train_rows if reader.read("has_audio", i)]).astype(np.float64)
    np.testing.assert_allclose(weights["audio_mean"].numpy(), frames.mean(0), atol=1e-3)
    np.testing.assert_allclose(weights["audio_std"].numpy(), frames.std(0), atol=1e-3)
    assert weights["video_std"].min() > 0
