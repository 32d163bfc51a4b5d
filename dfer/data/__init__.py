"""Dataset adapters: each turns one dataset's folder layout into a DatasetListing of labelled clips.

To add a dataset, write `dfer/data/<name>.py` with `list_clips(root, ...) -> DatasetListing` and add it
to ADAPTERS; everything downstream (extraction, training) goes through `list_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dfer.data import cremad, dfew, mafw, manifest, meld, ravdess
from dfer.data.clip import Clip, DatasetListing

ADAPTERS: dict[str, Callable[..., DatasetListing]] = {
    "ravdess": ravdess.list_clips,
    "cremad": cremad.list_clips,
    "dfew": dfew.list_clips,
    "mafw": mafw.list_clips,
    "meld": meld.list_clips,
    "manifest": manifest.list_clips,
}

__all__ = ["ADAPTERS", "Clip", "DatasetListing", "check_dataset", "list_dataset"]


def check_dataset(name: str, root: Path) -> None:
    """What `list_dataset` needs before it lists: a known dataset name and a root that exists. Cheap, so the CLI
    calls it before anything heavy loads."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    if not Path(root).exists():
        raise FileNotFoundError(f"{name} root {root} does not exist")


def list_dataset(name: str, root: Path, **options) -> DatasetListing:
    """The clips of dataset `name` found at `root` (a folder, or the CSV for `manifest`)."""
    check_dataset(name, root)
    return ADAPTERS[name](Path(root), **options)
