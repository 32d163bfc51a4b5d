"""A fine-tuned run (RUN2) as a model of a store's media: its own encoders (RUN2/vision, RUN2/audio) and heads.

The cached tokens of a store were made by the encoders *before* fine-tuning, so they are the wrong input for
RUN2's heads; the face crops and waveforms are the right one. The store must hold media (`--keep-media`) made
with the same frames, sample rate and crop margin as the run's own store; the encoders it names do not
matter. `dfer.evaluation.evaluate.evaluate_run` (`dfer evaluate RUN2 --store STORE`) scores RUN2 through
`end_to_end_for` when RUN2/config.json has a "finetune" section, on the clips it scores any run on.
"""

from __future__ import annotations

from pathlib import Path

from dfer.finetune.data import check_media
from dfer.finetune.model import EndToEnd, load_end_to_end
from dfer.store import fingerprint as fp
from dfer.store.reader import CacheReader

MEDIA_FIELDS = ("frames", "sample_rate", "crop_margin")  # what shapes the crops and waveforms


def end_to_end_for(run: Path, reader: CacheReader, device: str = "cpu") -> tuple[EndToEnd, dict]:
    """RUN2's model (`load_end_to_end`), once `reader`'s media are known to be what it takes: kept for the streams
    it reads, made with the run's frames, sample rate and crop margin, crops the size its vision encoder takes."""
    model, config = load_end_to_end(run, device)
    check_media(reader, config["heads"]["modalities"])
    fp.check(reader.path, config["fingerprint"], reader.fingerprint, MEDIA_FIELDS)
    if model.vision is not None and reader.layout["image_size"] != model.vision.image_size:
        raise ValueError(f"{reader.path}: {reader.layout['image_size']} px face crops, the run's vision encoder "
                         f"takes {model.vision.image_size} px")
    return model, config
