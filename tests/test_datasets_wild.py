"""DFEW, MAFW and MELD adapters on generated trees in each release's own layout and label-file formats, then one
tiny extraction and training per dataset on generated clips (0.5 s, 64x48 px) through the real pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dfer.data import dfew, list_dataset, mafw, meld
from dfer.data.folds import Entry, assign_folds
from dfer.cli import app
from dfer.extract.pipeline import ExtractConfig, run, summarise
from dfer.media.decode import decode_clip
from dfer.store.clip_store import ClipStore
from dfer.store.fingerprint import FingerprintMismatch
from dfer.store.info import store_info
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synth import write_clip
from dfer.train.config import make_config
from dfer.train.run import train

REPO = Path(__file__).resolve().parents[1]


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def by_id(listing) -> dict:
    return {c.clip_id: c for c in listing.clips}


def problem(listing, where: str, reason: str) -> str:
    """The one problem that starts with `where` and mentions `reason`."""
    found = [p for p in listing.problems if p.startswith(where) and reason in p]
    assert len(found) == 1, f"no single problem {where} ... {reason} in {listing.problems}"
    return found[0]


# ---------------------------------------------------------------- DFEW

DFEW_TRAIN = "EmoLabel_DataSplit/train(single-labeled)"
DFEW_TEST = "EmoLabel_DataSplit/test(single-labeled)"


def dfew_lists(root: Path, labels: dict[int, int], fold_of: dict[int, int], padded: bool = False) -> None:
    """Official-format set_K.csv lists (header video_name,label, labels 1..7): test K = fold K, train K = the rest."""
    name = (lambda n: f"{n:05d}") if padded else str
    for k in range(1, 6):
        test = [n for n in sorted(labels) if fold_of[n] == k]
        rest = [n for n in sorted(labels) if fold_of[n] != k]
        for folder, numbers in ((DFEW_TEST, test), (DFEW_TRAIN, rest)):
            rows = "".join(f"{name(n)},{labels[n]}\n" for n in numbers)
            write(root / folder / f"set_{k}.csv", "video_name,label\n" + rows)


def test_dfew_lists_folds_labels_and_finds_clips_anywhere(tmp_path: Path) -> None:
    touch(tmp_path, "Clip/original/part_1/00001.mp4", "Clip/original/part_1/00002.mp4",
          "Clip/original/part_2/3.mp4",  # unpadded name
          "Clip/original/00004.mp4",  # flat
          "Clip/original/part_3/00099.mp4",  # not single-labelled: in no list, so not listed and not a problem
          "Clip/clip_224x224/00001/00001_1.jpg")  # the pre-cropped faces are not read
    labels, folds = {1: 1, 2: 7, 3: 3, 4: 5}, {1: 1, 2: 2, 3: 3, 4: 5}
    dfew_lists(tmp_path, labels, folds, padded=True)
    listing = list_dataset("dfew", tmp_path)
    assert listing.name == "dfew"
    assert listing.classes == ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
    assert listing.protocol == {"kind": "kfold", "folds": 5}
    assert listing.problems == []
    clips = by_id(listing)
    assert list(clips) == ["00001", "00002", "00003", "00004"]
    assert [(c.label, c.fold, c.speaker) for c in clips.values()] == [(0, 1, ""), (6, 2, ""), (2, 3, ""), (4, 5, "")]
    assert clips["00003"].video == clips["00003"].audio == tmp_path / "Clip/original/part_2/3.mp4"
    assert clips["00004"].info == {"file": "Clip/original/00004.mp4"}


def test_dfew_accepts_the_readme_spelling_of_the_split_folders(tmp_path: Path) -> None:
    touch(tmp_path, "CLip/original/00001.mp4")  # the README writes `./CLip/original` too
    write(tmp_path / "EmoLabel_DataSplit/test(single_labeled)/set_1.csv", "video_name,label\n1,2\n")
    listing = dfew.list_clips(tmp_path)
    assert [(c.clip_id, c.label, c.fold) for c in listing.clips] == [("00001", 1, 1)]
    assert len(listing.problems) == 4 and all("missing, so fold" in p for p in listing.problems)  # sets 2-5


def test_dfew_bad_rows_missing_clips_and_duplicates_are_problems(tmp_path: Path) -> None:
    touch(tmp_path, *(f"Clip/original/part_1/{n:05d}.mp4" for n in range(1, 6)), "Clip/original/part_2/2.mp4")
    dfew_lists(tmp_path, {n: 1 for n in range(1, 7)}, {n: (n - 1) % 5 + 1 for n in range(1, 7)})
    test1 = tmp_path / DFEW_TEST / "set_1.csv"
    test1.write_text(test1.read_text() + "abc,3\n7,8\n8,1,extra\n\n")  # lines 4, 5, 6 (set 1 tests clips 1 and 6)
    write(tmp_path / DFEW_TEST / "set_2.csv", "name,label\n2,1\n")  # wrong header: whole file skipped
    listing = dfew.list_clips(tmp_path)
    assert sorted(by_id(listing)) == ["00001", "00003", "00004", "00005"]
    problem(listing, f"{test1}:3: ", "no video numbered 6")
    problem(listing, f"{test1}:4: ", "'abc' is not a clip number")
    problem(listing, f"{test1}:5: ", "label '8' is not 1..7")
    problem(listing, f"{test1}:6: ", "expected 2 columns")
    problem(listing, f"{tmp_path / DFEW_TEST / 'set_2.csv'}:1: ", "expected the header video_name,label")
    problem(listing, str(tmp_path / "Clip/original/part_2/2.mp4"), "same clip number as")
    # clip 2 lost its test list, so every training list that names it now reports it
    assert sum("clip 2 is in no test list" in p for p in listing.problems) == 4


def test_dfew_needs_its_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Clip/original"):
        dfew.list_clips(tmp_path)
    touch(tmp_path, "Clip/original/00001.mp4")
    with pytest.raises(FileNotFoundError, match=r"test\(single-labeled\)"):
        dfew.list_clips(tmp_path)


def test_fold_lists_that_do_not_partition_are_reported() -> None:
    e = Entry  # (clip number, label index, "FILE:LINE")
    tests = {1: [e(1, 0, "t1:2"), e(2, 0, "t1:3")], 2: [e(2, 0, "t2:2"), e(3, 1, "t2:3")]}
    trains = {1: [e(3, 2, "r1:2"), e(1, 0, "r1:3"), e(9, 0, "r1:4")], 2: [e(1, 0, "r2:2")]}
    assigned, problems = assign_folds(tests, trains)
    assert {n: (a.fold, a.label, a.where) for n, a in assigned.items()} == {
        1: (1, 0, "t1:2"), 2: (1, 0, "t1:3"), 3: (2, 1, "t2:3")}
    assert problems == [
        "t2:2: clip 2 is also in fold 1's test list (t1:3): the test lists do not partition the clips; kept fold 1",
        "r1:2: label 2 disagrees with t2:3 (1)",
        "r1:3: clip 1 is in fold 1's training and test lists (t1:2)",
        "r1:4: clip 9 is in no test list, so it has no test fold; not listed",
        "t1:3: clip 2 (test fold 1) is missing from fold 2's training list; dfer trains fold 2 on every clip outside "
        "its test fold",
    ]
    _, problems = assign_folds({1: tests[1], 2: [e(3, 1, "t2:3")]}, {})  # a partition, no training lists
    assert problems == []


# ---------------------------------------------------------------- MAFW


def mafw_lists(root: Path, labels: dict[int, str], fold_of: dict[int, int], top: str = "Train & Test Set") -> None:
    """Official-format set_K/train.txt and test.txt: `NNNNN.mp4 label` per line."""
    for k in range(1, 6):
        for part, keep in (("test", lambda n: fold_of[n] == k), ("train", lambda n: fold_of[n] != k)):
            rows = "".join(f"{n:05d}.mp4 {labels[n]}\n" for n in sorted(labels) if keep(n))
            write(root / top / "single/no_caption" / f"set_{k}" / f"{part}.txt", rows)


def test_mafw_lists_folds_and_labels(tmp_path: Path) -> None:
    touch(tmp_path, "data/clips/00001.mp4", "data/clips/00002.mp4", "data/clips/more/00003.mp4",
          "data/clips/00004.mp4")  # 4: multi-label only, in no single list
    mafw_lists(tmp_path, {1: "anger", 2: "disappointment", 3: "happiness"}, {1: 1, 2: 4, 3: 5})
    listing = list_dataset("mafw", tmp_path)
    assert listing.name == "mafw"
    assert listing.classes == ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
                               "contempt", "anxiety", "helplessness", "disappointment"]
    assert listing.protocol == {"kind": "kfold", "folds": 5}
    assert listing.problems == []
    assert [(c.clip_id, c.label, c.fold, c.speaker) for c in listing.clips] == [
        ("00001", 0, 1, ""), ("00002", 10, 4, ""), ("00003", 3, 5, "")]
    assert listing.clips[2].info == {"file": "data/clips/more/00003.mp4"}


def test_mafw_bad_rows_and_missing_clips_are_problems(tmp_path: Path) -> None:
    touch(tmp_path, "data/clips/00001.mp4", "data/clips/00002.mp4")
    mafw_lists(tmp_path, {1: "fear", 2: "neutral", 3: "sadness"}, {1: 1, 2: 2, 3: 3}, top="Train_Test_Set")
    test1 = tmp_path / "Train_Test_Set/single/no_caption/set_1/test.txt"
    test1.write_text(test1.read_text() + "00005.mp4 joy\nclip.mp4 anger\n00006.mp4\n00007.mp4 anger caption\n")
    listing = mafw.list_clips(tmp_path)
    assert [c.clip_id for c in listing.clips] == ["00001", "00002"]
    problem(listing, f"{test1}:2: ", "'joy' is not one of the 11")
    problem(listing, f"{test1}:3: ", "'clip.mp4' is not a clip name")
    problem(listing, f"{test1}:4: ", "expected 2 fields")
    problem(listing, f"{test1}:5: ", "expected 2 fields")
    test3 = tmp_path / "Train_Test_Set/single/no_caption/set_3/test.txt"
    problem(listing, f"{test3}:1: ", "no video numbered 3")
    assert len(listing.problems) == 5


def test_mafw_needs_its_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data/clips"):
        mafw.list_clips(tmp_path)
    touch(tmp_path, "data/clips/00001.mp4")
    with pytest.raises(FileNotFoundError, match="Train & Test Set/single/no_caption"):
        mafw.list_clips(tmp_path)


# ---------------------------------------------------------------- MELD

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def meld_row(sr: int, text: str, speaker: str, emotion: str, dia: int, utt: int) -> str:
    quoted = '"' + text.replace('"', '""') + '"'
    return f'{sr},{quoted},{speaker},{emotion},neutral,{dia},{utt},3,19,"00:14:38,127","00:14:40,378"\n'


def test_meld_splits_transcripts_speakers_and_encodings(tmp_path: Path) -> None:
    raw = tmp_path / "MELD.Raw"
    touch(raw, "train/train_splits/dia0_utt0.mp4", "train/train_splits/dia0_utt1.mp4",
          "dev_splits_complete/dia0_utt0.mp4",
          "output_repeated_splits_test/dia3_utt2.mp4", "output_repeated_splits_test/final_videos_testdia3_utt2.mp4")
    # train: UTF-8 with a cp1252 byte smuggled in as U+0092, a quoted comma and a line break inside a quote
    write(raw / "train_sent_emo.csv", MELD_HEADER + meld_row(1, "Oh, you\u0092re kidding", "Joey", "surprise", 0, 0)
          + meld_row(2, "Line one\nline two", "Rachel", "Joy", 0, 1))
    # dev: a cp1252 file (0x92 is the right single quote there)
    dev_text = MELD_HEADER + meld_row(1, "It\u2019s fine", "Ross", "anger", 0, 0)
    write(raw / "dev_sent_emo.csv", dev_text.encode("cp1252"))
    # test: UTF-8 mojibake of the same quote, and a BOM
    write(raw / "test_sent_emo.csv", "\ufeff" + MELD_HEADER + meld_row(7, "Youâ€™re Fireman #1", "Fireman #1",
                                                                       "fear", 3, 2))
    listing = list_dataset("meld", tmp_path)
    assert listing.name == "meld" and listing.protocol == {"kind": "split", "report": ["weighted_f1"]}
    assert listing.classes == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert listing.problems == []
    clips = by_id(listing)
    assert list(clips) == ["dev/dia0_utt0", "test/dia3_utt2", "train/dia0_utt0", "train/dia0_utt1"]
    a, b = clips["train/dia0_utt0"], clips["train/dia0_utt1"]
    assert a.video == a.audio == raw / "train/train_splits/dia0_utt0.mp4"
    assert (a.label, a.speaker, a.split, a.fold) == (1, "Joey", "train", 0)
    assert a.info["transcript"] == "Oh, you\u2019re kidding" and a.info["speaker_name"] == "Joey"
    assert {k: a.info[k] for k in ("dialogue_id", "utterance_id", "sentiment", "season", "episode", "sr_no")} == {
        "dialogue_id": "0", "utterance_id": "0", "sentiment": "neutral", "season": "3", "episode": "19", "sr_no": "1"}
    assert (a.info["start_time"], a.info["end_time"], a.info["file"]) == (
        "00:14:38,127", "00:14:40,378", "MELD.Raw/train/train_splits/dia0_utt0.mp4")
    assert b.info["transcript"] == "Line one\nline two" and b.label == 4  # "Joy": case does not matter
    dev = clips["dev/dia0_utt0"]
    assert (dev.split, dev.label, dev.info["transcript"]) == ("val", 6, "It\u2019s fine")
    test = clips["test/dia3_utt2"]
    assert test.video == raw / "output_repeated_splits_test/dia3_utt2.mp4"  # never the final_videos_test twin
    assert (test.split, test.speaker, test.info["transcript"]) == ("test", "Fireman #1", "You\u2019re Fireman #1")


def test_meld_missing_clips_and_bad_rows_are_problems_with_line(tmp_path: Path) -> None:
    touch(tmp_path, "train_splits/dia0_utt0.mp4", "train_splits/dia1_utt0.mp4")
    train_csv = write(tmp_path / "train_sent_emo.csv", MELD_HEADER
                      + meld_row(1, "fine", "Joey", "neutral", 0, 0)  # line 2
                      + meld_row(2, "gone\nfor good", "Joey", "neutral", 0, 1)  # lines 3-4: no clip
                      + meld_row(3, "odd", "Joey", "bored", 1, 0)  # 5
                      + meld_row(4, "odd", "Joey", "joy", "x", 0)  # 6
                      + "5,too,few,columns\n"  # 7
                      + meld_row(6, "again", "Joey", "joy", 0, 0))  # 8: same clip as line 2
    write(tmp_path / "test_sent_emo.csv", MELD_HEADER + meld_row(1, "hi", "Ross", "joy", 0, 0))  # folder absent
    listing = meld.list_clips(tmp_path)
    assert [c.clip_id for c in listing.clips] == ["train/dia0_utt0"]
    problem(listing, f"{train_csv}:3: ", "dia0_utt1.mp4 not found")
    problem(listing, f"{train_csv}:5: ", "emotion 'bored'")
    problem(listing, f"{train_csv}:6: ", "are not numbers")
    problem(listing, f"{train_csv}:7: ", "expected 11 columns, got 4")
    problem(listing, f"{train_csv}:8: ", "already listed on line 2")
    problem(listing, f"{tmp_path}: ", "dev_sent_emo.csv not found")
    problem(listing, f"{tmp_path / 'test_sent_emo.csv'}: ", "output_repeated_splits_test/ not found")
    assert len(listing.problems) == 7


def test_meld_needs_a_csv(tmp_path: Path) -> None:
    touch(tmp_path, "train_splits/dia0_utt0.mp4")
    with pytest.raises(FileNotFoundError, match="train_sent_emo.csv"):
        meld.list_clips(tmp_path)


def test_meld_text_repair_leaves_clean_text_alone() -> None:
    for text in ("plain", "café", "naïve — “quoted”", "Ãx"):
        assert meld.repair_text(text) == text
    assert meld.repair_text("donâ€™t") == "don’t" and meld.repair_text("don\x92t") == "don’t"


# ---------------------------------------------------------------- extraction and training, end to end


@pytest.fixture(scope="module")
def clip_bank(tmp_path_factory) -> list[Path]:
    """Ten tiny distinct clips (0.5 s, 64x48 px, each its own tone), copied into every fixture tree."""
    folder = tmp_path_factory.mktemp("bank")
    return [write_clip(folder / f"c{i}.mp4", seconds=0.5, size=(64, 48), tone_hz=300 + 40 * i) for i in range(10)]


@pytest.fixture(scope="module")
def two_face_clip(tmp_path_factory) -> Path | None:
    """A 0.5 s clip with two people side by side (a bundled CREMA-D head and its mirror image), as in MELD scenes;
    None when the CREMA-D samples are absent. With the default face_track the larger one is cropped."""
    flvs = sorted((REPO / "samples/cremad/VideoFlash").glob("*.flv"))
    if not flvs:
        return None
    frame = decode_clip(flvs[0], None, frames=1).frames[0]  # (360, 480, 3)
    head = frame[30:270, 120:320]  # (240, 200, 3)
    two = np.concatenate([head, head[:, ::-1]], axis=1)  # (240, 400, 3)
    return write_clip(tmp_path_factory.mktemp("two") / "two.mp4", seconds=0.5, size=(160, 120), face=two)


def extract_and_train(dataset: str, root: Path, tmp: Path, expected_runs: list[str]) -> ClipStore:
    summary = run(ExtractConfig(dataset=dataset, root=root, out=tmp / "store", preset="tiny", frames=4, batch=5,
                                progress=False))
    assert summary.failures == [] and summary.problems == []
    assert summary.done == summary.clips
    cfg = make_config(None, fold="all", epochs=1, batch_size=4, heads=SMALL_HEADS)
    result = train(tmp / "store", tmp / "run", cfg, show=False)
    assert sorted(result.runs) == expected_runs
    assert all(0.0 <= metrics["WAR"] <= 1.0 for metrics in result.runs.values())
    return ClipStore.open(tmp / "store", mode="r")


@pytest.mark.slow  # trains every fold end to end (CI runs the slow tests after the default suite)
def test_dfew_extracts_and_trains_every_fold(clip_bank, tmp_path: Path) -> None:
    root = tmp_path / "DFEW"
    for n, source in enumerate(clip_bank, start=1):
        part = (n - 1) // 5 + 1
        (root / f"Clip/original/part_{part}").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / f"Clip/original/part_{part}/{n:05d}.mp4")
    dfew_lists(root, {n: (n - 1) % 7 + 1 for n in range(1, 11)}, {n: (n - 1) % 5 + 1 for n in range(1, 11)})
    store = extract_and_train("dfew", root, tmp_path, [f"fold{k}" for k in range(1, 6)])
    assert store.attrs["dataset"] == "dfew" and store.attrs["protocol"] == {"kind": "kfold", "folds": 5}
    assert list(store.array("fold")[:]) == [(n - 1) % 5 + 1 for n in range(1, 11)]
    assert str(store.array("info/file")[0]) == "Clip/original/part_1/00001.mp4"


@pytest.mark.slow  # trains every fold end to end (CI runs the slow tests after the default suite)
def test_mafw_extracts_and_trains_every_fold(clip_bank, tmp_path: Path) -> None:
    root = tmp_path / "MAFW"
    (root / "data/clips").mkdir(parents=True)
    for n, source in enumerate(clip_bank, start=1):
        shutil.copy(source, root / f"data/clips/{n:05d}.mp4")
    mafw_lists(root, {n: mafw.CLASSES[n - 1] for n in range(1, 11)}, {n: (n - 1) % 5 + 1 for n in range(1, 11)})
    store = extract_and_train("mafw", root, tmp_path, [f"fold{k}" for k in range(1, 6)])
    assert list(store.array("label")[:]) == list(range(10))


def test_meld_extracts_and_trains_on_the_official_splits(clip_bank, two_face_clip, tmp_path: Path) -> None:
    root = tmp_path / "MELD.Raw"
    rows = {"train": [], "dev": [], "test": []}
    sources = clip_bank[:6] + [two_face_clip or clip_bank[6], clip_bank[7]]
    for i, source in enumerate(sources):
        official = ["train", "train", "train", "train", "dev", "dev", "test", "test"][i]
        folder = root / meld.SPLITS[official][1]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / f"dia{i}_utt0.mp4")
        rows[official].append(meld_row(i + 1, f"line {i}", ["Joey", "Monica"][i % 2], meld.CLASSES[i % 3], i, 0))
    rows["test"].append(meld_row(99, "not released", "Ross", "joy", 42, 0))  # missing clip: a problem, not fatal
    for official, lines in rows.items():
        write(root / meld.SPLITS[official][0], MELD_HEADER + "".join(lines))
    listing = meld.list_clips(root)
    assert len(listing.clips) == 8 and len(listing.problems) == 1 and "dia42_utt0.mp4 not found" in listing.problems[0]
    (root / "output_repeated_splits_test/dia42_utt0.mp4").write_bytes(clip_bank[8].read_bytes())
    store = extract_and_train("meld", root, tmp_path, ["official"])
    ids = store.clip_ids
    assert [str(x) for x in store.array("split")[:]] == ["val", "val", "test", "test", "test", "train", "train",
                                                          "train", "train"]
    assert str(store.array("info/transcript")[ids.index("train/dia1_utt0")]) == "line 1"
    assert str(store.array("info/speaker_name")[ids.index("train/dia1_utt0")]) == "Monica"
    if two_face_clip is not None:
        assert store.array("video/face_found")[ids.index("test/dia6_utt0")].all()


def test_meld_crops_the_speaker_records_why_and_refuses_the_other_choice(talking_pair, tmp_path: Path) -> None:
    root = tmp_path / "MELD.Raw"
    for official, scene in (("train", "talking"), ("test", "silent")):
        folder = root / meld.SPLITS[official][1]
        folder.mkdir(parents=True)
        shutil.copy(talking_pair[scene], folder / "dia0_utt0.mp4")
        write(root / meld.SPLITS[official][0], MELD_HEADER + meld_row(1, "hi", "Joey", "joy", 0, 0))
    settings = dict(dataset="meld", root=root, out=tmp_path / "store", preset="tiny", frames=16, progress=False)
    with pytest.raises(ValueError, match="face_track 'loudest' is not one of largest, speaker"):
        ExtractConfig(**settings, face_track="loudest")
    result = CliRunner().invoke(app, ["extract", "meld", str(root), "--out", str(tmp_path / "store"), "--preset",
                                      "tiny", "--frames", "16", "--face-track", "speaker"])
    assert result.exit_code == 0, result.output
    store = ClipStore.open(tmp_path / "store", mode="r")
    assert store.clip_ids == ["test/dia0_utt0", "train/dia0_utt0"]  # the silent scene, then the talking one
    assert store.array("video/track_rank")[:].tolist() == [0, 1]
    assert store.array("video/track_count")[:].tolist() == [2, 2]
    score = store.array("video/speaker_score")[:]
    assert np.isnan(score[0]) and score[1] > 1
    assert [str(note) for note in store.array("note")[:]] == [
        "face track 1 of 2 by size: largest: no voiced audio",
        "face track 2 of 2 by size: speaker: mouth motion while voiced"]
    assert store_info(tmp_path / "store")["face_tracks"] == {"choice": "speaker", "clips_with_several": 2,
                                                            "clips_not_largest": 1}
    with pytest.raises(FingerprintMismatch, match="face_track: store has 'speaker', this run has 'largest'"):
        run(ExtractConfig(**settings))


# ---------------------------------------------------------------- DFEW's pre-cropped face frames


def write_frames(folder: Path, clip: int, count: int, seed: int) -> None:
    """`count` small JPEG faces named as the release names them: `XXXXX_YYYYY.jpg`, frames from 1."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for y in range(1, count + 1):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / f"{clip:05d}_{y:05d}.jpg")


