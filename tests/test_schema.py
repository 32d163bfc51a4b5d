"""The store schema (`dfer.store.schema`): the documented layout, the stores it creates, its encodings, blank rows
and the batches it defines; and the store's files (`dfer.store.clip_store`): how few, how shards are written, and
old formats."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from dfer.data.clip import Clip, DatasetListing
from dfer.store.clip_store import FILES_FIXED, FILES_PER_CLIP, ClipStore, shard_clips
from dfer.store.reader import open_cache
from dfer.store.schema import (INFO_PREFIX, LISTING_DTYPES, MEDIA_ARRAYS, TOKEN_DTYPES, Layout, array_specs,
                               batch_arrays, blank_row, decode_tokens, decode_waveform, encode_tokens, encode_waveform)
from dfer.streams import Stream
from dfer.testing.synthetic_store import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
HISTORIC = dict(frames=4, image_size=32, num_tokens=4, vision_dim=8, audio_dim=6, audio_frames=16, samples=1000,
                keep_media=True)  # a format-3 store's `layout` attribute
LAYOUT = Layout.from_record(HISTORIC)
VIDEO, AUDIO = Stream("video", "face", 8, 2, 4, 32), Stream("audio", "waveform", 8, frame_seconds=0.08)


def _documented() -> dict[str, str]:
    """Array name -> dtype from the table in cache/README.md (`string` for text)."""
    table = {}
    for line in (REPO / "cache/README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            for name in re.findall(r"`([^`]+)`", cells[0]):
                table[name] = cells[2]
    return table


def _dtype_name(dtype) -> str:
    return "string" if dtype is str else str(dtype)


def test_readme_documents_every_array_with_its_dtype():
    specs: dict[str, str] = {}  # name -> its dtypes over every token dtype, e.g. "float16 / int8"
    for token_dtype in TOKEN_DTYPES:
        for name, spec in array_specs(dataclasses.replace(LAYOUT, token_dtype=token_dtype)).items():
            dtypes = specs.get(name, "").split(" / ") if name in specs else []
            specs[name] = " / ".join(dict.fromkeys([*dtypes, _dtype_name(spec.dtype)]))
    listing = {name: _dtype_name(dtype) for name, dtype in LISTING_DTYPES.items()}
    documented = _documented()
    assert documented.pop(f"{INFO_PREFIX}<key>") == "string"
    assert documented == {**specs, **listing}


def test_store_arrays_follow_the_specs(tmp_path):
    store = make_synthetic_store(tmp_path / "store")
    group = zarr.open_group(str(store), mode="r")
    layout = Layout.from_record(group.attrs["layout"])
    clips = group["clip_id"].shape[0]
    for name, spec in array_specs(layout).items():
        array = group[name]
        assert array.shape == (clips, *spec.shape) and array.chunks == (1, *spec.shape), name  # a chunk per clip
        assert array.shards == (group.attrs["shard_clips"], *spec.shape), name  # in shards of `shard_clips`
        if spec.dtype is not str:
            assert array.dtype == np.dtype(spec.dtype), name
            assert np.array_equal(array.fill_value, np.asarray(spec.fill, spec.dtype), equal_nan=True), name
    assert set(MEDIA_ARRAYS.values()).isdisjoint(group.array_keys())  # keep_media off: no media arrays


def test_waveform_round_trip_clips_and_pads():
    wave = np.array([0.0, 0.5, -0.25, 1.5, -2.0], np.float32)  # (S,), two samples out of range
    stored = encode_waveform(wave, samples=8)
    assert stored.dtype == np.int16 and stored.shape == (8,)
    assert stored[3] == 32767 and stored[4] == -32767 and not stored[5:].any()
    assert np.allclose(decode_waveform(stored)[:5], np.clip(wave, -1, 1), atol=1 / 32767)
    assert encode_waveform(np.ones(20, np.float32), samples=8).shape == (8,)  # longer than S_max: cut


def test_tokens_round_trip():
    tokens = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)  # (N, D)
    stored = encode_tokens("video/tokens", tokens, "float16")["video/tokens"]
    assert stored.dtype == np.dtype(array_specs(LAYOUT)["video/tokens"].dtype)
    assert decode_tokens(stored).dtype == np.float32
    assert np.allclose(decode_tokens(stored), tokens, rtol=1e-3, atol=1e-3)


def _standardised_error(decoded: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The error in each dimension's standard deviations: the units of the heads' per-dimension standardisation."""
    return (decoded - tokens) / tokens.reshape(-1, tokens.shape[-1]).std(0)


