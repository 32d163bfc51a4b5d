"""`--in-memory`: a split resident on the training device gives the batches, and the run, of the store itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfer.inference.batch import to_device
from dfer.store.reader import open_cache
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train import data
from dfer.train.config import make_config
from dfer.train.data import CachedClips, EpochOrder, ResidentClips, clip_sets, resident_bytes
from dfer.train.loop import loader_for
from dfer.train.run import train
from dfer.train.splits import plan


def quick(**overrides):
    return make_config(None, **{**dict(epochs=2, batch_size=16, lr=3e-3, heads=SMALL_HEADS, fold="1"), **overrides})


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("syn")
    return {dtype: make_synthetic_store(folder / dtype, token_dtype=dtype) for dtype in ("float16", "int8")}


def _orders(n: int, labels: np.ndarray, seed: int) -> dict[str, EpochOrder]:
    counts = np.bincount(labels)
    return {"listed": EpochOrder(n),
            "shuffled": EpochOrder(n, torch.Generator().manual_seed(seed)),
            "balanced": EpochOrder(n, torch.Generator().manual_seed(seed), (1.0 / counts)[labels])}


@pytest.mark.parametrize("dtype", ["float16", "int8"])
@pytest.mark.parametrize("modalities", ["av", "audio"])
def test_resident_batches_are_the_stores(stores, dtype, modalities):
    """Same positions, same decoded values, labels, masks and audio trimming, batch by batch."""
    reader = open_cache(stores[dtype])
    indices = list(range(0, 72, 2))  # (36,) not contiguous, a last batch of 4
    disk, resident = CachedClips(reader, indices, modalities), ResidentClips(reader, indices, modalities, "cpu")
    np.testing.assert_array_equal(resident.labels, disk.labels)
    lengths = reader.read_all("audio/length")  # (C,)
    for name in ("listed", "shuffled", "balanced"):
        cfg = make_config(None, batch_size=8, workers=1 if name == "shuffled" else 0)  # a worker's seed: not the order's
        orders = (_orders(len(indices), disk.labels, 3)[name] for _ in range(2))  # the same draws, twice
        first, second = (loader_for(clips, cfg, order) for clips, order in zip((disk, resident), orders))
        assert len(first) == len(second) == 5
        for a, b in zip(first, second, strict=True):
            a, b = to_device(a, torch.device("cpu")), to_device(b, torch.device("cpu"))
            assert a.keys() == b.keys() and "video_tokens_scale" not in b
            for key in a:
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), (name, key)
            assert b["audio_tokens"].dtype == torch.float32
            assert b["audio_tokens"].shape[1] == max(int(b["audio_length"].max()), 1)  # trimmed to the batch
    assert len(set(lengths[indices])) > 1  # batches have different spans to be trimmed to


def test_an_epoch_order_is_fixed_by_its_seed():
    labels = np.array([0, 0, 0, 0, 1, 2])
    orders = [_orders(6, labels, 5)["balanced"].positions() for _ in range(2)]
    assert torch.equal(*orders)
    shuffled = _orders(6, labels, 5)["shuffled"].positions()
    assert sorted(shuffled.tolist()) == list(range(6))


@pytest.mark.parametrize("balance", ["none", pytest.param("sampler", marks=pytest.mark.slow)])  # CI runs both
def test_a_resident_run_is_the_run_from_disk(stores, tmp_path, balance):
    store = stores["int8"]
    from_disk = train(store, tmp_path / "disk", quick(balance=balance), show=False).runs["fold1"]
    resident = train(store, tmp_path / "resident", quick(balance=balance, in_memory=True), show=False).runs["fold1"]
    assert resident == from_disk


def test_resident_bytes_are_what_is_loaded(stores):
    reader = open_cache(stores["int8"])
    lengths = reader.read_all("audio/length")  # (C,) 8..16 frames of 16
    indices = [i for i in range(len(lengths)) if lengths[i] < 14]  # a split shorter than the store's longest clip
    resident = ResidentClips(reader, indices, "av", "cpu")
    assert resident_bytes(reader, indices, "av") == sum(t.numel() * t.element_size() for t in resident.arrays.values())
    assert resident.arrays["video_tokens"].dtype == torch.int8  # codes, decoded per batch
    assert resident.arrays["audio_tokens"].shape[1] == lengths[indices].max() < reader.layout["audio_frames"]


def test_a_split_that_does_not_fit_is_refused_before_loading(stores, monkeypatch):
    reader = open_cache(stores["float16"])
    (split,), _ = plan(reader, "1", "av", seed=0)
    needed = sum(resident_bytes(reader, getattr(split, part), "av") for part in ("train", "val"))
    free = needed // 2
    monkeypatch.setattr(data, "free_bytes", lambda device: free)
    read, read_all = [], type(reader).read_all
    monkeypatch.setattr(type(reader), "read_all", lambda self, name: read.append(name) or read_all(self, name))
    with pytest.raises(MemoryError) as error:
        clip_sets(reader, split, "av", True, "cpu")
    message = str(error.value)
    assert f"need {needed / 2**30:.2f} GiB" in message and f"has {free / 2**30:.2f} GiB free" in message
    assert "--from-disk" in message
    assert not any(name.endswith("tokens") for name in read)  # nothing loaded
    monkeypatch.undo()
    sets = clip_sets(reader, split, "av", True, "cpu")
    assert isinstance(sets["train"], ResidentClips) and isinstance(sets["test"], CachedClips)