@pytest.fixture
def dfew_precropped(clip_bank, tmp_path: Path) -> Path:
    """Clips 1-4 as frame folders (in a part folder, as a part zip may unpack), clip 3's empty; only clip 1 also
    has its original video."""
    root = tmp_path / "DFEW"
    for n in (1, 2, 4):
        write_frames(root / f"Clip/clip_224x224/part_{n % 2 + 1}/{n:05d}", n, count=6 + n, seed=n)
    (root / "Clip/clip_224x224/part_2/00003").mkdir(parents=True)
    (root / "Clip/original").mkdir(parents=True)
    shutil.copy(clip_bank[0], root / "Clip/original/00001.mp4")
    dfew_lists(root, {n: n for n in range(1, 5)}, {n: n for n in range(1, 5)})
    return root


def test_dfew_precropped_lists_frame_folders_with_original_audio(dfew_precropped: Path) -> None:
    root = dfew_precropped
    listing = dfew.list_clips(root, frames="precropped")
    assert listing.problems == [] and listing.options == {"frames": "precropped"}
    clips = by_id(listing)
    assert list(clips) == ["00001", "00002", "00003", "00004"] and all(c.precropped for c in clips.values())
    assert clips["00002"].video == root / "Clip/clip_224x224/part_1/00002" and clips["00002"].audio is None
    assert clips["00001"].audio == root / "Clip/original/00001.mp4"
    assert clips["00001"].info == {"file": "Clip/clip_224x224/part_2/00001", "audio_file": "Clip/original/00001.mp4"}
    assert clips["00004"].info["audio_file"] == ""
    assert dfew.list_clips(root).options == {"frames": "original"}
    with pytest.raises(ValueError, match="frames 'faces' is not one of original, precropped"):
        dfew.list_clips(root, frames="faces")
    shutil.rmtree(root / "Clip/clip_224x224")
    with pytest.raises(FileNotFoundError, match="clip_224x224"):
        dfew.list_clips(root, frames="precropped")


