"""`dfer evaluate`: score a run's best heads (or linear probe) on any cache made with the same encoders, or on a
raw folder.

Tokens from other encoders, frame counts or crops would be silently wrong inputs, so the cache's fingerprint
must match the run's on every field that shapes the tokens; the error names the ones that differ.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from dfer.encoders import extraction_seed
from dfer.store import fingerprint as fp
from dfer.store.reader import open_cache
from dfer.train import checkpoint
from dfer.train.config import TrainConfig
from dfer.train.data import CachedClips
from dfer.train.loop import loader_for, predict
from dfer.train.metrics import classification_metrics
from dfer.train.splits import usable_clips

TOKEN_FIELDS = ("vision", "audio", "frames", "sample_rate", "crop_margin")  # what decides the tokens


def evaluate(run: Path, store: Path, device: str = "cpu", batch_size: int = 32) -> dict:
    """Metrics on the run's own test clips when `store` is the cache it trained on, else on every usable clip."""
    model, config = checkpoint.load_run(run, "best", device)
    reader = open_cache(store)
    fp.check(reader.path, _token_fields(config["fingerprint"]), _token_fields(reader.fingerprint))
    if reader.classes != config["classes"]:
        raise ValueError(f"{store}: classes {reader.classes} differ from the run's {config['classes']}")
    modalities = config["heads"]["modalities"]
    usable = np.flatnonzero(usable_clips(reader, modalities))
    own_store = Path(config["store"]) == Path(reader.path).resolve()
    if own_store and config["split"]["test"]:
        clip_ids = reader.read_all("clip_id").astype(str)
        wanted = set(config["split"]["test"])
        indices, subset = [int(i) for i in usable if clip_ids[i] in wanted], f"the run's test clips ({config['split']['name']})"
    else:
        seen = " (this is the run's own cache: its training clips are included)" if own_store else ""
        indices, subset = [int(i) for i in usable], f"every usable clip{seen}"
    if not indices:
        raise ValueError(f"{store}: no usable clips for a {modalities} model")
    cfg = TrainConfig(batch_size=batch_size, modalities=modalities, device=device)  # loader settings only
    labels, probs = predict(model, loader_for(CachedClips(reader, indices, modalities), cfg), torch.device(device))
    metrics = classification_metrics(labels, probs, reader.classes)
    metrics.update(run=str(run), store=str(store), subset=subset)
    return metrics


def _token_fields(fingerprint: dict) -> dict:
    return {key: fingerprint[key] for key in TOKEN_FIELDS}


def cache_for_folder(config: dict, dataset: str, root: Path, cache_root: Path = Path("cache")) -> Path:
    """Where `evaluate --dataset --root` keeps the extraction of a folder with the run's encoders (reused next time)."""
    key = hashlib.sha256(f"{Path(root).resolve()}|{sorted(fp.flatten(config['fingerprint']).items())}".encode())
    return cache_root / f"{dataset}-eval-{key.hexdigest()[:12]}"


def extract_like_run(config: dict, dataset: str, root: Path, out: Path, device: str = "cpu") -> Path:
    """Extract `root` with exactly the encoders and settings of the run's cache."""
    from dfer.extract.pipeline import ExtractConfig, run as extract

    fingerprint = config["fingerprint"]
    seed = extraction_seed(fingerprint)
    summary = extract(ExtractConfig(
        dataset=dataset, root=root, out=out, vision=fingerprint["vision"]["id"], audio=fingerprint["audio"]["id"],
        frames=fingerprint["frames"], sample_rate=fingerprint["sample_rate"], crop_margin=fingerprint["crop_margin"],
        max_seconds=fingerprint["max_seconds"], keep_media=fingerprint["keep_media"], seed=seed, device=device,
        face_track=fingerprint.get("face_track", "largest"),
        # the same adapter's options (DFEW's frames) carry over; another dataset's adapter would not know them
        dataset_options=fingerprint.get("dataset_options", {}) if dataset == config["dataset"] else {},
    ))
    for clip_id, error in summary.failures:
        print(f"failed {clip_id}: {error}", file=sys.stderr)  # stdout is for the metrics (`--json`)
    return out

