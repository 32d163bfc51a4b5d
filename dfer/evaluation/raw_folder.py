"""`dfer evaluate --dataset --root`: a raw folder of a dataset extracted exactly as a run's own store was, into a
cache kept for the next evaluation of the same run on the same folder."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from dfer.encoders import extraction_seed
from dfer.store import fingerprint as fp


def cache_for_folder(config: dict, dataset: str, root: Path, cache_root: Path = Path("cache")) -> Path:
    """Where `evaluate --dataset --root` keeps the extraction of a folder with the run's encoders (reused next time)."""
    key = hashlib.sha256(f"{Path(root).resolve()}|{sorted(fp.flatten(config['fingerprint']).items())}".encode())
    return cache_root / f"{dataset}-eval-{key.hexdigest()[:12]}"


def extract_like_run(config: dict, dataset: str, root: Path, out: Path, device: str = "cpu") -> Path:
    """Extract `root` with exactly the encoders and settings of the run's cache."""
    from dfer.extract.pipeline import ExtractConfig, run as extract
    from dfer.faces.settings import FaceSettings

    fingerprint = config["fingerprint"]
    seed = extraction_seed(fingerprint)
    summary = extract(ExtractConfig(
        dataset=dataset, root=root, out=out, vision=fingerprint["vision"]["id"], audio=fingerprint["audio"]["id"],
        frames=fingerprint["frames"], sample_rate=fingerprint["sample_rate"], crop_margin=fingerprint["crop_margin"],
        max_seconds=fingerprint["max_seconds"], keep_media=fingerprint["keep_media"], seed=seed, device=device,
        face_track=fingerprint.get("face_track", "largest"),
        faces=FaceSettings.of(fingerprint),  # exactly its store's: a run from before issue 21 gets the legacy ones
        # the same adapter's options (DFEW's frames) carry over; another dataset's adapter would not know them
        dataset_options=fingerprint.get("dataset_options", {}) if dataset == config["dataset"] else {},
    ))
    for clip_id, error in summary.failures:
        print(f"failed {clip_id}: {error}", file=sys.stderr)  # stdout is for the metrics (`--json`)
    return out

