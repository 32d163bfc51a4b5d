"""Stage 3 on four bundled CREMA-D clips with the tiny encoders: the real CLI command, recipe, store and loop."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from dfer import api
from dfer.encoders.audio import load_audio
from dfer.encoders.vision import load_vision
from dfer.evaluation.evaluate import evaluate_run
from dfer.extract.pipeline import ExtractConfig, run as extract
from dfer.finetune.augment import Augment, AugmentConfig
from dfer.cli.finetune import finetune as finetune_command
from dfer.finetune.config import FinetuneConfig, make_finetune_config
from dfer.finetune.data import MediaClips
from dfer.finetune.model import EndToEnd
from dfer.finetune.model import load_end_to_end
from dfer.finetune.run import build_encoders, finetune, finetune_folds
from dfer.finetune.trainable import layer_groups, make_trainable
from dfer.inference.batch import collate
from dfer.inference.score import predict
from dfer.runs.folder import is_end_to_end
from dfer.runs.load import load_run
from dfer.store.reader import open_cache
from dfer.testing.ranks import torchrun
from dfer.testing.sample import SAMPLE, SMALL_HEADS
from dfer.testing.synth import write_audio
from dfer.train.config import make_config
from dfer.train.data import CachedClips
from dfer.train.loop import loader_for
from dfer.train.run import train

REPO = Path(__file__).resolve().parents[1]
CLIPS = 4


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "store"
    summary = extract(ExtractConfig(dataset="cremad", root=SAMPLE, out=out, preset="tiny", frames=4, limit=CLIPS,
                                    progress=False))
    assert (summary.done, summary.failures) == (CLIPS, [])
    return out


@pytest.fixture(scope="module")
def init_run(store) -> Path:
    """A stage-2 run whose recorded split is rewritten to 2 train / 1 val / 1 test clips (the sample has one
    speaker, so no protocol split exists): stage 3 reuses it, so validation, test and results.json all run."""
    out = store.parent / "run"
    train(store, out, make_config(None, fold="none", epochs=1, batch_size=3, heads=SMALL_HEADS), show=False)
    config = json.loads((out / "config.json").read_text())
    ids = config["split"]["train"]
    config["split"].update(name="handmade", train=ids[:2], val=ids[2:3], test=ids[3:])
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def tuned(store, init_run) -> Path:
    """`dfer finetune` through the command function and the demo recipe: 2 optimizer steps (2 clips, batch 1)."""
    app = typer.Typer()
    app.command()(finetune_command)
    out = store.parent / "tuned"
    result = CliRunner().invoke(app, [str(store), "--init", str(init_run), "--out", str(out), "--recipe",
                                      str(REPO / "recipes" / "demo" / "finetune.yaml"), "--epochs", "1",
                                      "--batch-size", "1", "--accumulate", "1"])
    assert result.exit_code == 0, result.output
    return out


def batch_of(store: Path, modalities: str = "av", indices=(0, 1, 2)) -> dict[str, torch.Tensor]:
    clips = MediaClips(open_cache(store), list(indices), modalities)
    return collate([clips[i] for i in range(len(clips))])


def test_rebuilt_encoders_reproduce_the_cached_tokens(store, init_run):
    reader = open_cache(store)
    heads, _ = load_run(init_run)
    vision, audio = build_encoders(reader.fingerprint, "av", FinetuneConfig(), torch.device("cpu"))
    with torch.no_grad():
        tokens = EndToEnd(heads, vision, audio, "fp32").eval().encode(batch_of(store))
    for i in range(3):
        cached = torch.from_numpy(reader.read("video/tokens", i)).float()
        assert torch.allclose(tokens["video_tokens"][i], cached, atol=1e-2)  # float16 cache
        length = int(reader.read("audio/length", i))
        assert int(tokens["audio_length"][i]) == length
        cached = torch.from_numpy(reader.read("audio/tokens", i)[:length]).float()
        assert torch.allclose(tokens["audio_tokens"][i, :length], cached, atol=2e-2)  # + int16 waveform


def test_finetune_trains_encoders_and_heads(tuned, init_run, store):
    config = json.loads((tuned / "config.json").read_text())
    assert config["finetune"]["unfreeze"] == "all" and config["finetune"]["precision"] == "fp32"
    assert config["split"]["train"] == json.loads((init_run / "config.json").read_text())["split"]["train"]
    assert is_end_to_end(tuned) and not is_end_to_end(init_run)
    header, epoch = (tuned / "log.csv").read_text().splitlines()
    assert dict(zip(header.split(","), epoch.split(",")))["val_UAR"] != ""
    results = json.loads((tuned / "results.json").read_text())
    assert results["split"] == "handmade" and results["test"]["n"] == 1
    for name in ("predictions.csv", "confusion.png", "recall.png", "reliability.png"):  # as stage 2 writes them
        assert (tuned / name).exists(), name
    assert (tuned / "predictions.csv").read_text().splitlines()[0].endswith(",p_angry,p_disgust,p_fearful,p_happy,"
                                                                            "p_neutral,p_sad")
    seed = int(open_cache(store).fingerprint["vision"]["revision"].removeprefix("seed="))
    before = {"vision": load_vision("random:tiny", seed).state_dict(),
              "audio": load_audio("random:tiny", seed).state_dict()}
    after = {"vision": load_vision(str(tuned / "vision")).state_dict(),
             "audio": load_audio(str(tuned / "audio")).state_dict()}
    for name in ("vision", "audio"):
        assert after[name].keys() == before[name].keys()
        assert any(not torch.equal(after[name][k], before[name][k]) for k in before[name]), f"no {name} weight changed"
    heads_before = load_file(str(init_run / "best.safetensors"))
    heads_after = load_file(str(tuned / "best.safetensors"))
    assert any(not torch.equal(heads_before[k], heads_after[k]) for k in heads_before)
    for stream in ("video", "audio"):  # the input statistics followed the moving encoders, and were saved
        assert not torch.equal(heads_before[f"{stream}_mean"], heads_after[f"{stream}_mean"])


def test_the_api_function_runs_the_command(tuned, store, init_run, tmp_path):
    """`dfer.api.finetune` with the command's arguments makes the same run, and returns its test metrics."""
    metrics = api.finetune(store, init_run, tmp_path / "api", recipe=REPO / "recipes" / "demo" / "finetune.yaml",
                           epochs=1, batch_size=1, accumulate=1, show=False)
    written = json.loads((tmp_path / "api" / "results.json").read_text())["test"]
    assert json.loads(json.dumps(metrics)) == written
    assert written == json.loads((tuned / "results.json").read_text())["test"]
    for name in ("best.safetensors", "vision/model.safetensors"):
        assert load_file(str(tmp_path / "api" / name)).keys() == load_file(str(tuned / name)).keys()


