"""Which folder a RUN names, and what kind of run folder it is: one run, a cross-validation's folds, a fine-tune.

`resolve_run` is the one place a `--model` / RUN argument becomes a folder: an existing path is itself (a local
folder called `voice` wins over the bundled one), a bundled name is its folder in the package (`dfer.models`).
Importing this module loads neither torch nor zarr.
"""

from __future__ import annotations

import json
from pathlib import Path

from dfer.errors import NotARun
from dfer.models import bundled


def resolve_run(run: str | Path) -> Path:
    """A run folder, or the folder of a bundled model named `run`; a path that is neither is an error naming both
    what it looked for and the bundled names."""
    path = Path(run)
    if path.exists():
        return path
    models = bundled()
    if str(run) in models:
        return models[str(run)]
    raise FileNotFoundError(f"{run}: no such run folder, and not a bundled model ({', '.join(models) or 'none'})")


def fold_runs(folder: Path) -> list[str]:
    """The fold runs (fold1, fold2, ...) of a cross-validation folder, by name; [] for anything else."""
    return sorted(p.name for p in Path(folder).glob("fold*") if (p / "config.json").exists())


def run_folder(run: str | Path, cross_validation: bool = False) -> Path:
    """The folder a RUN / --model names (a run folder or a bundled model), checked to hold a run's config.json;
    with `cross_validation`, a folder of fold runs (`dfer train --fold all`) is taken too. Anything else is
    `NotARun`, which names the fold runs a cross-validation folder holds."""
    folder = resolve_run(run)
    if (folder / "config.json").exists():
        return folder
    folds = fold_runs(folder)
    if folds and cross_validation:
        return folder
    hint = f" It holds fold runs {folds}: pass one, e.g. {folder / folds[0]}." if folds else ""
    raise NotARun(run, f"not a dfer run (no config.json).{hint}")


def is_end_to_end(run: Path) -> bool:
    """A run folder written by `dfer finetune` (its config has a "finetune" section)."""
    path = Path(run) / "config.json"
    return path.exists() and "finetune" in json.loads(path.read_text())
