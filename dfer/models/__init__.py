"""Models that ship inside the dfer package, addressable by name wherever a run folder is taken.

A bundled model is an ordinary run folder (config.json, best.safetensors, README.md: its model card) under
`dfer/models/<name>/`, plus `model.json`: what `dfer models` lists (training data and its licence, the headline figure
and its protocol) and the SHA-256 of its weights as the make target that writes them recorded it
(`make models`, the `models` target of the Makefile). `pip install` carries them, so `dfer predict FILE --model voice`
answers before anything is trained.

`dfer.runs.folder.resolve_run` turns a `--model` / RUN argument that names one of these into its folder.
"""

from __future__ import annotations

import json
from pathlib import Path

BUNDLED_ROOT = Path(__file__).resolve().parent
DEFAULT_MODELS = ("voice", "face")  # what `dfer predict` and `dfer serve` fuse with no --model
MODEL_FILE = "model.json"


def bundled() -> dict[str, Path]:
    """name -> folder of every model shipped in the package, by name."""
    return {folder.name: folder for folder in sorted(BUNDLED_ROOT.iterdir()) if (folder / MODEL_FILE).exists()}


def model_facts(name: str) -> dict:
    """What `dfer models` shows of one bundled model: its model.json, its folder, and from its config.json the
    modalities, classes (display names) and encoders."""
    from dfer.adapt.settings import adaptation_summary
    from dfer.store.fingerprint import Fingerprint
    from dfer.streams import read_by

    folder = bundled()[name]
    facts = json.loads((folder / MODEL_FILE).read_text())
    config = json.loads((folder / "config.json").read_text())
    recorded = Fingerprint.from_dict(config["fingerprint"]).encoders
    modalities = config["heads"]["modalities"]
    encoders = {stream: recorded[stream][1]["id"] for stream in read_by(config["heads"])}  # stream -> its encoder
    return {"name": name, "folder": str(folder), "modalities": modalities, "classes": config["display_names"],
            "encoders": encoders, "adapts": adaptation_summary(config), **facts}