def test_dfew_precropped_extracts_without_detection_and_is_fingerprinted(dfew_precropped: Path, tmp_path: Path):
    settings = dict(dataset="dfew", root=dfew_precropped, out=tmp_path / "store", preset="tiny", frames=4,
                    progress=False)
    result = CliRunner().invoke(app, ["extract", "dfew", str(dfew_precropped), "--out", str(tmp_path / "store"),
                                      "--preset", "tiny", "--frames", "4", "--face-frames", "precropped"])
    assert result.exit_code == 1  # one clip failed, the others are done
    folder = dfew_precropped / "Clip/clip_224x224/part_2/00003"
    assert summarise(ClipStore.open(tmp_path / "store", mode="r"), []).failures == [
        ("00003", f"{folder}: no frame images (.jpeg, .jpg, .png) in the folder")]
    store = ClipStore.open(tmp_path / "store", mode="r")
    done = store.array("done")[:]
    assert done.tolist() == [True, True, False, True]
    assert store.array("has_audio")[:].tolist() == [True, False, False, False]  # only clip 1 has its original
    assert store.array("video/face_found")[:][done].all() and np.isnan(store.array("video/landmarks")[0]).all()
    assert store.array("video/track_rank")[:][done].tolist() == [-1, -1, -1]
    assert all(str(n) == "pre-cropped face frames: no detection" for n in store.array("note")[:][done])
    times = store.array("video/frame_time")[1]  # clip 2: 8 frames over 8 / 25 s, 2 per sampled frame
    np.testing.assert_allclose(times, (np.array([1, 3, 5, 7]) + 0.5) / 25, atol=1e-6)
    assert store.fingerprint["dataset_options"] == {"frames": "precropped"}
    with pytest.raises(FingerprintMismatch, match="dataset_options.frames: store has 'precropped', this run has "
                                                  "'original'"):
        run(ExtractConfig(**settings))