def test_int8_tokens_survive_outlier_dimensions():
    rng = np.random.default_rng(0)
    D = 64
    tokens = rng.normal(size=(16, 49, D)) * rng.uniform(0.5, 2, D) + rng.normal(0, 3, D)  # (T, N, D), own offsets
    tokens[..., [3, 17, 40]] *= 100  # a vision transformer's few outlier dimensions
    tokens = tokens.astype(np.float32)
    stored = encode_tokens("video/tokens", tokens, "int8")
    assert list(stored) == ["video/tokens", "video/tokens_scale", "video/tokens_offset"]
    assert stored["video/tokens"].dtype == np.int8 and stored["video/tokens_scale"].shape == (1, 1, D)
    specs = array_specs(Layout.from_record({**HISTORIC, "vision_dim": D, "token_dtype": "int8"}))
    assert all(specs[name].shape[-1] == D and np.dtype(specs[name].dtype) == value.dtype for name, value in
               stored.items())
    decoded = decode_tokens(*stored.values())  # (T, N, D) float32
    assert decoded.dtype == np.float32
    error = _standardised_error(decoded, tokens)
    assert np.sqrt((error ** 2).mean()) < 0.02  # the bound cache/README.md states: 2 % of a std, RMS
    assert np.all(np.abs(decoded - tokens) <= stored["video/tokens_scale"] * 0.501)  # half a step, everywhere
    # the naive per-token absmax scale is set by the outlier dimensions and loses every other one
    scale = np.abs(tokens).max(-1, keepdims=True) / 127  # (T, N, 1)
    naive = _standardised_error(np.rint(tokens / scale) * scale, tokens)
    assert np.sqrt((naive ** 2).mean()) > 0.5  # 0.90


def test_int8_audio_padding_stays_out_of_the_range():
    tokens = np.zeros((10, 4), np.float32)  # (Ta_max, Da): 6 valid frames far from the zero padding
    tokens[:6] = 50 + np.random.default_rng(1).normal(size=(6, 4))
    stored = encode_tokens("audio/tokens", tokens, "int8", valid=6)
    assert not stored["audio/tokens"][6:].any()  # padding: code 0
    assert np.abs(decode_tokens(*stored.values())[:6] - tokens[:6]).max() < 0.02  # a range of ~4, not of ~52
    constant = encode_tokens("audio/tokens", np.ones((3, 2), np.float32), "int8")  # no spread: scale 0, exact
    assert np.array_equal(decode_tokens(*constant.values()), np.ones((3, 2), np.float32))


def test_int8_decodes_alike_on_numpy_and_torch():
    tokens = np.random.default_rng(2).normal(size=(2, 5, 3, 8)).astype(np.float32)  # (B, T, N, D)
    clips = [encode_tokens("video/tokens", clip, "int8") for clip in tokens]
    batch = {name: np.stack([clip[name] for clip in clips]) for name in clips[0]}  # scales (B, 1, 1, D)
    on_numpy = np.stack([decode_tokens(*clip.values()) for clip in clips])
    on_torch = decode_tokens(*(torch.from_numpy(value) for value in batch.values()))
    assert on_torch.dtype == torch.float32
    assert np.allclose(on_torch.numpy(), on_numpy, atol=1e-6)


def test_blank_int8_row_decodes_to_zeros():
    blank = blank_row(dataclasses.replace(LAYOUT, token_dtype="int8"),
                      ["video/tokens", "video/tokens_scale", "video/tokens_offset"])
    assert blank["video/tokens"].dtype == np.int8 and blank["video/tokens_scale"].shape == (1, 1, 8)
    assert not decode_tokens(*blank.values()).any()


def test_blank_row_holds_the_fill_values_and_skips_listing_columns():
    blank = blank_row(LAYOUT, ["video/tokens", "video/track_rank", "video/speaker_score", "label"])
    assert set(blank) == {"video/tokens", "video/track_rank", "video/speaker_score"}  # label has no blank
    assert blank["video/tokens"].shape == (4, 4, 8) and blank["video/tokens"].dtype == np.float16
    assert not blank["video/tokens"].any()
    assert blank["video/track_rank"] == -1 and np.isnan(blank["video/speaker_score"])


