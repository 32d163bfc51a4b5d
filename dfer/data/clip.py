"""The unit every stage works on: one labelled clip of one speaker, and the listing a dataset adapter returns.

Adapters only read folder layouts and file names; nothing here decodes media, so listing 16,000 clips is instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    clip_id: str  # unique and stable within the dataset (e.g. the path below ROOT without suffix)
    video: Path | None  # None for audio-only clips
    audio: Path | None  # None for video-only clips; may be the same file as `video`
    label: int  # index into DatasetListing.classes
    speaker: str
    fold: int = 0  # test fold 1..K under k-fold protocols; 0 where the dataset has official splits
    split: str = ""  # "train" | "val" | "test" under official splits; "" under k-fold protocols
    precropped: bool = False  # `video` is a folder of the dataset's own face crops: no face detection
    # Extra per-clip text kept in the store as `info/<key>`, e.g. MELD's transcript and speaker name.
    info: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class DatasetListing:
    name: str
    classes: list[str]
    protocol: dict  # {"kind": "kfold", "folds": K} or {"kind": "split"}
    clips: list[Clip]  # sorted by clip_id, so every process sees the same order
    problems: list[str] = field(default_factory=list)  # "path: reason" for files that were skipped
    options: dict = field(default_factory=dict)  # adapter settings that change the clips (DFEW's frames), fingerprinted
