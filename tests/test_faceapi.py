"""The `faceapi` vision family: face-api.js's FaceExpressionNet, checked against TF.js itself on real face crops
(tests/data/faceapi_tfjs.npz, made by tests/reference/make_faceapi_fixture.py), its shapes, save/load, the vendored
weights' checksum and stage 3's gradients."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dfer.encoders import build_encoder, rebuild_encoder
from dfer.encoders import faceapi
from dfer.finetune.trainable import layer_groups, make_trainable

FIXTURE = Path(__file__).parent / "data" / "faceapi_tfjs.npz"


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("vision", "faceapi")


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(FIXTURE))


def test_probabilities_and_grid_match_tfjs_on_real_face_crops(encoder, reference):
    crops = torch.from_numpy(reference["crops"]).permute(0, 3, 1, 2)  # (n, 3, 112, 112) uint8
    with torch.no_grad():
        tokens = encoder(crops)  # (n, 49, 256)
        probs = encoder.expressions(crops)  # (n, 7)
    assert list(reference["labels"]) == encoder.classifier.labels
    assert np.abs(probs.numpy() - reference["probs"]).max() < 1e-5
    grid = torch.from_numpy(reference["grid"]).flatten(1, 2)  # (n, 7, 7, 256) NHWC -> (n, 49, 256) row-major
    # float32 convolutions summed in another order: within 1e-5 of the grid's largest values (which reach ~200)
    assert (tokens - grid).abs().max() < 1e-5 * grid.abs().max()
    assert len(set(probs.argmax(1).tolist())) >= 4  # real faces, several expressions: not a constant answer


def test_tokens_shapes_and_what_the_fingerprint_records(encoder):
    images = torch.randint(0, 256, (2, 3, 112, 112), dtype=torch.uint8)
    with torch.no_grad():
        tokens = encoder(images)
        assert torch.allclose(encoder(images.float() / 255), tokens, atol=1e-4)  # float 0..1 reads as uint8
    assert tokens.shape == (2, 49, 256) and bool((tokens >= 0).all())  # after the last block's ReLU
    described = encoder.describe()
    assert {key: described[key] for key in ("id", "dim", "image_size", "num_tokens", "grid", "crop_margin")} == {
        "id": "faceapi", "dim": 256, "image_size": 112, "num_tokens": 49, "grid": 7, "crop_margin": 0.05}
    assert described["revision"] == f"sha256={faceapi.SHIPPED_SHA256[faceapi.MODEL_FILE]}"
    assert described["labels"][5] == "disgusted"
    meta = build_encoder("vision", "faceapi", meta=True)
    assert meta.describe()["dim"] == 256 and sum(p.numel() for p in meta.parameters()) == 323_687
    with pytest.raises(ValueError, match="112x112"):
        encoder(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="vision encoder"):
        build_encoder("audio", "faceapi")


def test_same_padding_pads_the_odd_pixel_bottom_and_right():
    x = torch.ones(1, 1, 4, 4)
    padded = faceapi.same_pad(x, stride=2)  # TF: out 2, total pad (2 - 1) * 2 + 3 - 4 = 1, all of it after
    assert padded.shape == (1, 1, 5, 5) and padded[0, 0, :4, :4].eq(1).all() and padded[0, 0, 4].eq(0).all()
    assert faceapi.same_pad(x, stride=1).shape == (1, 1, 6, 6)  # stride 1: one pixel on every side


def test_save_load_round_trip(encoder, tmp_path):
    encoder.save(tmp_path / "tuned")
    loaded = build_encoder("vision", str(tmp_path / "tuned"))
    images = torch.randint(0, 256, (2, 3, 112, 112), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(loaded(images), encoder(images))
        assert torch.equal(loaded.classifier(loaded(images)), encoder.classifier(encoder(images)))
    assert loaded.describe()["id"] == str(tmp_path / "tuned")
    rebuilt = rebuild_encoder("vision", encoder.describe(), source=tmp_path / "tuned")  # shapes checked
    assert rebuilt.describe()["grid"] == 7


def test_weights_whose_checksum_differs_are_refused(tmp_path, monkeypatch):
    copy = tmp_path / "faceapi"
    shutil.copytree(faceapi.WEIGHTS, copy)
    data = bytearray((copy / faceapi.MODEL_FILE).read_bytes())
    data[1000] ^= 1
    (copy / faceapi.MODEL_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(faceapi, "WEIGHTS", copy)
    with pytest.raises(ValueError, match="SHA-256"):
        faceapi.load_faceapi()


def test_stage3_gradients_reach_the_blocks_it_unfreezes():
    images = torch.randint(0, 256, (2, 3, 112, 112), dtype=torch.uint8)
    encoder = build_encoder("vision", "faceapi").train()
    assert len(encoder.parts().blocks) == 4
    make_trainable(encoder, "last", 2)
    encoder(images).sum().backward()
    grads = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
             for block in encoder.blocks]
    assert grads == [False, False, True, True]
    assert not any(p.requires_grad for p in encoder.classifier.parameters())

    encoder = build_encoder("vision", "faceapi").train()
    make_trainable(encoder, "all")
    encoder(images).sum().backward()
    assert encoder.blocks[0].conv0.conv.weight.grad.abs().sum() > 0  # down to the first convolution
    assert not any(p.requires_grad for p in encoder.classifier.parameters())  # it makes no token
    names = [group["name"] for group in layer_groups(encoder, 1e-4, 0.5, 0.01, "vision")]
    assert "vision.block1" in names and "vision.block4" in names
    with pytest.raises(ValueError, match="lora"):
        make_trainable(build_encoder("vision", "faceapi"), "lora", 4)


def test_params_counts_the_lite_preset():
    from typer.testing import CliRunner

    from dfer.cli import app

    result = CliRunner().invoke(app, ["params", "--preset", "lite", "--json"])
    assert result.exit_code == 0, result.output
    modules = json.loads(result.stdout)["modules"]
    assert modules["vision encoder (faceapi)"] == {"parameters": 323_687, "trainable": False}
    assert modules["audio encoder (ge2e)"]["parameters"] > 0
