"""`dfer evaluate`: score a run's best model on any store made like its own (or on a raw folder, extracted like it
first), the same way whichever command made the run.

`evaluate_run` picks how the model reads a clip: a fine-tuned run (its config has a "finetune" section) from the
store's face crops and waveforms through its own encoders (`dfer.evaluation.end_to_end`), a heads or linear-probe run
from the cached tokens. Tokens from other encoders, frame counts or crops would be silently wrong inputs, so the
cache's fingerprint must match the run's on every field that shapes the tokens; the error names the ones that
differ. `clips_to_score` chooses the clips for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dfer.streams import read_by
from dfer.adapt.batches import GroupStatistics
from dfer.adapt.settings import PROTOCOLS, TRAIN_MODES, run_adaptation
from dfer.adapt.store_moments import ClipMoments, check_has_speakers, speaker_groups
from dfer.evaluation.end_to_end import end_to_end_for
from dfer.evaluation.shared_classes import shared_classes
from dfer.finetune.data import MediaClips
from dfer.inference.score import predict
from dfer.runs.files import write_json
from dfer.runs.folder import is_end_to_end, resolve_run
from dfer.runs.load import load_run, run_display_names
from dfer.store import fingerprint as fp
from dfer.store.reader import CacheReader, open_cache
from dfer.train.config import TrainConfig
from dfer.train.data import CachedClips
from dfer.train.loop import loader_for
from dfer.train.metrics import classification_metrics
from dfer.train.protocol import scored_clips, write_clip_files
from dfer.train.splits import usable_clips

TOKEN_BATCH, MEDIA_BATCH = 32, 8  # clips per batch: tokens are small; media go through the encoders too


def evaluate_run(run: Path, store: Path, device: str = "cpu", out: Path | None = None, adapt: str = "none") -> dict:
    """The run's best model on `store`: `classification_metrics` (per_class keyed by the classes' words, each with
    its code) plus run, store, subset (which clips, see `clips_to_score`), display_names (the words, in the order
    of per_class and the confusion rows) and protocol (how clips were standardised: `adapt`, see `adaptation`; and
    for a store of other classes, another corpus's, how its emotions were matched: `dfer.evaluation.shared_classes`).
    With `out`, also OUT/metrics.json (these) and the clip files (`dfer.train.protocol.write_clip_files`)."""
    run = resolve_run(run)
    reader = open_cache(store)
    if is_end_to_end(run):
        model, config = end_to_end_for(run, reader, device)
        clips, batch_size = MediaClips, MEDIA_BATCH
    else:
        model, config = load_run(run, "best", device)
        fp.check(reader.path, config["fingerprint"], reader.fingerprint, fp.TOKEN_FIELDS)
        clips, batch_size = CachedClips, TOKEN_BATCH
    names = run_display_names(config)
    shared = (None if reader.classes == config["classes"] else  # another corpus: scored on the emotions both name
              shared_classes(reader.classes, reader.display_names, names, str(store)))
    modalities = ",".join(read_by(config["heads"]))  # the run's own streams, by name
    indices, subset = clips_to_score(reader, config, modalities)
    cfg = TrainConfig(batch_size=batch_size, modalities=modalities, device=device)  # loader settings only
    statistics, protocol = adaptation(reader, indices, model, config, adapt, is_end_to_end(run))
    dataset = CachedClips(reader, indices, modalities, statistics) if statistics else clips(reader, indices, modalities)
    labels, probs = predict(model, loader_for(dataset, cfg), torch.device(device))  # (n,), (n, C_run)
    classes = reader.classes
    if shared is not None:
        indices, labels, probs = shared.scored(indices, labels, probs)
        classes, names, protocol = shared.codes, shared.names, f"{protocol}; {shared.describe()}"
    metrics = classification_metrics(labels, probs, classes, names)
    metrics.update(run=str(run), store=str(store), subset=subset, display_names=names, protocol=protocol)
    if out is not None:
        out = Path(out)
        write_clip_files(out, scored_clips(reader, indices, labels, probs, names), metrics,
                         f"{config['dataset']} {Path(run).name} on {Path(store).name}")
        write_json(out / "metrics.json", metrics)
    return metrics


def adaptation(reader: CacheReader, indices: list[int], model: torch.nn.Module, config: dict, adapt: str,
               end_to_end: bool) -> tuple[GroupStatistics | None, str]:
    """The batches' statistics for `--adapt` (None: the run's own) and the protocol in words. `speaker`: each speaker's
    clips standardised with their own clips' statistics (unlabelled), shrunk toward the run's training set's; a clip
    without a speaker id keeps the training set's."""
    trained = run_adaptation(config)["mode"]
    if adapt not in TRAIN_MODES:
        raise ValueError(f"--adapt must be one of {TRAIN_MODES}, not {adapt!r}")
    if adapt == "none":
        return None, f"{PROTOCOLS['none']} (run trained: {trained})"
    check_has_speakers(reader, indices, str(reader.path))
    prior = model.input_statistics() if not end_to_end else {}
    if not prior:
        return None, f"unadapted: a {config.get('model', 'fine-tuned')} run reads its tokens as they are"
    moments = ClipMoments(reader, tuple(prior), indices)
    statistics = GroupStatistics(moments, speaker_groups(reader, indices), prior, run_adaptation(config)["shrink"])
    return statistics, f"{PROTOCOLS['speaker']} (run trained: {trained})"


def run_test_clips(reader: CacheReader, config: dict, modalities: str) -> list[int]:
    """The usable clips of `reader` among the run's test clips, found by clip id: in the store the run trained on, or
    in another store of the same clips (the recordings through another channel, say)."""
    wanted, clip_ids = set(config["split"]["test"]), reader.read_all("clip_id").astype(str)
    return [int(i) for i in np.flatnonzero(usable_clips(reader, modalities)) if clip_ids[i] in wanted]


def clips_to_score(reader: CacheReader, config: dict, modalities: str) -> tuple[list[int], str]:
    """The usable clips (`usable_clips`) to score a run on, and a description of them: the run's own test clips
    when `reader` is the store it trained on (its other clips would flatter it), else every usable clip."""
    own_store = Path(config["store"]) == Path(reader.path).resolve()
    if own_store and config["split"]["test"]:
        indices = run_test_clips(reader, config, modalities)
        subset = f"the run's test clips ({config['split']['name']})"
    else:
        seen = " (this is the run's own cache: its training clips are included)" if own_store else ""
        indices = [int(i) for i in np.flatnonzero(usable_clips(reader, modalities))]
        subset = f"every usable clip{seen}"
    if not indices:
        raise ValueError(f"{reader.path}: no usable clips for a {modalities} model")
    return indices, subset
