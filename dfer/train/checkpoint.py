"""Training state for `--resume`: `resume.safetensors` (the optimizer's tensors) and `resume.json` (epoch, best
score, parameter groups, schedule), beside the run folder's weights (`dfer.runs.files`), so a resumed run continues
exactly where it stopped. Only training writes or reads these; every other use of a run folder is `dfer.runs`'.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dfer.runs.files import write_json


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
