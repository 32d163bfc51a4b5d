"""Recipes: YAML files of settings for one stage of one dataset (the first line is the command that runs it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import yaml

Settings = TypeVar("Settings")


def load_recipe(path: Path) -> dict:
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a recipe is a mapping of settings")
    return values


def settings_from(cls: type[Settings], recipe: Path | None, what: str, **overrides) -> Settings:
    """A settings dataclass from recipe values, then every override that is not None; unknown keys are an error
    naming them (a typo in a recipe must not silently fall back to a default)."""
    values = load_recipe(recipe) if recipe else {}
    values.update({key: value for key, value in overrides.items() if value is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{recipe or 'settings'}: unknown {what} settings {unknown}; known: {sorted(known)}")
    return cls(**values)
