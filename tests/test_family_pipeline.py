"""Every encoder family through the whole pipeline at toy size: extract two bundled CREMA-D clips, train the heads,
evaluate the run and predict a raw file, each stage rebuilding the encoders from the store's fingerprint; a family
with its own classifier (faceapi) also makes a zero-shot run that evaluate and predict take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from fastapi.testclient import TestClient

from dfer.encoders import build_encoder
from dfer.evaluation.evaluate import evaluate_run
from dfer.extract.pipeline import ExtractConfig, run as extract
from dfer.finetune.config import make_finetune_config
from dfer.finetune.run import finetune
from dfer.params import parameter_table
from dfer.predict.explain import ZEROSHOT_HEAT, explain_file
from dfer.predict.predictor import Predictor
from dfer.serve.app import create_app
from dfer.store.reader import open_cache
from dfer.train.config import make_config
from dfer.train.run import train
from dfer.train.zeroshot import make_zeroshot_config, zeroshot

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "cremad"
SMALL_HEADS = {"d_model": 16, "roi_queries": 2, "temporal_layers": 1, "heads": 2, "cfc_units": 16,
               "statistics_width": 8}


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory) -> dict[str, str]:
    """A tiny random HuBERT and DINOv2 of the real classes, saved as the hub holds them."""
    root = tmp_path_factory.mktemp("hf")
    transformers.set_seed(0)
    transformers.HubertModel(transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, conv_dim=(8, 8, 8),
        conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )).save_pretrained(root / "hubert")
    transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=16, mlp_ratio=2,
    )).save_pretrained(root / "dinov2")
    return {"vision": f"hf:{root / 'dinov2'}", "audio": f"hf:{root / 'hubert'},layer=2"}


FAMILIES = {"ge2e": ("random:tiny", "ge2e"), "mel": ("random:tiny", "mel"), "faceapi": ("faceapi", "random:tiny")}


@pytest.mark.parametrize("family", ["ge2e", "mel", "hf", "faceapi"])
def test_family_extracts_trains_evaluates_and_predicts(family, tmp_path, hf_folders):
    vision, audio = (hf_folders["vision"], hf_folders["audio"]) if family == "hf" else FAMILIES[family]
    store = tmp_path / "store"
    summary = extract(ExtractConfig(dataset="cremad", root=SAMPLE, out=store, preset="tiny", vision=vision,
                                    audio=audio, frames=4, limit=2, progress=False))
    assert (summary.done, summary.failures) == (2, [])
    recorded = open_cache(store).fingerprint
    assert recorded["audio"]["id"] == ("ge2e,layer=2" if family == "ge2e" else audio)
    assert recorded["vision"]["id"] == vision
    assert recorded["crop_margin"] == (0.05 if family == "faceapi" else 0.25)  # the crops the family was trained on
    assert open_cache(store).read("video/faces", 0).shape == (4, 3, *[recorded["vision"]["image_size"]] * 2)

    run = tmp_path / "run"
    train(store, run, make_config(None, fold="none", epochs=1, batch_size=2, heads=SMALL_HEADS), show=False)
    metrics = evaluate_run(run, store)
    assert metrics["subset"].startswith("every usable clip") and 0 <= metrics["UAR"] <= 1

    predictor = Predictor(run)
    assert predictor.encoders == {"video": vision, "audio": recorded["audio"]["id"]}  # stream -> its encoder
    result = predictor.predict_file(sorted((SAMPLE / "VideoFlash").glob("*.flv"))[0])
    assert len(result["probs"]) == len(predictor.classes) and abs(sum(result["probs"]) - 1) < 1e-4

    counts = parameter_table("tiny", vision=vision, audio=audio)["modules"]
    assert f"audio encoder ({audio})" in counts
    if family == "faceapi":
        faceapi_runs_everywhere(store, run, tmp_path)


def faceapi_runs_everywhere(store: Path, run: Path, tmp_path: Path) -> None:
    """The heads' explanation on the 7x7 grid, stage 3 through the encoder's blocks, and a zero-shot run that
    evaluate, predict, serve and explain take."""
    clip = SAMPLE / "VideoFlash" / "1001_DFA_DIS_XX.flv"
    explained = explain_file(Predictor(run), clip)
    assert explained.attention.shape == (4, 7, 7) and explained.faces.shape == (4, 3, 112, 112)

    cfg = make_finetune_config(None, unfreeze="last:1", epochs=1, batch_size=2, augment=False)
    finetune(store, run, tmp_path / "tuned", cfg, show=False)
    tuned = build_encoder("vision", str(tmp_path / "tuned" / "vision"))
    original = build_encoder("vision", "faceapi")
    moved = [not torch.equal(a, b) for a, b in zip(tuned.blocks.parameters(), original.blocks.parameters())]
    assert any(moved) and not any(moved[: -len(list(tuned.blocks[-1].parameters()))])  # the last block alone

    zeroshot(store, tmp_path / "zeroshot", make_zeroshot_config(fold="none"), show=False)
    assert 0 <= evaluate_run(tmp_path / "zeroshot", store)["UAR"] <= 1
    predictor = Predictor(tmp_path / "zeroshot")
    answer = predictor.predict_file(clip)
    assert answer["top1"] == "disgust" and answer["labels"][1] == "disgust"  # words, and the right one
    with TestClient(create_app(predictor)) as client:  # dfer serve
        served = client.post("/predict", files={"file": (clip.name, clip.read_bytes(), "video/x-flv")})
    assert served.status_code == 200 and served.json()["top1"] == "disgust"
    explained = explain_file(predictor, clip)
    assert explained.attention.shape == (4, 7, 7) and np.allclose(explained.attention.sum((1, 2)), 1, atol=1e-4)
    assert "zero-shot run" in " ".join(explained.record["explain"]["notes"])
    assert explained.heat == ZEROSHOT_HEAT  # the PNG's colour bar calls the heat class evidence, not attention
