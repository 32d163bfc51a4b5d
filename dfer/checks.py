"""Cheap checks of what a command is given, run before anything heavy loads.

Loading torch, the encoders and the heads takes seconds; a mistyped path should not wait for them. Every `dfer`
command checks its inputs here first: files and folders exist and are what the command reads (a media file's
header is opened with PyAV, nothing is decoded), runs and caches are runs and caches. A failed check raises
`InputError` naming the input and the reason, which `dfer` prints as one line. Names are checked where their tables
live, as cheaply: `dfer.data.check_dataset` and `dfer.encoders.presets.resolve_preset`.

Importing this module loads neither torch nor zarr: only PyAV, numpy and the pure-Python tables it checks names
against.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dfer.errors import InputError, NotARun


def media_inputs(paths: Iterable[Path]) -> None:
    """Every named file is a readable video or audio file, every named folder holds at least one (by suffix).

    The files found in a folder are not opened here: one bad file among many is that file's failure, reported
    beside the others' results, not a reason to refuse the whole folder.
    """
    from dfer.media.clip_error import ClipError
    from dfer.media.probe import media_streams
    from dfer.media.find import MEDIA_SUFFIXES, find_media

    paths = [Path(path) for path in paths]
    _, missing = find_media(paths, MEDIA_SUFFIXES)
    if missing:
        raise InputError(missing[0]["path"], missing[0]["error"])
    for path in paths:
        if path.is_file():
            try:
                media_streams(path)
            except ClipError as error:
                raise InputError(path, error.reason) from None


def run_folder(run: str | Path, cross_validation: bool = False) -> Path:
    """`dfer.runs.folder.run_folder`, its `NotARun` reported as the RUN argument's `InputError`."""
    from dfer.runs.folder import run_folder as checked

    try:
        return checked(run, cross_validation)
    except NotARun as error:
        raise InputError(error.what, error.reason) from None


def model_inputs(models: Iterable[str] | None) -> None:
    """Every `--model` names a run folder or a bundled model (none: the bundled default pair, always there)."""
    for model in models or ():
        run_folder(model)


def cache(path: Path) -> None:
    """`path` is a dfer cache: a Zarr store folder or an `.h5` export."""
    from dfer.store.reader import open_cache

    if not Path(path).exists():
        raise InputError(path, "no such cache (a Zarr store folder or an .h5 export)")
    open_cache(path)


def existing_file(path: Path | None, what: str) -> None:
    """An optional file argument (a recipe, a manifest) exists when given."""
    if path is not None and not Path(path).is_file():
        raise InputError(path, f"no such {what} file")
