"""int8 token stores (`--token-dtype int8`) against float16 ones of the same clips: extraction, fingerprint, `dfer info`,
the loader (decoded on the device), stage 2, the probe, HDF5 export and in-memory mode.

Tolerances: int8 tokens are within 2 % of a standard deviation (RMS, per-dimension standardised) of the float16 ones
(`test_schema`), so heads and probes trained on either see the same inputs up to that noise; on these tiny, seeded
runs their test probabilities agree within 0.02 and their metrics within one test clip's worth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dfer.cli import app
from dfer.evaluation.evaluate import evaluate_run
from dfer.inference.batch import collate, to_device
from dfer.store.fingerprint import FingerprintMismatch
from dfer.store.h5 import export_h5
from dfer.store.reader import open_cache
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synth import write_audio, write_clip
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train.config import make_config
from dfer.train.data import CachedClips, ResidentClips
from dfer.train.predictions import read_predictions
from dfer.train.probe import make_probe_config, probe
from dfer.train.run import train

PROBS_TOLERANCE = 0.02


def quick(**overrides):
    settings = dict(epochs=2, batch_size=16, lr=3e-3, patience=8, heads=SMALL_HEADS, fold="1")
    settings.update(overrides)
    return make_config(None, **settings)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """The same synthetic clips (same seed) stored as float16 and as int8."""
    folder = tmp_path_factory.mktemp("syn")
    return {dtype: make_synthetic_store(folder / dtype, token_dtype=dtype) for dtype in ("float16", "int8")}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[str, Path]:
    """Six generated clips (one audio-only) through `dfer extract` (tiny encoders), once per token dtype."""
    folder = tmp_path_factory.mktemp("media")
    rows = []
    for i in range(5):
        write_clip(folder / f"clip{i}.mp4", seconds=1.0 + 0.2 * i, tone_hz=300 + 50 * i)
        rows.append(f"clip{i}.mp4,{['calm', 'angry'][i % 2]},s{i % 3},{['train', 'train', 'val', 'test', 'test'][i]}")
    write_audio(folder / "voice.flac", seconds=1.5)
    rows.append("voice.flac,angry,s1,train")
    (folder / "manifest.csv").write_text("path,label,speaker,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stores = {}
    for dtype in ("float16", "int8"):
        stores[dtype] = folder / dtype
        result = CliRunner().invoke(app, ["extract", "manifest", str(folder / "manifest.csv"), "--out",
                                          str(stores[dtype]), "--preset", "tiny", "--frames", "4", "--token-dtype",
                                          dtype])
        assert result.exit_code == 0, result.output
    return stores


def _standardised_rms(decoded: np.ndarray, reference: np.ndarray) -> float:
    """RMS error in each dimension's standard deviations over the clips (`reference` (L, D))."""
    return float(np.sqrt((((decoded - reference) / reference.std(0)) ** 2).mean()))


def test_extracted_int8_tokens_are_within_the_bound(extracted):
    half, codes = open_cache(extracted["float16"]), open_cache(extracted["int8"])
    for stream in ("video", "audio"):
        held = np.flatnonzero(half.read_all("has_" + stream))
        reference, decoded = [], []
        for index in held:
            length = int(half.read("audio/length", index)) if stream == "audio" else None
            reference.append(half.tokens(stream, index)[:length])
            decoded.append(codes.tokens(stream, index)[:length])
        D = reference[0].shape[-1]
        rms = _standardised_rms(np.concatenate(decoded).reshape(-1, D), np.concatenate(reference).reshape(-1, D))
        assert rms < 0.02, stream


def test_info_reports_the_dtype_and_a_smaller_store(extracted):
    facts = {}
    for dtype, store in extracted.items():
        result = CliRunner().invoke(app, ["info", str(store), "--json"])
        assert result.exit_code == 0, result.output
        facts[dtype] = json.loads(result.stdout)
    int8 = facts["int8"]
    assert int8["token_dtype"] == "int8" and int8["fingerprint"]["token_dtype"] == "int8"
    assert int8["arrays"]["video/tokens"]["dtype"] == "int8" and int8["arrays"]["audio/tokens_scale"]["dtype"] == "float32"
    assert facts["float16"]["fingerprint"]["token_dtype"] == "float16"
    assert int8["bytes_per_clip"] < facts["float16"]["bytes_per_clip"]
    assert CliRunner().invoke(app, ["info", str(extracted["int8"])]).exit_code == 0  # the table prints too


