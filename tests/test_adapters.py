"""Dataset adapters on generated trees of empty files (adapters read names, never contents), plus the real
sample data in ../shared/data when it is there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dfer.data import ADAPTERS, cremad, dfew, list_dataset, mafw, manifest, meld, ravdess
from dfer.data.names import DISPLAY_NAMES, display_names

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def by_id(listing) -> dict:
    return {c.clip_id: c for c in listing.clips}


# Display names


def test_each_dataset_s_classes_read_as_the_same_words() -> None:
    """One word per emotion whatever the release calls it (CREMA-D "ANG", MAFW "anger", MELD "joy"), in the
    adapters' class order; a manifest's classes stay as given."""
    assert display_names("ravdess", ravdess.CLASSES) == ravdess.CLASSES  # already words
    assert display_names("cremad", cremad.CLASSES) == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    assert display_names("dfew", dfew.CLASSES) == ["happy", "sad", "neutral", "angry", "surprised", "disgust",
                                                   "fearful"]
    assert display_names("mafw", mafw.CLASSES) == ["angry", "disgust", "fearful", "happy", "neutral", "sad",
                                                   "surprised", "contempt", "anxious", "helpless", "disappointed"]
    assert display_names("meld", meld.CLASSES) == ["neutral", "surprised", "fearful", "sad", "happy", "disgust",
                                                   "angry"]
    assert display_names("manifest", ["ANG", "joy", "bored"]) == ["ANG", "joy", "bored"]


@pytest.mark.parametrize("module", [ravdess, cremad, dfew, mafw, meld], ids=lambda m: m.__name__.split(".")[-1])
def test_every_adapter_class_has_one_display_name(module) -> None:
    dataset = module.__name__.split(".")[-1]
    assert dataset in ADAPTERS and list(DISPLAY_NAMES[dataset]) == module.CLASSES  # no code left out, none extra
    words = display_names(dataset, module.CLASSES)
    assert len(set(words)) == len(words)  # they name predictions.csv's columns


# RAVDESS


def test_ravdess_modalities_labels_and_folds(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "Actor_05/01-01-03-01-01-01-05.mp4",  # AV speech, happy, actor 5
        "Actor_05/02-01-03-01-01-01-05.mp4",  # video-only
        "Actor_05/03-01-03-01-01-01-05.wav",  # audio-only
        "extra/nesting/Actor_24/03-02-06-02-02-02-24.flac",  # audio-only song, fearful, actor 24
        "Actor_01/01-01-01-01-01-01-01.mp4",
        "Actor_01/notes.txt",  # not media: ignored, not a problem
    )
    listing = ravdess.list_clips(tmp_path)
    assert listing.name == "ravdess"
    assert listing.classes == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert listing.protocol == {"kind": "kfold", "folds": 6}
    assert listing.problems == []
    assert [c.clip_id for c in listing.clips] == sorted(c.clip_id for c in listing.clips)
    clips = by_id(listing)

    av = clips["Actor_05/01-01-03-01-01-01-05"]
    assert av.video == av.audio == tmp_path / "Actor_05/01-01-03-01-01-01-05.mp4"
    assert (av.label, av.speaker, av.fold) == (2, "05", 2)
    video_only = clips["Actor_05/02-01-03-01-01-01-05"]
    assert video_only.video is not None and video_only.audio is None
    audio_only = clips["Actor_05/03-01-03-01-01-01-05"]
    assert audio_only.video is None and audio_only.audio == tmp_path / "Actor_05/03-01-03-01-01-01-05.wav"
    song = clips["extra/nesting/Actor_24/03-02-06-02-02-02-24"]
    assert (song.label, song.speaker, song.fold) == (5, "24", 6)
    assert clips["Actor_01/01-01-01-01-01-01-01"].fold == 1


def test_ravdess_fold_is_groups_of_four_actors() -> None:
    assert [ravdess.fold_of(a) for a in range(1, 25)] == [f for f in range(1, 7) for _ in range(4)]


@pytest.mark.parametrize(
    "name, reason",
    [
        ("Actor_01/01-01-03-01-01.mp4", "is not MM-VC-EE-II-SS-RR-AA"),
        ("Actor_01/04-01-03-01-01-01-01.mp4", "modality 04 not in 01-03"),
        ("Actor_01/01-03-03-01-01-01-01.mp4", "vocal channel 03"),
        ("Actor_01/01-01-09-01-01-01-01.mp4", "emotion 09"),
        ("Actor_01/01-01-03-03-01-01-01.mp4", "intensity 03"),
        ("Actor_01/01-01-03-01-03-01-01.mp4", "statement 03"),
        ("Actor_01/01-01-03-01-01-00-01.mp4", "repetition 00"),
        ("Actor_25/01-01-03-01-01-01-25.mp4", "actor 25"),
        ("Actor_01/01-01-01-02-01-01-01.mp4", "neutral has no strong intensity"),
        ("Actor_01/01-02-07-01-01-01-01.mp4", "song has no disgust"),
        ("Actor_01/03-01-03-01-01-01-01.mp4", "needs an audio file"),
        ("Actor_01/01-01-03-01-01-01-01.wav", "needs a video file"),
        ("Actor_02/01-01-03-01-01-01-01.mp4", "inside folder Actor_02"),
    ],
)
def test_ravdess_bad_names_are_problems(tmp_path: Path, name: str, reason: str) -> None:
    touch(tmp_path, name, "Actor_03/01-01-03-01-01-01-03.mp4")
    listing = ravdess.list_clips(tmp_path)
    assert [c.clip_id for c in listing.clips] == ["Actor_03/01-01-03-01-01-01-03"]
    assert len(listing.problems) == 1
    assert listing.problems[0].startswith(f"{tmp_path / name}: ")
    assert reason in listing.problems[0]


def test_ravdess_duplicate_recording_keeps_one(tmp_path: Path) -> None:
    touch(tmp_path, "Actor_01/03-01-03-01-01-01-01.flac", "Actor_01/03-01-03-01-01-01-01.wav",
          "copy/Actor_01/03-01-03-01-01-01-01.wav")
    listing = ravdess.list_clips(tmp_path)
    assert [c.audio for c in listing.clips] == [tmp_path / "Actor_01/03-01-03-01-01-01-01.wav"]
    assert len(listing.problems) == 2
    assert all("duplicate of" in p for p in listing.problems)


def test_ravdess_without_media_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path, "readme.txt")
    with pytest.raises(ValueError, match="no RAVDESS files"):
        ravdess.list_clips(tmp_path)


# CREMA-D

CREMAD_NAMES = ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1006_TIE_NEU_XX", "1091_WSI_SAD_LO", "1045_ITS_FEA_MD"]


def test_cremad_audio_from_wav_or_flv(tmp_path: Path) -> None:
    touch(tmp_path, *(f"VideoFlash/{n}.flv" for n in CREMAD_NAMES), "AudioWAV/1001_DFA_ANG_XX.wav",
          "AudioWAV/1003_DFA_ANG_XX.wav")  # a WAV without its video is not listed
    listing = cremad.list_clips(tmp_path)
    assert listing.name == "cremad"
    assert listing.classes == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    assert listing.protocol == {"kind": "kfold", "folds": 5}
    assert listing.problems == []
    assert [c.clip_id for c in listing.clips] == sorted(CREMAD_NAMES)
    clips = by_id(listing)
    assert clips["1001_DFA_ANG_XX"].audio == tmp_path / "AudioWAV/1001_DFA_ANG_XX.wav"
    assert clips["1001_DFA_ANG_XX"].video == tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv"
    assert clips["1002_IEO_HAP_HI"].audio == clips["1002_IEO_HAP_HI"].video
    assert [(clips[n].label, clips[n].speaker) for n in ("1091_WSI_SAD_LO", "1045_ITS_FEA_MD")] == [
        (5, "1091"),
        (2, "1045"),
    ]


def test_cremad_folds_fixed_and_speaker_independent(tmp_path: Path) -> None:
    touch(tmp_path, *(f"VideoFlash/{n}.flv" for n in CREMAD_NAMES))
    full = {c.speaker: c.fold for c in cremad.list_clips(tmp_path).clips}
    assert full == {"1001": 1, "1002": 2, "1006": 1, "1045": 5, "1091": 1}
    (tmp_path / "VideoFlash/1001_DFA_ANG_XX.flv").unlink()  # fewer clips, same folds for the rest
    assert {c.speaker: c.fold for c in cremad.list_clips(tmp_path).clips} == {
        s: f for s, f in full.items() if s != "1001"
    }
    folds = [cremad.fold_of(a) for a in range(1001, 1092)]
    assert Counter(folds) == {1: 19, 2: 18, 3: 18, 4: 18, 5: 18}


@pytest.mark.parametrize(
    "stem, reason",
    [
        ("1001_DFA_ANG", "is not ActorID_Sentence_Emotion_Level"),
        ("1000_DFA_ANG_XX", "actor 1000"),
        ("1092_DFA_ANG_XX", "actor 1092"),
        ("1001_ABC_ANG_XX", "unknown sentence ABC"),
        ("1001_DFA_XYZ_XX", "unknown emotion XYZ"),
        ("1001_DFA_ANG_ZZ", "unknown level ZZ"),
    ],
)
def test_cremad_bad_names_are_problems(tmp_path: Path, stem: str, reason: str) -> None:
    touch(tmp_path, f"VideoFlash/{stem}.flv", "VideoFlash/1002_DFA_DIS_XX.flv")
    listing = cremad.list_clips(tmp_path)
    assert [c.clip_id for c in listing.clips] == ["1002_DFA_DIS_XX"]
    assert len(listing.problems) == 1
    assert listing.problems[0].startswith(f"{tmp_path / 'VideoFlash' / stem}.flv: ")
    assert reason in listing.problems[0]


def test_cremad_needs_videoflash(tmp_path: Path) -> None:
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav")
    with pytest.raises(FileNotFoundError, match="VideoFlash"):
        cremad.list_clips(tmp_path)


# manifest


def write_csv(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_manifest_paths_classes_and_splits(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "c.mp4"
    touch(tmp_path, "data/clips/a.mp4", "data/clips/b.wav", "elsewhere/c.mp4")
    csv_path = write_csv(
        tmp_path / "data" / "list.csv",
        "path,label,speaker,split",
        "clips/a.mp4,sad,s1,train",
        "clips/b.wav,happy,s2,val",
        f"{elsewhere},sad,,test",
    )
    listing = manifest.list_clips(csv_path)
    assert listing.name == "manifest"
    assert listing.classes == ["sad", "happy"]  # order of first appearance
    assert listing.protocol == {"kind": "split"}
    assert listing.problems == []
    clips = by_id(listing)
    a, b, c = clips["clips/a"], clips["clips/b"], clips[elsewhere.with_suffix("").as_posix()]
    assert a.video == a.audio == tmp_path / "data/clips/a.mp4"
    assert (a.label, a.speaker, a.split, a.fold) == (0, "s1", "train", 0)
    assert b.video is None and b.audio == tmp_path / "data/clips/b.wav"  # audio suffix: audio-only
    assert (b.label, b.split) == (1, "val")
    assert c.video == c.audio == elsewhere and (c.speaker, c.split) == ("", "test")

    fixed = manifest.list_clips(csv_path, classes=["happy", "neutral", "sad"])
    assert fixed.classes == ["happy", "neutral", "sad"]
    assert by_id(fixed)["clips/a"].label == 2


def test_manifest_bad_rows_are_problems_with_line(tmp_path: Path) -> None:
    touch(tmp_path, "a.mp4", "b.mp4")
    csv_path = write_csv(
        tmp_path / "m.csv",
        "path,label,speaker,split",
        "a.mp4,angry,s1,train",  # line 2: fine
        "missing.mp4,angry,s1,train",  # 3
        "b.mp4,angry,s1,dev",  # 4
        "b.mp4,angry,s1",  # 5
        "b.mp4,,s1,test",  # 6
        "",  # 7: blank, skipped
        "./a.mp4,angry,s1,test",  # 8: same clip as line 2
        "b.mp4,calm,s1,test",  # 9: fine
    )
    listing = manifest.list_clips(csv_path)
    assert [c.clip_id for c in listing.clips] == ["a", "b"]
    expected = {3: "file not found", 4: "split 'dev'", 5: "expected 4 columns", 6: "empty label", 8: "line 2"}
    assert len(listing.problems) == len(expected)
    for problem, (line, reason) in zip(listing.problems, expected.items()):
        assert problem.startswith(f"{csv_path}:{line}: ") and reason in problem

    fixed = manifest.list_clips(csv_path, classes=["angry"])
    assert [c.clip_id for c in fixed.clips] == ["a"]
    assert f"{csv_path}:9: label 'calm' not in classes" in fixed.problems[-1]


def test_manifest_needs_csv_with_header(tmp_path: Path) -> None:
    touch(tmp_path, "a.mp4")
    headless = write_csv(tmp_path / "m.csv", "a.mp4,angry,s1,train")
    with pytest.raises(ValueError, match="m.csv must start with the header path,label,speaker,split"):
        manifest.list_clips(headless)
    with pytest.raises(ValueError, match="m.csv must start with the header"):
        manifest.list_clips(write_csv(tmp_path / "empty" / "m.csv", ""))
    with pytest.raises(ValueError, match="nope.csv is not a file"):
        manifest.list_clips(tmp_path / "nope.csv")


# registry


def test_list_dataset_dispatches_and_checks(tmp_path: Path) -> None:
    assert set(ADAPTERS) >= {"ravdess", "cremad", "manifest"}
    touch(tmp_path, "VideoFlash/1001_DFA_ANG_XX.flv")
    listing = list_dataset("cremad", tmp_path)
    assert listing.name == "cremad" and len(listing.clips) == 1
    with pytest.raises(ValueError, match="unknown dataset 'afew'; known: cremad, dfew, mafw, manifest, meld, ravdess"):
        list_dataset("afew", tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        list_dataset("ravdess", tmp_path / "missing")


# real data


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real sample data {path} is absent (only in the project's shared workspace)")
    return path


def test_real_ravdess_speech() -> None:
    listing = list_dataset("ravdess", shared("ravdess_speech_16k"))
    assert listing.problems == []
    assert len(listing.clips) == 1080
    assert {c.speaker for c in listing.clips} == {f"{a:02d}" for a in range(1, 19)}
    assert {c.fold for c in listing.clips} == {1, 2, 3, 4, 5}
    # Per actor: 4 neutral (normal intensity only: 2 statements x 2 repetitions), 8 of each other emotion.
    # (shared/data/README.md says 48 neutral; the files hold 18 x 4 = 72.)
    assert Counter(c.label for c in listing.clips) == {0: 72, **{label: 144 for label in range(1, 8)}}
    assert all(c.video is None and c.audio.suffix == ".flac" for c in listing.clips)


def test_real_ravdess_av() -> None:
    clips = by_id(list_dataset("ravdess", shared("ravdess_av")))
    av, video_only = clips["Actor_01/01-01-07-02-02-01-01"], clips["Actor_19/02-01-08-02-01-01-19"]
    assert av.video == av.audio and (av.label, av.fold) == (6, 1)
    assert video_only.audio is None and (video_only.label, video_only.fold) == (7, 5)


def test_real_cremad() -> None:
    listing = list_dataset("cremad", shared("cremad"))
    assert listing.problems == []
    assert len(listing.clips) == 6
    assert sorted(c.label for c in listing.clips) == list(range(6))
    assert all(c.audio == c.video and c.video.suffix == ".flv" and c.speaker == "1001" for c in listing.clips)
