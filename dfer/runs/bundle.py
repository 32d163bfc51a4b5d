"""`python -m dfer.runs.bundle NAME RUN FACTS.json [METRICS.json]`: make run folder RUN the bundled model NAME
(`make models`).

It copies what a run needs to predict (config.json and best.safetensors) into `dfer/models/NAME/`, writes its model
card (README.md, `dfer.runs.card`) and `model.json`: FACTS (the training data and its licence, the headline figure and its protocol, the limitations: a
recipe's own JSON under recipes/models/), the figures of a `dfer evaluate --out` METRICS.json when given (`scored`),
and the SHA-256 of the weights it copied and the run it copied them from.
`tests/test_models.py` checks the committed weights against that checksum, so the files in the package are the ones
the make target wrote. The run's absolute store path is made relative to the repository, so the package holds no
path of the machine that built it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from dfer.models import BUNDLED_ROOT, MODEL_FILE
from dfer.runs.card import write_card

REPOSITORY = BUNDLED_ROOT.parents[1]
RUN_FILES = ("config.json", "best.safetensors")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bundle(name: str, run: Path, facts: dict, metrics: dict | None = None) -> Path:
    """Copy RUN's model into dfer/models/NAME with its model.json; returns the folder."""
    run, folder = Path(run), BUNDLED_ROOT / name
    missing = [file for file in RUN_FILES if not (run / file).exists()]
    if missing:
        raise FileNotFoundError(f"{run}: not a finished run (no {', '.join(missing)})")
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((run / "config.json").read_text())
    store = Path(config["store"])
    config["store"] = str(store.relative_to(REPOSITORY)) if store.is_relative_to(REPOSITORY) else store.name
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copyfile(run / "best.safetensors", folder / "best.safetensors")
    made = {"sha256": sha256(folder / "best.safetensors"), "made_from": str(run)}
    if metrics is not None:
        made["scored"] = scored_figures(metrics)
    (folder / MODEL_FILE).write_text(json.dumps({**facts, **made}, indent=2) + "\n")
    write_card(folder)
    return folder


def scored_figures(metrics: dict) -> dict:
    """What model.json records of an evaluation: a `dfer evaluate --out` metrics.json, or a cross-validation's
    summary.json (`dfer train --fold all`: the means over its folds, of the recipe the bundled run repeats on all
    the clips)."""
    if "summary" not in metrics:
        return {key: metrics[key] for key in ("WAR", "UAR", "n", "subset")} | {"store": Path(metrics["store"]).name}
    folds = metrics["folds"]
    return {"WAR": metrics["summary"]["WAR"]["mean"], "UAR": metrics["summary"]["UAR"]["mean"],
            "n": sum(fold["n"] for fold in folds.values()),
            "subset": f"{len(folds)}-fold cross-validation of the same recipe: the mean of its folds' test figures"}


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python -m dfer.runs.bundle NAME RUN FACTS.json [METRICS.json]")
    facts, *scored = (json.loads(Path(path).read_text()) for path in sys.argv[3:])
    print(bundle(sys.argv[1], Path(sys.argv[2]), facts, *scored))