@pytest.mark.parametrize("unfreeze", ["last:1", "lora:2"])
def test_partial_unfreezing_leaves_the_rest_untouched(store, init_run, unfreeze):
    reader = open_cache(store)
    heads, _ = load_run(init_run)
    vision, audio = build_encoders(reader.fingerprint, "av", FinetuneConfig(), torch.device("cpu"))
    mode, number = FinetuneConfig(unfreeze=unfreeze).mode
    for encoder in (vision, audio):
        make_trainable(encoder, mode, number)
    model = EndToEnd(heads, vision, audio, "fp32")
    expected = {  # what may train besides the heads
        "last:1": lambda name: ".layers.1." in name or "post_layernorm" in name,  # tiny: 2 blocks each
        "lora:2": lambda name: "lora_" in name,
    }[unfreeze]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad and not name.startswith("heads.")}
    assert trainable and all(expected(name) for name in trainable)
    assert all(p.requires_grad for p in heads.parameters())
    if mode == "lora":
        assert {name.split(".")[-4] for name in trainable} >= {"q_proj", "fc2", "linear_q", "linear2"}

    before = {name: value.clone() for name, value in model.state_dict().items()}
    groups = [{"params": list(heads.parameters()), "lr": 1e-3}]
    groups += layer_groups(vision, 1e-3, 0.75, 0.05, "vision") + layer_groups(audio, 1e-3, 0.75, 0.05, "audio")
    optimizer = torch.optim.AdamW(groups)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(batch_of(store))["logits"], batch_of(store)["label"].long())
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    frozen_params = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen_params and not moved & frozen_params
    assert moved & trainable
    frozen_buffers = [name for name in before if any(name.startswith(root + ".") for root in model.frozen)]
    assert not moved & set(frozen_buffers)  # frozen BatchNorms keep their running statistics (eval mode)


