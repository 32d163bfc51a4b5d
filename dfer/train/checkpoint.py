"""Run folders on disk: safetensors weights and JSON, so loading a run never unpickles anything.

A run folder holds `config.json` (training settings, head config, classes and their display names, the cache
fingerprint and path, the split), `best.safetensors` / `last.safetensors` (head weights), and `resume.safetensors` +
`resume.json` (optimizer and schedule state) so `--resume` continues exactly where a run stopped. A `dfer probe`
run holds `config.json` (with "model": "probe") and `best.safetensors` only: a fit has no epochs; so does a
`dfer zeroshot` run ("model": "zeroshot": the vision encoder's own classifier and a class prior).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dfer.checks import run_folder
from dfer.data.names import display_names
from dfer.heads import DferHeads, HeadConfig, LinearProbe, ZeroShot


def write_json(path: Path, value: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2))
    partial.replace(path)


def save_weights(module: torch.nn.Module, path: Path) -> None:
    state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    partial = path.with_suffix(".partial")
    save_file(state, str(partial))
    partial.replace(path)


def load_weights(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return load_file(str(path), device=str(device))


# config["model"] -> the module its config["heads"] describes; runs made before the probe have no "model": heads
MODELS = {"heads": lambda heads: DferHeads(HeadConfig.from_dict(heads)), "probe": lambda heads: LinearProbe(**heads),
          "zeroshot": lambda heads: ZeroShot(**heads)}


def load_run(run: Path, which: str = "best", device: str = "cpu") -> tuple[DferHeads | LinearProbe | ZeroShot, dict]:
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
    model = MODELS[kind](config["heads"])
    model.load_state_dict(load_weights(weights, device))
    return model.to(device).eval(), config


def run_display_names(config: dict) -> list[str]:
    """The display names of a run's classes: config.json's "display_names", or for a run made before they were
    recorded, the names `dfer.data.names` gives its dataset's codes today."""
    return config.get("display_names") or display_names(config["dataset"], config["classes"])


def save_resume(run: Path, optimizer: torch.optim.Optimizer, scheduler, progress: dict) -> None:
    """Optimizer tensors flattened into safetensors; everything else (epoch, best UAR, ...) as JSON."""
    state = optimizer.state_dict()
    tensors = {f"{pid}.{key}": value.detach().cpu().contiguous()
               for pid, slots in state["state"].items() for key, value in slots.items()}
    save_file(tensors, str(run / "resume.partial"))
    (run / "resume.partial").replace(run / "resume.safetensors")
    write_json(run / "resume.json", {**progress, "param_groups": state["param_groups"],
                                     "scheduler": scheduler.state_dict()})


def load_resume(run: Path, optimizer: torch.optim.Optimizer, scheduler) -> dict:
    info = json.loads((run / "resume.json").read_text())
    slots: dict[int, dict] = {}
    for name, value in load_file(str(run / "resume.safetensors")).items():
        pid, key = name.split(".", 1)
        slots.setdefault(int(pid), {})[key] = value
    try:
        optimizer.load_state_dict({"state": slots, "param_groups": info.pop("param_groups")})
    except ValueError as error:  # the heads' parameters changed since it was saved (e.g. roi.saliency.bias is gone)
        raise ValueError(f"{run}: its optimizer state was saved by an older dfer, for other parameters than these "
                         f"heads have ({error}); train it again without --resume") from error
    scheduler.load_state_dict(info.pop("scheduler"))
    return info
