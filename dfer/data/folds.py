"""Shared by the DFEW and MAFW adapters: official k-fold lists -> one test fold per clip, and media found by number.

Both datasets ship, for each fold k, a training list and a test list of clip numbers with labels. dfer keeps one
number per clip, its test fold, and trains fold k on every clip outside test fold k (`dfer.train.splits`). That is the
official protocol exactly when the K test lists partition the listed clips and each training list is the rest, so
`assign_folds` checks both and reports every clip where the official files say otherwise, with file and line:
- a clip in two test lists (kept in the first fold; the store cannot hold two test folds);
- a clip in fold k's training list and its test list (a leak in the files);
- a clip in a training list but in no test list (it has no test fold, so it is not listed);
- a clip in another fold's test list but missing from fold k's training list (dfer would train fold k on it);
- two lists that disagree on a clip's label (the test list's label is kept).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dfer.data.clip import Clip


@dataclass(frozen=True)
class Entry:
    """One row of an official list: clip number, label index and where it was read ("FILE:LINE")."""

    number: int
    label: int
    where: str


@dataclass(frozen=True)
class Assigned:
    fold: int
    label: int
    where: str  # the test-list row that fixed fold and label


def assign_folds(
    tests: dict[int, list[Entry]], trains: dict[int, list[Entry]]
) -> tuple[dict[int, Assigned], list[str]]:
    """Clip number -> (test fold, label, source row) from the per-fold test lists, checked against the training lists.

    `trains` may be empty (training lists absent): then only the test lists are checked against each other.
    """
    problems: list[str] = []
    assigned: dict[int, Assigned] = {}
    for fold in sorted(tests):
        for entry in tests[fold]:
            first = assigned.get(entry.number)
            if first is None:
                assigned[entry.number] = Assigned(fold, entry.label, entry.where)
            elif first.fold == fold:
                problems.append(
                    f"{entry.where}: clip {entry.number} listed twice in this test list (first at {first.where})"
                )
            else:
                problems.append(
                    f"{entry.where}: clip {entry.number} is also in fold {first.fold}'s test list ({first.where}): "
                    f"the test lists do not partition the clips; kept fold {first.fold}"
                )
            if first is not None and first.label != entry.label:
                problems.append(f"{entry.where}: label {entry.label} disagrees with {first.where} ({first.label})")

    for fold in sorted(trains):
        listed: set[int] = set()
        for entry in trains[fold]:
            listed.add(entry.number)
            known = assigned.get(entry.number)
            if known is None:
                problems.append(
                    f"{entry.where}: clip {entry.number} is in no test list, so it has no test fold; not listed"
                )
            elif known.fold == fold:
                problems.append(
                    f"{entry.where}: clip {entry.number} is in fold {fold}'s training and test lists ({known.where})"
                )
            elif known.label != entry.label:
                problems.append(f"{entry.where}: label {entry.label} disagrees with {known.where} ({known.label})")
        if tests:  # a training list should hold every clip of the other folds' test lists
            omitted = sorted(n for n, a in assigned.items() if a.fold != fold and n not in listed)
            for number in omitted:
                problems.append(
                    f"{assigned[number].where}: clip {number} (test fold {assigned[number].fold}) is missing from fold "
                    f"{fold}'s training list; dfer trains fold {fold} on every clip outside its test fold"
                )
    return assigned, problems


def index_by_number(folder: Path, suffixes: Iterable[str]) -> tuple[dict[int, Path], list[str]]:
    """Number -> file for every file below `folder` whose stem is all digits and whose suffix is in `suffixes`.

    Found at any depth, so the release's part folders and zero padding do not matter. Two files with one number
    (e.g. `part_1/00001.mp4` and `extra/1.mp4`) are reported; the first in path order is kept.
    """
    wanted = {s.lower() for s in suffixes}
    return _by_number(sorted(p for p in folder.rglob("*") if p.suffix.lower() in wanted and p.stem.isdigit()
                             and p.is_file()))


def index_numbered_folders(folder: Path) -> tuple[dict[int, Path], list[str]]:
    """Number -> folder for every folder below `folder` named by digits alone (e.g. DFEW's `clip_224x224/00001/`),
    at any depth, reported like `index_by_number`. A numbered folder is not entered: it holds frames, not clips."""
    found = []
    for dirpath, dirnames, _ in os.walk(folder):
        found += [Path(dirpath) / name for name in dirnames if name.isdigit()]
        dirnames[:] = [name for name in dirnames if not name.isdigit()]
    return _by_number(sorted(found))


def _by_number(paths: list[Path]) -> tuple[dict[int, Path], list[str]]:
    found: dict[int, Path] = {}
    problems: list[str] = []
    for path in paths:
        number = int(path.stem)
        if number in found:
            problems.append(f"{path}: same clip number as {found[number]}, kept that one")
        else:
            found[number] = path
    return found, problems


def numbered_clips(assigned: dict, videos: dict[int, Path], root: Path, below: Path,
                   problems: list[str]) -> list[Clip]:
    """Clips for fold-assigned numbers, sorted by id; a number without a video is reported where it was listed."""
    clips = []
    for number, entry in assigned.items():
        video = videos.get(number)
        if video is None:
            problems.append(f"{entry.where}: no video numbered {number} below {below}")
            continue
        info = {"file": video.relative_to(root).as_posix()}
        clips.append(Clip(f"{number:05d}", video, video, entry.label, "", fold=entry.fold, info=info))
    return sorted(clips, key=lambda c: c.clip_id)


def clips_from_fold_lists(list_path: Callable[[str, int], Path], read_list: Callable[[Path, list[str]], list[Entry]],
                          folds: int, media: dict[int, Path], below: Path, root: Path,
                          problems: list[str]) -> list[Clip]:
    """The official per-fold train/test lists (`list_path(part, fold)`) -> checked fold assignment -> clips whose
    media (`index_by_number` or `index_numbered_folders` of `below`) has their number. A missing test list, and every
    row or clip that does not fit, goes into `problems`."""
    lists: dict[str, dict[int, list[Entry]]] = {"train": {}, "test": {}}
    for part in ("train", "test"):
        for fold in range(1, folds + 1):
            path = list_path(part, fold)
            if path is not None and path.is_file():
                lists[part][fold] = read_list(path, problems)
            elif part == "test":
                problems.append(f"{path}: missing, so fold {fold}'s test clips are not listed")
    assigned, fold_problems = assign_folds(lists["test"], lists["train"])
    problems += fold_problems
    return numbered_clips(assigned, media, root, below, problems)