def test_refuses_a_store_without_media(store, init_run, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(store, bare)
    for array in ("video/faces", "audio/waveform"):
        shutil.rmtree(bare / array)
    meta = json.loads((bare / "zarr.json").read_text())
    meta["attributes"]["fingerprint"]["keep_media"] = meta["attributes"]["layout"]["keep_media"] = False
    (bare / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"--no-keep-media.*dfer extract cremad ROOT --out NEW_STORE --keep-media"):
        finetune(bare, init_run, tmp_path / "out", FinetuneConfig(epochs=1))
    assert not (tmp_path / "out").exists()


def test_evaluate_from_media_and_reextract_with_the_saved_encoders(tuned, store, init_run, tmp_path):
    metrics = evaluate_run(tuned, store)
    assert set(metrics) == set(evaluate_run(init_run, store))
    assert metrics["n"] == 1 and "test clips" in metrics["subset"]
    assert metrics["WAR"] == json.loads((tuned / "results.json").read_text())["test"]["WAR"]

    again = tmp_path / "again"
    summary = extract(ExtractConfig(dataset="cremad", root=SAMPLE, out=again, preset="tiny",
                                    vision=str(tuned / "vision"), audio=str(tuned / "audio"), frames=4, limit=2, progress=False))
    assert (summary.done, summary.failures) == (2, [])
    # The heads on the re-extracted tokens score like the whole model on the media (float16 cache aside).
    model, config = load_end_to_end(tuned)
    cfg = make_config(None, batch_size=2)
    _, end_to_end = predict(model, loader_for(MediaClips(open_cache(store), [0, 1], "av"), cfg), torch.device("cpu"))
    _, from_tokens = predict(model.heads, loader_for(CachedClips(open_cache(again), [0, 1], "av"), cfg),
                             torch.device("cpu"))
    assert np.allclose(end_to_end, from_tokens, atol=1e-2)


def test_audio_only_builds_and_reads_no_video(store):
    vision, audio = build_encoders(open_cache(store).fingerprint, "audio", FinetuneConfig(), torch.device("cpu"))
    assert vision is None and audio is not None
    assert not {"faces", "landmarks", "face_found"} & set(batch_of(store, "audio"))


def test_face_augmentation_moves_landmarks_with_the_pixels():
    augment = Augment(AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=1.0, jitter=0.0))
    faces = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    faces[..., 2, 1] = 255  # a bright pixel at x=1, y=2
    landmarks = torch.tensor([[1.5, 2.5], [6.0, 2.0], [4.0, 4.0], [2.0, 6.0], [6.0, 6.0]]).repeat(2, 1, 1)
    out, moved = augment.faces(faces, landmarks)
    assert out[0, 0, 2, 6] == 255  # mirrored: x=1 -> 8-1-1
    assert torch.allclose(moved[0, 1], torch.tensor([6.5, 2.5]))  # the marked point, now the image-right eye
    assert torch.allclose(moved[0, 0], torch.tensor([2.0, 2.0]))


def test_audio_augmentation_keeps_the_padding_silent():
    wave = torch.zeros(16000)
    wave[:8000] = torch.sin(torch.arange(8000) / 5.0)
    out = Augment(AugmentConfig(noise=1.0)).waveform(wave, 8000)
    assert out[8000:].abs().max() == 0 and not torch.equal(out[:8000], wave[:8000])


def test_every_finetune_recipe_loads():
    recipes = sorted((REPO / "recipes").rglob("finetune*.yaml"))
    assert recipes
    for recipe in recipes:
        assert recipe.read_text().startswith("# dfer finetune "), f"{recipe}: first line must be its command"
        make_finetune_config(recipe)
    with pytest.raises(ValueError, match="unfreeze"):
        FinetuneConfig(unfreeze="last:x")


