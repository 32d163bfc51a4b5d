"""A speaker's statistics saved once (`dfer predict FOLDER --save-statistics FILE`) and reused for later clips
(`dfer predict CLIP --statistics FILE`): the group's moments, one entry per encoder stream, in an `.npz` file.

Statistics are of an encoder's tokens, so an entry is keyed by the stream and the encoder record of the run's
fingerprint (`encoder_key`): a model whose encoders made none of the file's entries is told so, never silently
standardised with another encoder's statistics. A clip predicted with saved statistics joins them: its group is the
saved clips and itself. The file holds per-dimension sums of a voice encoder's tokens, close to a voiceprint:
keep it as you would keep the recordings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dfer.adapt.moments import Moments

FORMAT = "dfer-statistics/1"


def encoder_key(stream: str, encoder: dict) -> str:
    """The key of a stream's statistics: the stream and a digest of the encoder record that made its tokens."""
    digest = hashlib.sha256(json.dumps(encoder, sort_keys=True).encode()).hexdigest()[:16]
    return f"{stream}-{digest}"


def save_statistics(path: Path | str, moments: dict[str, Moments], encoders: dict[str, dict]) -> Path:
    """Write `moments` (key -> Moments) with each key's encoder record (`encoders`: key -> record)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for key, m in moments.items():
        arrays.update({f"{key}/total": m.total, f"{key}/squares": m.squares,
                       f"{key}/counts": np.array([m.count, m.clips], np.float64)})
    header = {"format": FORMAT, "encoders": {key: encoders[key] for key in moments}}
    with open(path, "wb") as file:  # np.savez would add .npz to a name without it
        np.savez(file, header=np.array(json.dumps(header)), **arrays)
    return path


def load_statistics(path: Path | str) -> dict[str, Moments]:
    """key -> Moments of a file `save_statistics` wrote; a ValueError naming the file for anything else."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}, not {FORMAT}")
            return {key: Moments(float(data[f"{key}/counts"][0]), data[f"{key}/total"], data[f"{key}/squares"],
                                 int(data[f"{key}/counts"][1])) for key in header["encoders"]}
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a dfer statistics file ({error})") from error


def merged(*groups: dict[str, Moments]) -> dict[str, Moments]:
    """The moments of several groups of clips together, key by key."""
    total: dict[str, Moments] = {}
    for group in groups:
        for key, m in group.items():
            total[key] = total[key] + m if key in total else m
    return total
