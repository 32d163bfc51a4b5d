"""Prediction adapted to the speaker: files grouped by who speaks, each standardised with its group's statistics.

`--adapt together` treats every input as one speaker; `--adapt folder` groups the files by the folder each sits in;
`--statistics FILE` adds a speaker's saved statistics (`dfer.adapt.saved`) to every group, so a lone clip joins
the recordings they came from. A group is read in two passes: every file is decoded and encoded first (its tokens
kept: a group's memory grows with its files, a few MB of tokens each), then each is scored with the group's
statistics, the file itself included. A group of one clip adapts nothing and says so in `notes`; so does a model
that reads its tokens as they are (a zero-shot run). Files that fail are reported as they fail, as without
adaptation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from dfer.adapt.moments import Moments
from dfer.adapt.saved import merged
from dfer.media.clip_error import ClipError
from dfer.media.find import find_media
from dfer.media.prefetch import prefetched
from dfer.predict.predictor import FilePredictor, decode_files, predict_paths


def file_groups(files: list[Path], adapt: str) -> list[list[Path]]:
    """The files in groups of one speaker each, in order of first appearance: `none` one group per file,
    `together` one group of all, `folder` one group per parent folder."""
    if adapt == "together":
        return [files] if files else []
    if adapt == "folder":
        folders: dict[Path, list[Path]] = {}
        for path in files:
            folders.setdefault(path.parent, []).append(path)
        return list(folders.values())
    if adapt == "none":
        return [[path] for path in files]
    raise ValueError(f"adapt must be none, together or folder, not {adapt!r}")


def predict_adapted(predictor: FilePredictor, paths: list[Path], adapt: str = "none",
                    saved: dict[str, Moments] | None = None,
                    keep: Callable[[dict[str, Moments]], None] | None = None) -> Iterator[dict]:
    """One record per file (a `predict_file` result or {"path", "error"}), each standardised with its group's
    statistics (see the module docstring); `keep(moments)` is handed each group's moments (to save them). Without
    adaptation and saved statistics this is `predict_paths`: today's answers, exactly."""
    if adapt == "none" and not saved and keep is None:
        yield from predict_paths(predictor, paths)
        return
    files, errors = find_media(paths, predictor.suffixes)
    yield from errors
    for group in file_groups(files, adapt):
        encoded = []
        for path, decoded in prefetched(decode_files(predictor, group)):
            try:
                if isinstance(decoded, ClipError):
                    raise decoded
                clip, seconds = decoded
                encoded.append(predictor.encode_clip(path, clip, seconds={"decode": seconds}))
            except ClipError as error:
                yield {"path": str(path), "error": error.reason}
        moments = merged(saved or {}, *(predictor.moments(one) for one in encoded))
        if keep is not None:
            keep(moments)
        for one in encoded:
            try:
                yield predictor.score(one, moments)
            except ClipError as error:
                yield {"path": str(one.path), "error": error.reason}
