"""Clip rows as the heads take them: only the arrays the chosen streams need, stacked, trimmed and decoded.

An audio-only model never reads `video/tokens` (the largest array by far), so it runs at the speed of the audio
tokens. A sequence stream's tokens are stored padded to the store's longest span; a batch is trimmed to its own
longest clip, which is most of the speed-up on short-clip datasets.

Tokens of an int8 store stay int8 codes, with their per-clip scales and offsets, until `to_device` has moved them:
the device decodes them (`dfer.store.schema.decode_tokens`), so a batch crosses to it at a quarter of float32's bytes
and a resident split takes a quarter of float32's memory. float16 tokens are decoded to float32 in `finish`.
"""

from __future__ import annotations

import numpy as np
import torch

from dfer.store.schema import SCALE_SUFFIXES, decode_tokens, is_tokens_key

LENGTH_SUFFIX = "_length"  # a sequence stream's valid tokens per clip: `<stream>_length` beside `<stream>_tokens`


def finish(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stacked clip rows as the heads take them, on whichever device they are: sequences trimmed to the batch's
    longest clip, float16 tokens decoded to float32, lengths and labels int64. int8 tokens stay codes until
    `to_device`."""
    for key in [key for key in batch if key.endswith(LENGTH_SUFFIX)]:
        tokens = key.removesuffix(LENGTH_SUFFIX) + "_tokens"
        longest = max(int(batch[key].max()), 1)
        batch[tokens] = batch[tokens][:, :longest]  # (B, Ta_batch, D)
        batch[key] = batch[key].long()
    for key in [key for key in batch if is_tokens_key(key)]:
        if batch[key].dtype == torch.float16:
            batch[key] = decode_tokens(batch[key])  # float16 in the store, float32 for the heads
    batch["label"] = batch["label"].long()
    return batch


def collate(rows: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Rows read from the store, stacked and `finish`ed."""
    return finish({key: torch.from_numpy(np.stack([row[key] for row in rows])) for key in rows[0]})


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on `device`, int8 tokens decoded there: every batch the heads see has float32 tokens."""
    batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    for key in [key for key in batch if is_tokens_key(key)]:
        if key + SCALE_SUFFIXES[0] in batch:
            scale, offset = (batch.pop(key + suffix) for suffix in SCALE_SUFFIXES)  # (B, 1, ..., D) each
            batch[key] = decode_tokens(batch[key], scale, offset)  # int8 (B, ..., D) -> float32
    return batch
