"""DFEW adapter: the single-labelled clips of the official 5-fold split, read from the original videos.

Dataset: Jiang et al., "DFEW: A Large-Scale Database for Recognizing Dynamic Facial Expressions in the Wild",
ACM MM 2020 (https://dfew-dataset.github.io/). Layout below ROOT, as the release's README describes it:
- `Clip/original/`: the 16,372 original clips `XXXXX.mp4` (four zips, `data_part_1-2-3.zip` ...). Public loaders
  disagree on whether they end up flat or in `part_N/` folders and on zero padding, so clips are found by number
  at any depth below this folder.
- `EmoLabel_DataSplit/train(single-labeled)/set_K.csv` and `.../test(single-labeled)/set_K.csv`, K = 1..5: the
  training and test lists of fold K, header `video_name,label`, `video_name` the clip number, `label` 1..7. The
  release README names the zips `train(single_labeled).zip`; both spellings of the folder are accepted.
Labels (README): 1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear; label k is class index k - 1.

Protocol: the 5 official folds; fold K tests the clips of `test(single-labeled)/set_K.csv` and trains on the rest.
The lists hold 11,697 of the 12,059 single-labelled clips (362 without a detected face were dropped by the authors);
their test lists partition them (README: 2341 + 2341 + 2340 + 2339 + 2336 = 11,697, and each fold's training + test
= 11,697), and `dfer.data.folds.assign_folds` checks that again on the files at hand. Clips without a single label
are in no list and are not listed. DFEW has no speaker ids: `speaker` is empty.

`frames="precropped"` reads the release's own aligned face frames instead of detecting faces:
`Clip/clip_224x224/XXXXX/XXXXX_YYYYY.jpg` (224 x 224, frame YYYYY of clip XXXXX from 1; release README "CLIP"),
one folder per clip, found by number at any depth below `clip_224x224` as the part zips may unpack into subfolders.
The release made them by dropping the frames without a detected face, then aligning the rest. Each clip keeps the
sound of its original `Clip/original` video when that is there (the frames are laid over its duration) and is
video-only without it; `info/audio_file` says which. The choice is recorded in the store's fingerprint.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

from dfer.data.clip import Clip, DatasetListing
from dfer.data.folds import Entry, clips_from_fold_lists, index_by_number, index_numbered_folders

CLASSES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]  # README labels 1..7
PROTOCOL = {"kind": "kfold", "folds": 5}
HEADER = ["video_name", "label"]
SPLIT_FOLDER = re.compile(r"(train|test)\(single[-_]labeled\)", re.IGNORECASE)
VIDEO_SUFFIXES = (".mp4",)
FRAMES = ("original", "precropped")  # what a clip's pictures are: the videos, or the release's aligned face frames


def find_child(folder: Path, name: str) -> Path | None:
    """The child of `folder` called `name`, ignoring case (the README itself writes both `Clip` and `CLip`)."""
    if not folder.is_dir():
        return None
    matches = sorted(p for p in folder.iterdir() if p.name.lower() == name.lower() and p.is_dir())
    return matches[0] if matches else None


def split_folders(split_dir: Path) -> dict[str, Path]:
    """{"train": folder, "test": folder} for the `train(single-labeled)` / `test(single-labeled)` folders present."""
    found: dict[str, Path] = {}
    for path in sorted(split_dir.iterdir()) if split_dir.is_dir() else []:
        match = SPLIT_FOLDER.fullmatch(path.name)
        if match and path.is_dir():
            found.setdefault(match.group(1).lower(), path)
    return found


def read_list(path: Path, problems: list[str]) -> list[Entry]:
    """Rows of one `set_K.csv`; a bad row (or a file without the header) is reported with its line and skipped."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != HEADER:
            problems.append(f"{path}:1: expected the header {','.join(HEADER)}, got {header}; file skipped")
            return []
        entries = []
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            where = f"{path}:{reader.line_num}"
            row = [v.strip() for v in row]
            if len(row) != len(HEADER):
                problems.append(f"{where}: expected 2 columns (video_name,label), got {len(row)}")
            elif not row[0].isdigit():
                problems.append(f"{where}: video_name {row[0]!r} is not a clip number")
            elif not (row[1].isdigit() and 1 <= int(row[1]) <= len(CLASSES)):
                problems.append(f"{where}: label {row[1]!r} is not 1..{len(CLASSES)}")
            else:
                entries.append(Entry(int(row[0]), int(row[1]) - 1, where))
        return entries


def list_clips(root: Path, frames: str = "original") -> DatasetListing:
    """The clips of DFEW's official single-label 5-fold lists; problems are reported, never guessed.

    frames: "original" (the videos, faces detected by dfer) or "precropped" (the release's aligned face frames).
    """
    if frames not in FRAMES:
        raise ValueError(f"DFEW frames {frames!r} is not one of {', '.join(FRAMES)}")
    root = Path(root)
    clip_dir = find_child(root, "Clip")
    original = find_child(clip_dir, "original") if clip_dir else None
    cropped = find_child(clip_dir, "clip_224x224") if clip_dir else None
    if frames == "original" and original is None:
        raise FileNotFoundError(f"DFEW needs {root / 'Clip' / 'original'} (the original XXXXX.mp4 clips)")
    if frames == "precropped" and cropped is None:
        raise FileNotFoundError(f"DFEW frames=precropped needs {root / 'Clip' / 'clip_224x224'} (XXXXX/ frame folders)")
    split_dir = root / "EmoLabel_DataSplit"
    folders = split_folders(split_dir)
    if "test" not in folders:
        raise FileNotFoundError(f"DFEW needs {split_dir / 'test(single-labeled)'}/set_1.csv ... set_5.csv")

    videos, problems = index_by_number(original, VIDEO_SUFFIXES) if original else ({}, [])
    media, below = videos, original
    if frames == "precropped":
        media, folder_problems = index_numbered_folders(cropped)
        below, problems = cropped, problems + folder_problems
    clips = clips_from_fold_lists(
        lambda part, fold: folders[part] / f"set_{fold}.csv" if part in folders else None,
        read_list, PROTOCOL["folds"], media, below, root, problems)
    if frames == "precropped":
        clips = [with_original_audio(clip, videos.get(int(clip.clip_id)), root) for clip in clips]
    return DatasetListing("dfew", list(CLASSES), dict(PROTOCOL), clips, problems, options={"frames": frames})


def with_original_audio(clip: Clip, original: Path | None, root: Path) -> Clip:
    """A frame-folder clip, marked pre-cropped, with the sound of its original video when that exists."""
    info = {**clip.info, "audio_file": original.relative_to(root).as_posix() if original else ""}
    return replace(clip, audio=original, precropped=True, info=info)
