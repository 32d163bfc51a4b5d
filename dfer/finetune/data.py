"""Batches of cached media for end-to-end training: face crops and waveforms instead of tokens.

Stage 1 already decoded every clip, tracked and cropped its face and resampled its audio, and kept the results
(`video/faces`, `audio/waveform`) beside the tokens. Stage 3 reads those: no decoding, no face detection, the
same crops the cached tokens came from. The batch has the keys of a stage-2 batch except that `video_tokens`,
`audio_tokens` and `audio_length` are replaced by `faces`, `waveform` and `num_samples`; the encoders
(`dfer.finetune.model.EndToEnd`) turn them back into the former.
"""

from __future__ import annotations

import numpy as np
import torch

from dfer.finetune.augment import Augment
from dfer.streams import select
from dfer.store.reader import CacheReader
from dfer.store.schema import MEDIA_ARRAYS, batch_arrays, decode_waveform
from dfer.train.data import CachedClips


def check_media(reader: CacheReader, modalities: str) -> None:
    """Refuse a store without the media a `modalities` model needs, saying how to make one that has them."""
    inputs = {stream.input for stream in select(reader.streams, modalities)}
    missing = [MEDIA_ARRAYS[name] for name in sorted(inputs) if MEDIA_ARRAYS[name] not in reader.handle]
    if not missing and reader.fingerprint.get("keep_media", False):
        return
    fp = reader.fingerprint
    flags = [f"--vision {fp['vision']['id']}", f"--audio {fp['audio']['id']}", f"--frames {fp['frames']}",
             f"--max-seconds {fp['max_seconds']:g}"]
    if str(fp["vision"]["revision"]).startswith("seed="):
        flags.append(f"--seed {str(fp['vision']['revision']).removeprefix('seed=')}")
    raise ValueError(
        f"{reader.path} holds no face crops or waveforms ({', '.join(missing) or 'keep_media is off'}): it was "
        f"extracted with --no-keep-media, and fine-tuning reads the media from the cache. Re-extract into a new "
        f"store with the same encoders: dfer extract {reader.attrs['dataset']} ROOT --out NEW_STORE --keep-media "
        + " ".join(flags)
    )


class MediaClips(CachedClips):
    """Clip rows `indices` of a cache with their media; `augment` (training only) edits each clip as it is read.

    Returns numpy rows for stage 2's `collate`: faces (T, 3, S, S) uint8, landmarks (T, 5, 2), waveform (S_max,)
    float32 in -1..1 (padded; the model trims a batch to its longest clip), num_samples, and the shared keys.
    """

    def __init__(self, reader: CacheReader, indices: list[int], modalities: str, augment: Augment | None = None):
        super().__init__(reader, indices, modalities)  # never in memory: media is ~2.4 MB per clip at 224 px
        self.fields = batch_arrays(select(reader.streams, modalities), media=True)
        self.augment = augment

    def __getitem__(self, position: int) -> dict[str, np.ndarray]:
        row = super().__getitem__(position)
        if "waveform" in row:
            row["waveform"] = decode_waveform(row["waveform"])  # (S_max,) float32
        if self.augment is None:
            return row
        if "faces" in row and bool(row["has_video"]):
            faces, landmarks = self.augment.faces(torch.from_numpy(row["faces"]), torch.from_numpy(row["landmarks"]))
            row["faces"], row["landmarks"] = faces.numpy(), landmarks.numpy().astype(np.float32)
        if "waveform" in row and bool(row["has_audio"]):
            wave = self.augment.waveform(torch.from_numpy(row["waveform"]), int(row["num_samples"]))
            row["waveform"] = wave.numpy()
        return row
