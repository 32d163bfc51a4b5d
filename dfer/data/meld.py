"""MELD adapter: the official train / dev / test utterances of the Friends TV series, with transcript and speaker.

Dataset: Poria et al., "MELD: A Multimodal Multi-Party Dataset for Emotion Recognition in Conversation", ACL 2019
(https://affective-meld.github.io/, annotations at https://github.com/declare-lab/MELD/tree/master/data/MELD).
The raw release `MELD.Raw.tar.gz` holds `train.tar.gz`, `dev.tar.gz`, `test.tar.gz` and the three CSVs. Below ROOT,
at any depth (people unpack the inner archives in different places), the adapter looks for:
- `train_sent_emo.csv` + folder `train_splits/`, `dev_sent_emo.csv` + `dev_splits_complete/`,
  `test_sent_emo.csv` + `output_repeated_splits_test/`;
- in each folder, one clip per CSV row named `dia{Dialogue_ID}_utt{Utterance_ID}.mp4` (README, "Description of Raw
  Data"). Dialogue ids restart in every split, so clip ids are `train/dia0_utt0`, `dev/...`, `test/...`. Files the
  CSVs do not name (e.g. `final_videos_test*.mp4` in the test folder) are ignored, as the maintainers advise
  (declare-lab/MELD#22).
CSV columns (README): Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode,
StartTime, EndTime. Known gaps in the release (e.g. dev `dia110_utt7.mp4` is absent, declare-lab/MELD#22) are
reported in `problems` as "CSV:LINE: reason" and the run goes on.

Class order: the release's own label indices (README, "Labelling"): neutral 0, surprise 1, fear 2, sadness 3, joy 4,
disgust 5, anger 6. Protocol: the official splits; dev is dfer's `val` split. `speaker` is the Speaker column;
`info` keeps the transcript (`transcript`), the speaker name as written (`speaker_name`), sentiment, ids, season,
episode and times.

Text encoding: copies of the CSVs differ (UTF-8, UTF-8 with cp1252 bytes smuggled in as C1 controls such as U+0092,
or cp1252-decoded UTF-8 like "â€™"). `read_csv_text` decodes UTF-8 (Latin-1 when that fails, which never fails) and
`repair_text` then maps C1 controls through cp1252 and undoes cp1252 mojibake, so "you\u0092re" and "youâ€™re" both
read "you’re".
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from dfer.data.clip import Clip, DatasetListing

CLASSES = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]  # README "Labelling" indices 0..6
PROTOCOL = {"kind": "split", "report": ["weighted_f1"]}  # what MELD papers report: weighted F1 on test
# official split name -> (CSV, clip folder, dfer split)
SPLITS = {
    "train": ("train_sent_emo.csv", "train_splits", "train"),
    "dev": ("dev_sent_emo.csv", "dev_splits_complete", "val"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test", "test"),
}
REQUIRED = ["Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID"]
# extra columns kept in Clip.info (column -> info key) when the CSV has them
INFO_COLUMNS = {"Sentiment": "sentiment", "Season": "season", "Episode": "episode", "StartTime": "start_time",
                "EndTime": "end_time", "Sr No.": "sr_no"}
# A UTF-8 lead byte read as cp1252 (Â Ã â), then a continuation byte read as cp1252: the mark of mojibake.
MOJIBAKE = re.compile("[ÂÃâ][\u0080-\u00bf\u0152-\u2122]")


def read_csv_text(path: Path) -> str:
    """The file's text: UTF-8 (BOM dropped) when it decodes, else Latin-1 byte for byte; `repair_text` does the rest."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def repair_text(text: str) -> str:
    """Undo the two encoding accidents found in MELD copies (see the module docstring); other text is unchanged."""
    text = re.sub("[\u0080-\u009f]", _c1_to_cp1252, text)
    if MOJIBAKE.search(text):
        try:
            text = text.encode("cp1252").decode("utf-8")
        except UnicodeError:  # not mojibake after all (or mixed): leave it
            pass
    return text


def _c1_to_cp1252(match: re.Match) -> str:
    try:
        return match.group(0).encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:  # 0x81 0x8d 0x8f 0x90 0x9d have no cp1252 meaning
        return match.group(0)