@pytest.mark.slow  # several processes (CI runs the slow tests after the default suite)
def test_two_ranks_train_as_one_process_accumulating_two(store, init_run, tmp_path):
    """`torchrun --nproc_per_node 2 -m dfer finetune --batch-size 1` (gloo) against one process with --accumulate 2
    on 3 training clips: step 1 is batches 0 and 1 (rank 0 and rank 1), step 2 batch 2 alone (rank 1 pads with a
    zero-weight batch). Each batch's augmentation and dropout are seeded by its index, so the runs differ only in
    float rounding: DDP sums the two gradients in another order than accumulation does (and each rank runs 1
    thread), ~1e-7 relative. The logged losses keep that (rtol 1e-5; another clip order or step weighting moves
    them by > 1e-3). The weights: Adam divides each gradient by its own RMS, so a weight whose gradient is near 0
    moves by up to lr per step on rounding alone (1.1e-4 seen in one of ~10^4 weights), while 99 % of them agree
    to 1e-6. So every weight stays within the 4 steps x lr that rounding can reach, and the 99th percentile within
    1e-6 (a wrong gradient moves most weights by about lr a step). The heads' input statistics are held fixed:
    under DDP they follow rank 0's batches only."""
    init = tmp_path / "init"
    shutil.copytree(init_run, init)
    config = json.loads((init / "config.json").read_text())
    ids = [*config["split"]["train"], *config["split"]["val"], *config["split"]["test"]]
    # 3 training clips: an uneven last step; 2 validation clips: one scored on each rank (one is also trained on)
    config["split"].update(train=ids[:3], val=ids[2:], test=ids[3:])
    (init / "config.json").write_text(json.dumps(config))
    recipe = tmp_path / "ft.yaml"
    recipe.write_text(json.dumps({"statistics_momentum": 0.0, "epochs": 2, "batch_size": 1, "lr": 1e-3,
                                  "head_lr": 1e-3, "augment": True}))
    args = ["finetune", store, "--init", init, "--recipe", recipe]
    app = typer.Typer()
    app.command()(finetune_command)
    result = CliRunner().invoke(app, [*map(str, args[1:]), "--out", str(tmp_path / "one"), "--accumulate", "2"])
    assert result.exit_code == 0, result.output
    torchrun([*args, "--out", tmp_path / "two", "--accumulate", "1"])

    one, two = tmp_path / "one", tmp_path / "two"
    files = [sorted(p.relative_to(run) for p in run.rglob("*") if "tensorboard" not in p.parts) for run in (one, two)]
    assert files[1] == files[0] and len(list((two / "tensorboard").iterdir())) == 1  # rank 0 wrote, alone
    logs = [np.genfromtxt(run / "log.csv", delimiter=",", names=True) for run in (one, two)]
    for key in ("train_loss", "val_loss", "lr"):
        np.testing.assert_allclose(logs[1][key], logs[0][key], rtol=1e-5, err_msg=key)
    for weights in ("last.safetensors", "vision/model.safetensors", "audio/model.safetensors"):
        mine, theirs = load_file(str(one / weights)), load_file(str(two / weights))
        assert mine.keys() == theirs.keys()
        gaps = torch.cat([(theirs[key].float() - mine[key].float()).abs().flatten() for key in mine])
        assert gaps.max() <= 4 * 1e-3, weights  # 2 epochs x 2 steps at lr 1e-3
        assert torch.quantile(gaps, 0.99) <= 1e-6, weights


@pytest.mark.slow  # every fold; CI runs it
def test_a_cross_validation_fine_tunes_fold_by_fold(tmp_path):
    """`--init` a `train --fold all` run: each fold starts from its own heads and split, and OUT/summary.json holds
    the fine-tuned cross-validation as stage 2's does. RAVDESS-named audio of actors 1-8 = folds 1 and 2."""
    root = tmp_path / "ravdess"
    for actor in range(1, 9):
        for emotion, tone in ((1, 220.0), (5, 880.0)):
            (root / f"Actor_{actor:02d}").mkdir(parents=True, exist_ok=True)
            write_audio(root / f"Actor_{actor:02d}" / f"03-01-0{emotion}-01-01-01-{actor:02d}.wav", 1.0, tone_hz=tone)
    store, stage2, stage3 = tmp_path / "store", tmp_path / "stage2", tmp_path / "stage3"
    summary = extract(ExtractConfig(dataset="ravdess", root=root, out=store, preset="tiny", frames=4, progress=False))
    assert (summary.done, summary.failures) == (16, [])
    train(store, stage2, make_config(None, fold="all", modalities="audio", epochs=1, batch_size=4,
                                     heads=SMALL_HEADS), show=False)
    cfg = FinetuneConfig(epochs=1, batch_size=4, lr=1e-4, augment=False)
    with pytest.raises(ValueError, match="cross-validation"):
        finetune_folds(store, stage2, stage3, dataclasses.replace(cfg, fold="1"), show=False)
    summary = finetune_folds(store, stage2, stage3, cfg, show=False)

    folds = json.loads((stage3 / "summary.json").read_text())["folds"]
    assert sorted(folds) == ["fold1", "fold2"] and summary["UAR"]["values"] == [folds["fold1"]["UAR"],
                                                                                folds["fold2"]["UAR"]]
    for fold in folds:
        config = json.loads((stage3 / fold / "config.json").read_text())
        assert config["finetune"]["init"] == str((stage2 / fold).resolve())
        assert config["split"] == json.loads((stage2 / fold / "config.json").read_text())["split"] | {
            "notes": config["split"]["notes"]}
        assert (stage3 / fold / "audio").is_dir() and (stage3 / fold / "results.json").exists()
    assert "fine-tuned" in (stage3 / "results.md").read_text()
    pooled = (stage3 / "predictions.csv").read_text().splitlines()[1:]  # both folds' test clips, once each
    tested = [c for fold in folds for c in json.loads((stage3 / fold / "config.json").read_text())["split"]["test"]]
    assert [row.split(",")[0] for row in pooled] == tested and (stage3 / "confusion.png").exists()
