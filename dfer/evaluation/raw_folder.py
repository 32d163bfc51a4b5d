"""`dfer evaluate --dataset --root`: a raw folder of a dataset extracted exactly as a run's own store was, into a
cache kept for the next evaluation of the same run on the same folder."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from dfer.store import fingerprint as fp


def cache_for_folder(config: dict, dataset: str, root: Path, cache_root: Path = Path("cache")) -> Path:
    """Where `evaluate --dataset --root` keeps the extraction of a folder with the run's encoders (reused next time)."""
    key = hashlib.sha256(f"{Path(root).resolve()}|{sorted(fp.flatten(config['fingerprint']).items())}".encode())
    return cache_root / f"{dataset}-eval-{key.hexdigest()[:12]}"


def extract_like_run(config: dict, dataset: str, root: Path, out: Path, device: str = "cpu") -> Path:
    """Extract `root` with exactly the encoders and settings of the run's cache."""
    from dfer.extract.pipeline import ExtractConfig, run as extract

    fingerprint = fp.Fingerprint.from_dict(config["fingerprint"])
    summary = extract(ExtractConfig(dataset=dataset, root=root, out=out, device=device,
                                    **fingerprint.extract_settings(same_dataset=dataset == config["dataset"])))
    for clip_id, error in summary.failures:
        print(f"failed {clip_id}: {error}", file=sys.stderr)  # stdout is for the metrics (`--json`)
    return out