def test_batches_read_only_their_streams(tmp_path):
    names = set(array_specs(LAYOUT)) | set(LISTING_DTYPES)
    for media in (False, True):
        for token_dtype in TOKEN_DTYPES:
            fields = batch_arrays([AUDIO, VIDEO], media, token_dtype)
            assert set(fields.values()) <= set(array_specs(dataclasses.replace(LAYOUT, token_dtype=token_dtype))) | names
    audio = batch_arrays([AUDIO])
    assert "video/tokens" not in audio.values() and "video/landmarks" not in audio.values()
    assert audio["audio_tokens"] == "audio/tokens" and audio["audio_length"] == "audio/length"
    media = batch_arrays([VIDEO, AUDIO], media=True)
    assert not any(key.endswith("_tokens") for key in media) and set(MEDIA_ARRAYS.values()) <= set(media.values())
    assert batch_arrays([VIDEO], media=True).keys() == {"faces", "landmarks", "face_found", "has_video",
                                                        "has_audio", "frame_time", "label"}
    reader = open_cache(make_synthetic_store(tmp_path / "store"))
    row = {key: reader.read(array, 0) for key, array in batch_arrays([VIDEO, AUDIO]).items()}
    assert row["video_tokens"].shape == (4, 4, 8) and row["audio_tokens"].shape == (16, 8)


def test_a_store_of_any_streams_has_each_streams_tokens_and_each_inputs_arrays():
    """Format 4: `<stream>/tokens` per stream (and `<stream>/length` per sequence), the face track where a stream
    reads faces, the waveform where one hears; the historic two keep format 3's attribute, key for key."""
    encoders = {"face": ("vision", {"dim": 8, "grid": 2, "num_tokens": 4, "image_size": 32}),
                "speech": ("audio", {"dim": 6, "frame_seconds": 0.01, "sample_rate": 16000}),
                "prosody": ("audio", {"dim": 3, "frame_seconds": 0.01, "sample_rate": 16000})}
    layout = Layout.from_settings(4, encoders, max_seconds=1.0, keep_media=True)
    assert layout.format == "dfer-cache/4" and not layout.historic
    specs = array_specs(layout)
    assert specs["face/tokens"].shape == (4, 4, 8) and specs["speech/tokens"].shape == (101, 6)
    assert specs["prosody/tokens"].shape == (101, 3) and "prosody/length" in specs and "face/length" not in specs
    assert {"video/landmarks", "video/faces", "audio/waveform", "audio/num_samples"} <= set(specs)
    assert Layout.from_record(layout.record()) == layout
    hearing = Layout.from_settings(4, {"speech": encoders["speech"]}, max_seconds=1.0, keep_media=True)
    assert not any(name.startswith("video/") and name != "video/frame_time" for name in array_specs(hearing))
    assert LAYOUT.historic and LAYOUT.format == "dfer-cache/3" and LAYOUT.record() == {**HISTORIC, "token_dtype": "float16"}


# ------------------------------------------------------------------------------------ files and shards


def _full_row(layout: Layout, index: int) -> dict[str, np.ndarray]:
    """Every per-clip array of a clip, none of it the fill value, so every shard file is written."""
    row = {}
    for name, spec in array_specs(layout).items():
        if name in ("done", "error"):
            continue
        row[name] = f"clip {index}" if spec.dtype is str else np.full(spec.shape, index % 5 + 1, spec.dtype)
    return row


def _listing(clips: int) -> DatasetListing:
    return DatasetListing("synthetic", ["a", "b"], {"kind": "kfold", "folds": 2},
                          [Clip(f"s{i % 4}/c{i:03d}", None, None, i % 2, f"s{i % 4}", i % 2 + 1, "train",
                                info={"transcript": f"words {i}", "speaker_name": f"n{i % 4}"}) for i in range(clips)])


def _store_files(path: Path) -> list[Path]:
    return [file for file in path.rglob("*") if file.is_file()]


