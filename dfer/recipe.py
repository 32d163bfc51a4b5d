"""Recipes: YAML files of settings for one stage of one dataset (the first line is the command that runs it)."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_recipe(path: Path) -> dict:
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a recipe is a mapping of settings")
    return values
