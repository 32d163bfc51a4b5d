"""Weights dfer carries inside the package, copied unchanged from the package that publishes them, so `pip install`
alone brings them and no model hub is needed: face-api.js's FaceExpressionNet, MTCNN's three networks and GE2E.

Each folder under `weights/` holds the files, the publisher's licence and a README with their SHA-256 sums; a make
target (`make faceapi-weights`, `make mtcnn-weights`, `make ge2e-weights`) fetches the package again and compares.
Every read here checks the sum too, so a truncated or replaced file fails in one line instead of loading.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def read_vendored(path: Path, sha256: str, origin: str, target: str) -> bytes:
    """`path`'s bytes, refused (ValueError) unless they are `origin`'s file: its SHA-256 is `sha256`."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: SHA-256 {digest} is not that of {origin} ({sha256}); reinstall dfer or run "
                         f"`make {target}`")
    return data