@pytest.mark.parametrize("token_dtype, keep_media", [("float16", False), ("int8", True)])
def test_a_store_of_120_clips_holds_at_most_160_files(tmp_path, token_dtype, keep_media):
    layout = dataclasses.replace(LAYOUT, token_dtype=token_dtype, keep_media=keep_media)  # int8 + media: most arrays
    store = ClipStore.create_or_open(tmp_path / "store", {"test": 1}, layout, _listing(120))
    for index in range(120):
        store.write_clip(index, _full_row(layout, index))
    files = _store_files(tmp_path / "store")
    assert len(files) <= FILES_FIXED + FILES_PER_CLIP * 120 == 160
    shards = math.ceil(120 / store.shard_clips)
    assert len([f for f in files if f.parent.name == "c" and f.parent.parent.name == "done"]) == shards
    reader = open_cache(tmp_path / "store")
    assert reader.read_all("done").all() and reader.read("info/transcript", 7) == "words 7"
    assert np.all(reader.read("video/tokens", 119) == 119 % 5 + 1)


def test_shard_size_keeps_every_store_size_within_the_bound():
    for arrays, other in [(18, 33), (24, 41)]:  # float16 without media .. int8 with media and two info columns
        for clips in [0, 1, 2, 7, 8, 100, 120, 1080, 7000, 100_003]:
            K = shard_clips(clips, arrays, other)
            assert other + arrays * math.ceil(clips / K) <= FILES_FIXED + FILES_PER_CLIP * clips, (arrays, clips)
            assert K <= max(clips, 1)  # a small store gets small shards
    assert shard_clips(8, 20, 33) == 3 and shard_clips(100_000, 20, 33) == 40  # large stores: ~2 x the arrays


def test_a_shard_is_written_once_settled_with_done_last(tmp_path, monkeypatch):
    store = ClipStore.create_or_open(tmp_path / "store", {"test": 1}, LAYOUT, _listing(20))
    K = store.shard_clips
    assert K > 2
    written: list[str] = []
    setitem = zarr.Array.__setitem__
    monkeypatch.setattr(zarr.Array, "__setitem__",
                        lambda array, key, value: (written.append(array.path), setitem(array, key, value))[-1])
    for index in range(K - 1):
        store.write_clip(index, _full_row(LAYOUT, index))
    store.write_failure(K - 1, "bad.mp4: truncated")
    assert written[-2:] == ["error", "done"] and len(written) == len(set(written))  # each shard file once
    written.clear()
    store.write_clip(K, _full_row(LAYOUT, K))  # the next shard stays in memory until it is settled (or flushed)
    assert written == [] and not zarr.open_group(str(tmp_path / "store"), mode="r")["done"][K]
    store.flush()
    assert written[-1] == "done"

    # A re-run redoes the failed clip and keeps its shard's done clips as they were.
    before = open_cache(tmp_path / "store").read("video/tokens", 0)
    again = ClipStore.open(tmp_path / "store")
    again.write_clip(K - 1, _full_row(LAYOUT, K - 1))
    reader = open_cache(tmp_path / "store")
    assert reader.read_all("done")[:K].all() and reader.read("error", K - 1) == ""
    assert np.array_equal(reader.read("video/tokens", 0), before)


def test_stores_of_format_2_stay_readable_and_resumable(tmp_path):
    """Format 2: the same arrays with a chunk file per clip and no `shard_clips`; it reads as shards of one clip."""
    new = zarr.open_group(str(make_synthetic_store(tmp_path / "new", speakers=2, clips_per_speaker=3)), mode="r")
    old = zarr.open_group(str(tmp_path / "old"), mode="w-")
    for name, array in new.members(max_depth=None):
        if isinstance(array, zarr.Array):
            values = array[:]
            copy = old.create_array(name, shape=array.shape, chunks=(1, *array.shape[1:]), dtype=array.dtype,
                                    fill_value=array.fill_value)
            copy[:] = values
    old["done"][5] = False
    old.attrs.update({**{k: v for k, v in new.attrs.items() if k != "shard_clips"}, "format": "dfer-cache/2"})
    reader = open_cache(tmp_path / "old")
    assert reader.read_all("done").sum() == 5 and reader.read("video/tokens", 2).shape == (4, 4, 8)
    store = ClipStore.open(tmp_path / "old")
    assert store.shard_clips == 1
    store.write_clip(5, {"note": "again"})
    assert open_cache(tmp_path / "old").read_all("done").all()
    assert (tmp_path / "old/note/c/5").is_file()  # still a chunk file per clip
