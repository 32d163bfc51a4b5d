"""MAFW adapter: the single-expression set's official 5 folds, 11 classes, from the released video clips.

Dataset: Liu et al., "MAFW: A Large-scale, Multi-modal, Compound Affective Database for Dynamic Facial Expression
Recognition in the Wild", ACM MM 2022 (https://mafw-database.github.io/MAFW/): 10,045 audio-visual clips from movies,
TV dramas and short videos; an 11-class single-expression set and a 32-class multi-expression set. Layout below ROOT,
as public loaders of the release read it (HiCMAE `preprocess/mafw_av.py`, and others):
- `data/clips/NNNNN.mp4`: the clips (found by number at any depth below `data/clips`);
- `Train & Test Set/single/no_caption/set_K/train.txt` and `test.txt`, K = 1..5: one clip per line,
  `NNNNN.mp4 label` separated by whitespace, the label an English class name. Some copies name the top folder
  `Train_Test_Set`; both are accepted.

Class order: the paper's, anger disgust fear happiness neutral sadness surprise contempt anxiety helplessness
disappointment (the label files carry names, so the order is only a convention; this is the one MAE-DFER and HiCMAE
use). Protocol: the 5 official folds; fold K tests `set_K/test.txt` and trains on the rest, checked by
`dfer.data.folds.assign_folds`. MAFW has no speaker ids: `speaker` is empty.
"""

from __future__ import annotations

import re
from pathlib import Path

from dfer.data.clip import DatasetListing
from dfer.data.folds import Entry, clips_from_fold_lists, index_by_number

CLASSES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
           "contempt", "anxiety", "helplessness", "disappointment"]
PROTOCOL = {"kind": "kfold", "folds": 5}
SPLIT_ROOTS = ("Train & Test Set", "Train_Test_Set")
SPLIT_SUBDIR = Path("single") / "no_caption"
NAME = re.compile(r"(\d+)\.mp4")
VIDEO_SUFFIXES = (".mp4",)


def split_dir(root: Path) -> Path | None:
    """`ROOT/Train & Test Set/single/no_caption` (or the `Train_Test_Set` spelling), if present."""
    for name in SPLIT_ROOTS:
        if (root / name / SPLIT_SUBDIR).is_dir():
            return root / name / SPLIT_SUBDIR
    return None


def read_list(path: Path, problems: list[str]) -> list[Entry]:
    """Rows of one `train.txt` / `test.txt`; a bad row is reported with its line and skipped."""
    entries = []
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{line_no}"
            if len(fields) != 2:
                problems.append(f"{where}: expected 2 fields (NNNNN.mp4 label), got {len(fields)}")
                continue
            name, label = fields[0], fields[1].lower()
            match = NAME.fullmatch(name)
            if match is None:
                problems.append(f"{where}: {name!r} is not a clip name NNNNN.mp4")
            elif label not in CLASSES:
                problems.append(f"{where}: label {fields[1]!r} is not one of the 11 single-expression classes")
            else:
                entries.append(Entry(int(match.group(1)), CLASSES.index(label), where))
    return entries


def list_clips(root: Path) -> DatasetListing:
    """The clips of MAFW's official single-expression 5-fold lists; problems are reported, never guessed."""
    root = Path(root)
    clip_dir = root / "data" / "clips"
    if not clip_dir.is_dir():
        raise FileNotFoundError(f"MAFW needs {clip_dir} (the NNNNN.mp4 clips)")
    splits = split_dir(root)
    if splits is None:
        raise FileNotFoundError(f"MAFW needs {root / SPLIT_ROOTS[0] / SPLIT_SUBDIR}/set_1/test.txt ... set_5")

    videos, problems = index_by_number(clip_dir, VIDEO_SUFFIXES)
    clips = clips_from_fold_lists(lambda part, fold: splits / f"set_{fold}" / f"{part}.txt", read_list,
                                  PROTOCOL["folds"], videos, clip_dir, root, problems)
    return DatasetListing("mafw", list(CLASSES), dict(PROTOCOL), clips, problems)
