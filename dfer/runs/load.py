"""A run's model rebuilt from its folder: the heads, a linear probe or a zero-shot classifier, from config.json and
the weights, and the words its classes are shown by.

A run folder holds `config.json` (training settings, head config, classes and their display names, the cache
fingerprint and path, the split) and `best.safetensors` / `last.safetensors` (the model's weights). A `dfer probe`
run has "model": "probe" in its config, a `dfer zeroshot` run "model": "zeroshot" (the vision encoder's own
classifier and a class prior); a `dfer train` run of several members ("train": {"members": K}) is `HeadMembers`,
its weights the K heads' under `members.k.`; a `dfer finetune` run's heads load here too, its encoders are
RUN/vision and RUN/audio (`dfer.finetune.model.load_end_to_end`, `dfer.predict.predictor.Predictor`).
"""

from __future__ import annotations

import json
from pathlib import Path

from dfer.data.names import display_names
from dfer.heads import DferHeads, HeadConfig, HeadMembers, LinearProbe, ZeroShot
from dfer.runs.files import load_weights
from dfer.runs.folder import run_folder

Model = DferHeads | HeadMembers | LinearProbe | ZeroShot


def heads_of(config: dict) -> DferHeads | HeadMembers:
    """The heads a run's config describes: one set, or the members of a run trained from several seeds (runs made
    before members record none: one)."""
    heads, members = HeadConfig.from_dict(config["heads"]), config.get("train", {}).get("members", 1)
    return DferHeads(heads) if members == 1 else HeadMembers(heads, members)


# config["model"] -> the module its config describes; runs made before the probe have no "model": heads
MODELS = {"heads": heads_of, "probe": lambda config: LinearProbe.from_config(config["heads"]),
          "zeroshot": lambda config: ZeroShot(**config["heads"])}


def load_run(run: Path, which: str = "best", device: str = "cpu") -> tuple[Model, dict]:
    """Rebuild the model of a run folder or bundled model (the heads, a linear probe or a zero-shot classifier) from
    its JSON config and weights."""
    run = run_folder(run)
    config = json.loads((run / "config.json").read_text())
    kind = config.get("model", "heads")
    if kind not in MODELS:
        raise ValueError(f"{run}: unknown model {kind!r} in config.json; known: {sorted(MODELS)}")
    weights = run / f"{which}.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{run}: no {weights.name} in this {kind} run")
    model = MODELS[kind](config)
    model.load_state_dict(load_weights(weights, device))
    return model.to(device).eval(), config


def run_display_names(config: dict) -> list[str]:
    """The display names of a run's classes: config.json's "display_names", or for a run made before they were
    recorded, the names `dfer.data.names` gives its dataset's codes today."""
    return config.get("display_names") or display_names(config["dataset"], config["classes"])
