"""RAVDESS adapter: every clip under ROOT, labelled and folded from its file name alone.

Dataset: Livingstone & Russo, "The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS)",
PLoS ONE 13(5), 2018. Layout `ROOT/Actor_NN/MM-VC-EE-II-SS-RR-AA.{mp4,wav,flac}`, searched recursively,
so the official zips may be unpacked side by side or one level deeper.

Name fields: modality MM (01 audio-visual, 02 video-only, 03 audio-only), vocal channel VC (01 speech,
02 song), emotion EE (01..08), intensity II (01 normal, 02 strong), statement SS, repetition RR, actor AA
(01..24). Speech and song are both listed; filter on the name if a protocol wants speech only.

Protocol: 6 folds by actor, as in the literature, so no actor is in training and test at once:
fold 1 tests actors 1-4, fold 2 actors 5-8, ..., fold 6 actors 21-24.
"""

from __future__ import annotations

import re
from pathlib import Path

from dfer.data.clip import Clip, DatasetListing

CLASSES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]  # EE 01..08
PROTOCOL = {"kind": "kfold", "folds": 6}
ACTORS_PER_FOLD = 4

# Preference order when one recording exists in several formats: the release's own formats first.
SUFFIXES = (".mp4", ".wav", ".flac")
VIDEO_SUFFIXES = {".mp4"}
AUDIO_SUFFIXES = {".wav", ".flac"}

NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
ACTOR_FOLDER = re.compile(r"Actor_(\d\d)")

# (field, smallest, largest) for each of the seven name fields, in order.
FIELDS = [
    ("modality", 1, 3),
    ("vocal channel", 1, 2),
    ("emotion", 1, 8),
    ("intensity", 1, 2),
    ("statement", 1, 2),
    ("repetition", 1, 2),
    ("actor", 1, 24),
]


def fold_of(actor: int) -> int:
    """Test fold (1..6) of an actor (1..24)."""
    return (actor - 1) // ACTORS_PER_FOLD + 1


def parse(path: Path, rel: Path) -> tuple[int, int, int] | str:
    """(modality, emotion, actor) from a file's name, or the reason it is not a RAVDESS clip.

    `rel` is the path below ROOT: only folders inside ROOT are checked against the actor field.
    """
    match = NAME.fullmatch(path.stem)
    if match is None:
        return "name is not MM-VC-EE-II-SS-RR-AA"
    values = [int(v) for v in match.groups()]
    for (field, low, high), value in zip(FIELDS, values):
        if not low <= value <= high:
            return f"{field} {value:02d} not in {low:02d}-{high:02d}"
    modality, channel, emotion, intensity, _, _, actor = values
    if emotion == 1 and intensity == 2:
        return "neutral has no strong intensity"
    if channel == 2 and emotion in (7, 8):
        return f"song has no {CLASSES[emotion - 1]} clips"
    suffix = path.suffix.lower()
    if modality in (1, 2) and suffix not in VIDEO_SUFFIXES:
        return f"modality {modality:02d} needs a video file, not {suffix}"
    if modality == 3 and suffix not in AUDIO_SUFFIXES:
        return f"modality 03 (audio-only) needs an audio file, not {suffix}"
    folder = next((m for p in rel.parents if (m := ACTOR_FOLDER.fullmatch(p.name))), None)
    if folder is not None and int(folder.group(1)) != actor:
        return f"actor {actor:02d} is inside folder {folder.group(0)}"
    return modality, emotion, actor


def list_clips(root: Path) -> DatasetListing:
    """Every RAVDESS clip under `root`; names that do not parse are reported in `problems`, never guessed."""
    root = Path(root)
    files = [p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()]
    if not files:
        raise ValueError(f"no RAVDESS files ({', '.join(SUFFIXES)}) under {root}")
    # One recording per name: the name encodes every field, so a second copy is a duplicate wherever it lies.
    files.sort(key=lambda p: (p.stem, SUFFIXES.index(p.suffix.lower()), p.as_posix()))
    kept: dict[str, Path] = {}
    clips: list[Clip] = []
    problems: list[str] = []
    for path in files:
        rel = path.relative_to(root)
        parsed = parse(path, rel)
        if isinstance(parsed, str):
            problems.append(f"{path}: {parsed}")
            continue
        if path.stem in kept:
            problems.append(f"{path}: duplicate of {kept[path.stem]}, kept that one")
            continue
        kept[path.stem] = path
        modality, emotion, actor = parsed
        clips.append(
            Clip(
                clip_id=rel.with_suffix("").as_posix(),
                video=path if modality in (1, 2) else None,
                audio=path if modality in (1, 3) else None,
                label=emotion - 1,
                speaker=f"{actor:02d}",
                fold=fold_of(actor),
            )
        )
    clips.sort(key=lambda c: c.clip_id)
    problems.sort()
    return DatasetListing("ravdess", list(CLASSES), dict(PROTOCOL), clips, problems)