def find_release(root: Path) -> tuple[dict[str, Path], dict[str, tuple[Path, set[str]]], list[str]]:
    """CSV paths and clip folders (with their file names) below `root`, the shallowest copy of each."""
    csv_names = {csv_name for csv_name, _, _ in SPLITS.values()}
    folder_names = {folder for _, folder, _ in SPLITS.values()}
    csvs: dict[str, list[Path]] = {}
    candidates: dict[str, list[tuple[Path, set[str]]]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in csv_names.intersection(filenames):
            csvs.setdefault(name, []).append(here / name)
        if here.name in folder_names:
            candidates.setdefault(here.name, []).append((here, set(filenames)))
            dirnames.clear()  # nothing below a clip folder is needed
    folders = {name: min(found, key=lambda f: (len(f[0].parts), f[0].as_posix())) for name, found in candidates.items()}
    problems: list[str] = []
    chosen: dict[str, Path] = {}
    for name, paths in csvs.items():
        paths.sort(key=lambda p: (len(p.parts), p.as_posix()))
        chosen[name] = paths[0]
        problems += [f"{p}: differs from {paths[0]}, which is used" for p in paths[1:]
                     if p.read_bytes() != paths[0].read_bytes()]
    return chosen, folders, problems


def read_rows(path: Path, problems: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(first line, {column: repaired text}) of every row; a file without the needed columns is reported and skipped."""
    reader = csv.reader(io.StringIO(read_csv_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(f"{path}:1: header lacks {missing} (got {header}); file skipped")
        return []
    rows = []
    while True:
        line = reader.line_num + 1  # a quoted utterance may span lines: report the row's first line
        row = next(reader, None)
        if row is None:
            return rows
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            problems.append(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
            continue
        rows.append((line, {h: repair_text(v).strip() for h, v in zip(header, row)}))


def list_clips(root: Path) -> DatasetListing:
    """Every utterance of the three official CSVs that has its clip; problems are reported, never guessed."""
    root = Path(root)
    csvs, folders, problems = find_release(root)
    if not csvs:
        raise FileNotFoundError(f"MELD needs {', '.join(c for c, _, _ in SPLITS.values())} below {root}")
    clips: list[Clip] = []
    for official, (csv_name, folder_name, split) in SPLITS.items():
        if csv_name not in csvs:
            problems.append(f"{root}: {csv_name} not found below it; no {official} clips are listed")
            continue
        path = csvs[csv_name]
        rows = read_rows(path, problems)
        if folder_name not in folders:
            problems.append(
                f"{path}: clip folder {folder_name}/ not found below {root}; its {len(rows)} rows are not listed"
            )
            continue
        folder, names = folders[folder_name]
        seen: dict[tuple[int, int], int] = {}
        for line, row in rows:
            where = f"{path}:{line}"
            emotion = row["Emotion"].lower()
            if emotion not in CLASSES:
                problems.append(f"{where}: emotion {row['Emotion']!r} is not one of {CLASSES}")
                continue
            if not (row["Dialogue_ID"].isdigit() and row["Utterance_ID"].isdigit()):
                problems.append(f"{where}: Dialogue_ID {row['Dialogue_ID']!r} / Utterance_ID {row['Utterance_ID']!r} "
                                "are not numbers")
                continue
            key = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
            if key in seen:
                problems.append(f"{where}: dialogue {key[0]} utterance {key[1]} already listed on line {seen[key]}")
                continue
            seen[key] = line
            name = f"dia{key[0]}_utt{key[1]}.mp4"
            if name not in names:
                problems.append(f"{where}: clip {folder / name} not found")
                continue
            video = folder / name
            info = {"transcript": row["Utterance"], "speaker_name": row["Speaker"], "dialogue_id": str(key[0]),
                    "utterance_id": str(key[1]), "file": video.relative_to(root).as_posix()}
            info.update({key_: row[column] for column, key_ in INFO_COLUMNS.items() if column in row})
            clips.append(Clip(f"{official}/dia{key[0]}_utt{key[1]}", video, video, CLASSES.index(emotion),
                              row["Speaker"], split=split, info=info))
    clips.sort(key=lambda c: c.clip_id)
    return DatasetListing("meld", list(CLASSES), dict(PROTOCOL), clips, problems)
