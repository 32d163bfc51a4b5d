"""What makes two caches interchangeable, and a readable answer when they are not.

Tokens from different encoders, frame counts or crop margins must never be mixed in one store, and a run
trained on one cache must not be scored on tokens of another. A fingerprint is a nested dict of plain JSON
values; comparing two gives the dotted names of the fields that differ, so the error can say which one.
"""

from __future__ import annotations

from typing import Any


TOKEN_FIELDS = ("vision", "audio", "frames", "sample_rate", "crop_margin")  # what decides a store's tokens


class FingerprintMismatch(ValueError):
    """Raised when a store is opened with settings that would produce different tokens."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"vision": {"id": "x"}} -> {"vision.id": "x"}; lists are compared as whole values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Human-readable lines `field: store has A, this run has B`, sorted by field name."""
    want, have = flatten(expected), flatten(found)
    lines = []
    for name in sorted(set(want) | set(have)):
        if want.get(name, "<absent>") != have.get(name, "<absent>"):
            lines.append(f"{name}: store has {have.get(name, '<absent>')!r}, this run has {want.get(name, '<absent>')!r}")
    return lines


def check(store_path: object, expected: dict[str, Any], found: dict[str, Any]) -> None:
    """Raise FingerprintMismatch naming every differing field."""
    lines = differences(expected, found)
    if lines:
        raise FingerprintMismatch(
            f"{store_path}: the store was made with different settings:\n  " + "\n  ".join(lines)
            + "\nUse another --out, or the store's own settings."
        )
