"""A run folder's files: safetensors weights and JSON, each written beside and renamed into place, so loading a run
never unpickles anything and a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


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
