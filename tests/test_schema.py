"""The store schema (`dfer.store.schema`): the documented layout, the stores it creates, its encodings, blank rows
and the batches it defines."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import torch
import zarr

from dfer.store.reader import open_cache
from dfer.store.schema import (INFO_PREFIX, LISTING_DTYPES, MEDIA_ARRAYS, MEDIA_BATCH, TOKEN_BATCH, TOKEN_DTYPES,
                               TOKEN_KEYS, Layout, array_specs, batch_arrays, blank_row, decode_tokens, decode_waveform, encode_tokens,
                               encode_waveform)
from dfer.testing.synthetic_store import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
LAYOUT = Layout(frames=4, image_size=32, num_tokens=4, vision_dim=8, audio_dim=6, audio_frames=16, samples=1000,
                keep_media=True)


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
    layout = Layout(**group.attrs["layout"])
    clips = group["clip_id"].shape[0]
    for name, spec in array_specs(layout).items():
        array = group[name]
        assert array.shape == (clips, *spec.shape) and array.chunks == (1, *spec.shape), name
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
    specs = array_specs(dataclasses.replace(LAYOUT, vision_dim=D, token_dtype="int8"))
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
    assert {field.array for field in [*TOKEN_BATCH.values(), *MEDIA_BATCH.values()]} <= names
    audio = batch_arrays(["audio"])
    assert "video/tokens" not in audio.values() and "audio/tokens" in audio.values()
    assert set(TOKEN_KEYS) <= set(batch_arrays(["video", "audio"]))
    media = batch_arrays(["video", "audio"], media=True)
    assert set(TOKEN_KEYS).isdisjoint(media) and set(MEDIA_ARRAYS.values()) <= set(media.values())
    assert batch_arrays(["video"], media=True).keys() == {"faces", "landmarks", "face_found", "has_video",
                                                          "has_audio", "frame_time", "label"}
    reader = open_cache(make_synthetic_store(tmp_path / "store"))
    row = {key: reader.read(array, 0) for key, array in batch_arrays(["video", "audio"]).items()}
    assert row["video_tokens"].shape == (4, 4, 8) and row["audio_tokens"].shape == (16, 8)
