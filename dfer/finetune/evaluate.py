"""Score a fine-tuned run (RUN2) from a store's media: its own encoders (RUN2/vision, RUN2/audio) and heads.

The cached tokens of a store were made by the encoders *before* fine-tuning, so they are the wrong input for
RUN2's heads; the face crops and waveforms are the right one. The store must hold media (`--keep-media`) made
with the same frames, sample rate and crop margin as the run's own store; the encoders it names do not
matter. Which clips are scored follows `dfer evaluate`: the run's test clips on its own store, else every
usable clip. `dfer evaluate RUN2 --store STORE` dispatches here when RUN2/config.json has a "finetune" section.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dfer.encoders import rebuild_encoder
from dfer.finetune.data import MediaClips, check_media
from dfer.finetune.model import EndToEnd, quiet_transformers
from dfer.heads.fusion import STREAMS
from dfer.store import fingerprint as fp
from dfer.store.reader import CacheReader, open_cache
from dfer.train import checkpoint
from dfer.train.config import TrainConfig
from dfer.train.loop import loader_for, predict
from dfer.train.metrics import classification_metrics
from dfer.train.splits import usable_clips

MEDIA_FIELDS = ("frames", "sample_rate", "crop_margin")  # what shapes the crops and waveforms


def is_end_to_end(run: Path) -> bool:
    """A run folder written by `dfer finetune` (its config has a "finetune" section)."""
    path = Path(run) / "config.json"
    return path.exists() and "finetune" in json.loads(path.read_text())


def load_end_to_end(run: Path, device: str = "cpu") -> tuple[EndToEnd, dict]:
    """The best heads of RUN2 behind the encoders saved with them, in eval mode."""
    run = Path(run)
    heads, config = checkpoint.load_run(run, "best", device)
    if "finetune" not in config:
        raise ValueError(f"{run}: not a fine-tuned run (its config has no finetune section)")
    streams = STREAMS[config["heads"]["modalities"]]
    recorded = config["fingerprint"]
    with quiet_transformers():
        vision = rebuild_encoder("vision", recorded["vision"], device, run / "vision") if "video" in streams else None
    audio = rebuild_encoder("audio", recorded["audio"], device, run / "audio") if "audio" in streams else None
    model = EndToEnd(heads, vision, audio, config["finetune"]["precision"])
    return model.to(device).eval(), config


def evaluate_end_to_end(run: Path, store: Path, device: str = "cpu", batch_size: int = 8) -> dict:
    """Metrics (the keys of `dfer.train.evaluate.evaluate`) of RUN2 on `store`'s media."""
    model, config = load_end_to_end(run, device)
    reader = open_cache(store)
    modalities = config["heads"]["modalities"]
    check_media(reader, modalities)
    fp.check(reader.path, {k: config["fingerprint"][k] for k in MEDIA_FIELDS},
             {k: reader.fingerprint[k] for k in MEDIA_FIELDS})
    if reader.classes != config["classes"]:
        raise ValueError(f"{store}: classes {reader.classes} differ from the run's {config['classes']}")
    if model.vision is not None and reader.layout["image_size"] != model.vision.image_size:
        raise ValueError(f"{store}: {reader.layout['image_size']} px face crops, the run's vision encoder takes "
                         f"{model.vision.image_size} px")
    indices, subset = clips_to_score(reader, config, modalities)
    cfg = TrainConfig(batch_size=batch_size, modalities=modalities, fusion=config["heads"]["fusion"], device=device)
    loader = loader_for(MediaClips(reader, indices, modalities), cfg)
    labels, probs = predict(model, loader, torch.device(device))
    metrics = classification_metrics(labels, probs, reader.classes)
    metrics.update(run=str(run), store=str(store), subset=subset)
    return metrics


def clips_to_score(reader: CacheReader, config: dict, modalities: str) -> tuple[list[int], str]:
    """The run's test clips when `reader` is the store it trained on, else every usable clip; and a description."""
    usable = np.flatnonzero(usable_clips(reader, modalities))
    own_store = Path(config["store"]) == Path(reader.path).resolve()
    if own_store and config["split"]["test"]:
        clip_ids = reader.read_all("clip_id").astype(str)
        wanted = set(config["split"]["test"])
        indices = [int(i) for i in usable if clip_ids[i] in wanted]
        subset = f"the run's test clips ({config['split']['name']})"
    else:
        seen = " (this is the run's own cache: its training clips are included)" if own_store else ""
        indices, subset = [int(i) for i in usable], f"every usable clip{seen}"
    if not indices:
        raise ValueError(f"{reader.path}: no usable clips for a {modalities} model")
    return indices, subset
