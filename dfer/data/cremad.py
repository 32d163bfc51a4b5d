"""CREMA-D adapter: the audio-visual clips in ROOT/VideoFlash, labelled from their file names.

Dataset: Cao et al., "CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset", IEEE TAC 2014.
Layout `ROOT/VideoFlash/ActorID_Sentence_Emotion_Level.flv` (e.g. `1001_DFA_ANG_XX.flv`), actors 1001-1091.
Audio comes from `ROOT/AudioWAV/<same name>.wav` when present (the release's 16 kHz WAV), otherwise
from the .flv's own track. Clips are listed from VideoFlash only: AudioWAV alone has no faces to learn from.
clip_id is the bare name, the `FileName` key of CREMA-D's summaryTable.csv, so crowd labels can be joined.

Labels are the intended (acted) emotions: ANG, DIS, FEA, HAP, NEU, SAD.

Protocol: 5 speaker-independent folds. CREMA-D has no official folds, so the assignment is fixed by the
dataset's own actor range, not by what is on disk: actor `a` tests in fold `(a - 1001) % 5 + 1`
(1001 -> 1, 1002 -> 2, ..., 1006 -> 1). A partial copy therefore keeps every actor in the same fold.
"""

from __future__ import annotations

import re
from pathlib import Path

from dfer.data.clip import Clip, DatasetListing

CLASSES = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
PROTOCOL = {"kind": "kfold", "folds": 5}
ACTORS = range(1001, 1092)
SENTENCES = {"DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI"}
LEVELS = {"LO", "MD", "HI", "XX"}  # XX: level unspecified

NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")


def fold_of(actor: int) -> int:
    """Test fold (1..5) of an actor id (1001..1091), independent of which clips are present."""
    return ACTORS.index(actor) % PROTOCOL["folds"] + 1


def parse(stem: str) -> tuple[int, int] | str:
    """(actor, label) from a clip name, or the reason it is not a CREMA-D clip name."""
    match = NAME.fullmatch(stem)
    if match is None:
        return "name is not ActorID_Sentence_Emotion_Level"
    actor, sentence, emotion, level = match.groups()
    if int(actor) not in ACTORS:
        return f"actor {actor} not in {ACTORS[0]}-{ACTORS[-1]}"
    if sentence not in SENTENCES:
        return f"unknown sentence {sentence}"
    if emotion not in CLASSES:
        return f"unknown emotion {emotion}"
    if level not in LEVELS:
        return f"unknown level {level}"
    return int(actor), CLASSES.index(emotion)


def list_clips(root: Path) -> DatasetListing:
    """Every clip in ROOT/VideoFlash; names that do not parse are reported in `problems`, never guessed."""
    root = Path(root)
    video_dir = root / "VideoFlash"
    if not video_dir.is_dir():
        raise FileNotFoundError(f"CREMA-D needs {video_dir} (ROOT/VideoFlash/*.flv)")
    wav_dir = root / "AudioWAV"
    wavs = {p.name for p in wav_dir.iterdir()} if wav_dir.is_dir() else set()
    clips: list[Clip] = []
    problems: list[str] = []
    for path in sorted(video_dir.iterdir()):
        if path.suffix.lower() != ".flv" or not path.is_file():
            continue
        parsed = parse(path.stem)
        if isinstance(parsed, str):
            problems.append(f"{path}: {parsed}")
            continue
        actor, label = parsed
        wav = f"{path.stem}.wav"
        clips.append(
            Clip(
                clip_id=path.stem,
                video=path,
                audio=wav_dir / wav if wav in wavs else path,
                label=label,
                speaker=str(actor),
                fold=fold_of(actor),
            )
        )
    clips.sort(key=lambda c: c.clip_id)
    return DatasetListing("cremad", list(CLASSES), dict(PROTOCOL), clips, problems)