def test_a_store_refuses_another_token_dtype(extracted):
    store = extracted["float16"]
    result = CliRunner().invoke(app, ["extract", "manifest", str(store.parent / "manifest.csv"), "--out", str(store),
                                      "--preset", "tiny", "--frames", "4", "--token-dtype", "int8"])
    assert result.exit_code != 0
    assert isinstance(result.exception, FingerprintMismatch)
    message = str(result.exception)
    assert str(store) in message and "token_dtype: store has 'float16', this run has 'int8'" in message


def test_the_loader_hands_codes_and_the_device_decodes_them(stores):
    reader = open_cache(stores["int8"])
    rows = CachedClips(reader, [0, 1, 2], "av")
    batch = collate([rows[i] for i in range(3)])
    assert batch["video_tokens"].dtype == torch.int8 and batch["audio_tokens"].dtype == torch.int8
    assert batch["video_tokens_scale"].shape == (3, 1, 1, 8)  # (B, 1, 1, D): broadcasts over (B, T, N, D)
    on_device = to_device(batch, torch.device("cpu"))
    assert on_device["video_tokens"].dtype == torch.float32 and "video_tokens_scale" not in on_device
    expected = np.stack([reader.tokens("video", i) for i in range(3)])  # (B, T, N, D)
    np.testing.assert_allclose(on_device["video_tokens"].numpy(), expected, atol=1e-6)
    resident = ResidentClips(reader, [0, 1, 2], "av", "cpu").batch(torch.arange(3))  # codes and scales, as stored
    assert resident.keys() == batch.keys() and all(torch.equal(resident[key], batch[key]) for key in batch)


def _test_probs(run: Path) -> np.ndarray:
    return read_predictions(run / "predictions.csv").probs


@pytest.mark.slow  # four runs: 21 s; CI runs it
def test_heads_and_probe_on_int8_match_float16(stores, tmp_path):
    runs = {dtype: train(store, tmp_path / dtype, quick(), show=False).runs["fold1"] for dtype, store in stores.items()}
    n = runs["float16"]["n"]
    for metric in ("WAR", "UAR"):
        assert abs(runs["int8"][metric] - runs["float16"][metric]) <= 100 / n, metric  # within one clip
    folders = {dtype: tmp_path / dtype for dtype in stores}  # one fold: the run folder itself
    np.testing.assert_allclose(*(_test_probs(folder) for folder in folders.values()), atol=PROBS_TOLERANCE)
    probes = {dtype: tmp_path / dtype / "probe" for dtype in stores}  # `dfer train` fits one beside
    np.testing.assert_allclose(*(_test_probs(folder) for folder in probes.values()), atol=PROBS_TOLERANCE)
    # a float16 run scores an int8 store of the same clips as its own
    scored = evaluate_run(folders["float16"], stores["int8"])
    assert abs(scored["UAR"] - runs["float16"]["UAR"]) <= 100 / n


@pytest.mark.slow  # 18 s; CI runs it, and test_train has its float16 twin in the default suite
def test_int8_h5_export_and_in_memory_give_the_same_run(stores, tmp_path):
    store = stores["int8"]
    reference = train(store, tmp_path / "zarr", quick(), show=False).runs["fold1"]
    h5 = export_h5(store, tmp_path / "store.h5")
    assert train(h5, tmp_path / "h5", quick(), show=False).runs["fold1"] == reference
    assert train(store, tmp_path / "mem", quick(in_memory=True), show=False).runs["fold1"] == reference
    assert probe(h5, tmp_path / "probe", make_probe_config(fold="1"), show=False).runs["fold1"]["n"] == reference["n"]
