"""Manifest adapter: any dataset described by a CSV, for data that has no adapter of its own.

ROOT is a CSV file whose first line is the header `path,label,speaker,split`:
- `path`: the clip's media file, relative to the CSV's folder or absolute. An audio suffix
  (.wav .flac .mp3 .ogg .m4a) makes an audio-only clip; any other file serves as both video and audio.
- `label`: class name. Classes are numbered in order of first appearance (over every row with a label,
  whether or not its file exists, so a missing file cannot renumber the classes), unless a fixed list
  is given; then a label outside it is a problem.
- `speaker`: free text, may be empty.
- `split`: train, val or test. Protocol: these official splits (`{"kind": "split"}`), fold 0.

A bad row is skipped and reported as "CSV:LINE: reason" (the header is line 1); a missing CSV or header
is an error, since nothing sensible can be listed without them.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

from dfer.data.clip import Clip, DatasetListing
from dfer.media.find import AUDIO_SUFFIXES

HEADER = ["path", "label", "speaker", "split"]
SPLITS = ("train", "val", "test")


def read_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-blank row after the header."""
    if not csv_path.is_file():
        raise ValueError(f"manifest {csv_path} is not a file")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets often write a BOM
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != HEADER:
            raise ValueError(f"manifest {csv_path} must start with the header {','.join(HEADER)}, got {header}")
        return [(reader.line_num, [v.strip() for v in row]) for row in reader if row]


def list_clips(root: Path, classes: list[str] | None = None) -> DatasetListing:
    """Clips of the manifest CSV `root`; bad rows are reported in `problems` with their line."""
    csv_path = Path(root)
    rows = read_rows(csv_path)
    if classes is not None:
        if len(set(classes)) != len(classes):
            raise ValueError(f"duplicate class names in {classes}")
        names = list(classes)
    else:
        names = []
        for _, row in rows:
            if len(row) == len(HEADER) and row[1] and row[1] not in names:
                names.append(row[1])

    clips: list[Clip] = []
    problems: list[str] = []
    seen: dict[str, int] = {}  # clip_id -> line that listed it
    for line, row in rows:
        reason = check(row, csv_path.parent, names)
        if reason is None and clip_id_of(row[0]) in seen:
            reason = f"{row[0]} already listed on line {seen[clip_id_of(row[0])]}"
        if reason is not None:
            problems.append(f"{csv_path}:{line}: {reason}")
            continue
        text, label, speaker, split = row
        clip_id = clip_id_of(text)
        seen[clip_id] = line
        path = csv_path.parent / text  # an absolute `text` replaces the folder
        audio_only = path.suffix.lower() in AUDIO_SUFFIXES
        clips.append(Clip(clip_id, None if audio_only else path, path, names.index(label), speaker, split=split))
    clips.sort(key=lambda c: c.clip_id)
    return DatasetListing("manifest", names, {"kind": "split"}, clips, problems)


def clip_id_of(text: str) -> str:
    """The path as written, without its suffix (`./a/b.mp4` and `a/b.mp4` are the same clip)."""
    return PurePosixPath(text).with_suffix("").as_posix()


def check(row: list[str], folder: Path, names: list[str]) -> str | None:
    """Why a row cannot be listed, or None when it can."""
    if len(row) != len(HEADER):
        return f"expected {len(HEADER)} columns ({','.join(HEADER)}), got {len(row)}"
    text, label, _, split = row
    if not text:
        return "empty path"
    if not label:
        return "empty label"
    if label not in names:
        return f"label {label!r} not in classes {names}"
    if split not in SPLITS:
        return f"split {split!r} is not one of {', '.join(SPLITS)}"
    if not (folder / text).is_file():
        return f"file not found: {folder / text}"
    return None
