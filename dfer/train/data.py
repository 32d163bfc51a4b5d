"""Batches of cached clips for the heads: only the arrays the chosen modalities need, read per clip.

An audio-only model never reads `video/tokens` (the largest array by far), so it trains at the speed of the
audio tokens. Audio tokens are stored padded to the store's longest span; a batch is trimmed to its own
longest clip, which is most of the speed-up on short-clip datasets.

Tokens of an int8 store stay int8 codes, with their per-clip scales and offsets, until `to_device` has moved them:
the device decodes them (`dfer.store.schema.decode_tokens`), so a batch crosses to it at a quarter of float32's bytes
and an in-memory split takes a quarter of the RAM. float16 tokens are decoded to float32 in `collate`, as before.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dfer.heads.fusion import STREAMS
from dfer.store.reader import CacheReader
from dfer.store.schema import SCALE_SUFFIXES, TOKEN_ARRAYS, TOKEN_KEYS, batch_arrays, decode_tokens


def fields_for(modalities: str, token_dtype: str = "float16") -> dict[str, str]:
    """Batch key -> store array for a `modalities` heads model (`dfer.store.schema.TOKEN_BATCH`)."""
    return batch_arrays(STREAMS[modalities], token_dtype=token_dtype)


class CachedClips(Dataset):
    """Clip rows `indices` of a cache; with `in_memory` the needed arrays are loaded once up front."""

    def __init__(self, reader: CacheReader, indices: list[int], modalities: str, in_memory: bool = False):
        self.reader, self.indices = reader, list(indices)
        self.fields = fields_for(modalities, reader.token_dtype)
        self.memory = None
        if in_memory:
            rows = np.asarray(self.indices, dtype=np.int64)
            self.memory = {key: reader.read_all(array)[rows] for key, array in self.fields.items()}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, np.ndarray]:
        if self.memory is not None:
            return {key: values[position] for key, values in self.memory.items()}
        index = self.indices[position]
        return {key: self.reader.read(array, index) for key, array in self.fields.items()}


def collate(rows: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stacked rows as tensors; int8 tokens stay codes until `to_device` decodes them."""
    batch = {}
    for key in rows[0]:
        values = np.stack([row[key] for row in rows])
        if key in TOKEN_KEYS and values.dtype == np.float16:
            values = decode_tokens(values)  # float16 in the store, float32 for the heads
        batch[key] = torch.from_numpy(values)
    if "audio_tokens" in batch:
        longest = max(int(batch["audio_length"].max()), 1)
        batch["audio_tokens"] = batch["audio_tokens"][:, :longest]  # (B, Ta_batch, Da)
        batch["audio_length"] = batch["audio_length"].long()
    batch["label"] = batch["label"].long()
    return batch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on `device`, int8 tokens decoded there: every batch the heads see has float32 tokens."""
    batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    for key in TOKEN_KEYS:
        if key + SCALE_SUFFIXES[0] in batch:
            scale, offset = (batch.pop(key + suffix) for suffix in SCALE_SUFFIXES)  # (B, 1, ..., D) each
            batch[key] = decode_tokens(batch[key], scale, offset)  # int8 (B, ..., D) -> float32
    return batch


def read_tokens(reader: CacheReader, stream: str, index: int) -> np.ndarray:
    """One clip's `stream` tokens, decoded to float32: (T, N, D) video, (Ta_max, Da) audio."""
    name = TOKEN_ARRAYS[stream]
    scales = [reader.read(name + suffix, index) for suffix in SCALE_SUFFIXES] if reader.token_dtype == "int8" else []
    return decode_tokens(reader.read(name, index), *scales)


def token_statistics(reader: CacheReader, indices: list[int], modalities: str,
                     max_clips: int = 256) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-dimension mean and std of each stream's valid tokens over (an evenly spaced subset of) the training clips:
    audio frames inside `audio/length`, video tokens of frames with a detected face."""
    streams = STREAMS[modalities]
    chosen = [indices[i] for i in np.linspace(0, len(indices) - 1, min(max_clips, len(indices))).astype(int)]
    sums: dict[str, list] = {}
    for index in chosen:
        rows = {}
        if "audio" in streams and reader.read("has_audio", index):
            length = int(reader.read("audio/length", index))
            rows["audio"] = read_tokens(reader, "audio", index)[:length]  # (Ta, Da)
        if "video" in streams and reader.read("has_video", index):
            found = reader.read("video/face_found", index).astype(bool)
            tokens = read_tokens(reader, "video", index)[found]  # (T_found, N, D)
            rows["video"] = tokens.reshape(-1, reader.layout["vision_dim"])  # (T_found*N, D)
        for stream, x in rows.items():
            x = x.astype(np.float64)
            total = sums.setdefault(stream, [0, 0.0, 0.0])
            total[0] += len(x)
            total[1] = total[1] + x.sum(0)
            total[2] = total[2] + (x * x).sum(0)
    statistics = {}
    for stream, (n, s1, s2) in sums.items():
        if n:
            mean = s1 / n
            std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
            statistics[stream] = (torch.from_numpy(mean).float(), torch.from_numpy(std).float())
    return statistics
