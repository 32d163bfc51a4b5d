"""`dfer finetune`: stage 3, the encoders and the stage-2 heads trained together on the cache's media.

    setup:   the init run's best heads and split; the encoders its store was made with (or --vision/--audio);
             which weights train (--unfreeze), layer-wise learning rates, gradient checkpointing
    train:   stage 2's epoch loop (`dfer.train.loop.fit`) on face crops and waveforms read from the store,
             augmented; the best epoch's heads and encoders are kept
    report:  the test clips scored through the saved folders (results.json, predictions.csv and the PNGs)

RUN2 is a stage-2 run folder (config.json, best/last.safetensors heads, log.csv, results.json) plus the
fine-tuned encoders RUN2/vision and RUN2/audio of the best epoch, which `dfer extract --vision/--audio` accepts
to re-extract a cache. By default the init run's split is reused, so the clips it held out for testing stay
unseen by both stages; `fold` plans another split only if its test clips were not among the init run's training
or validation clips.

Under `torchrun` the ranks train one model with DistributedDataParallel (`dfer.train.loop.fit`): `batch_size` is
each rank's batch, so a step averages batch_size x accumulate x world clips, and only rank 0 writes RUN2 or prints.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from rich.console import Console

from dfer import distributed
from dfer.encoders import rebuild_encoder
from dfer.encoders.base import ImageEncoder, WaveformEncoder
from dfer.finetune.augment import Augment, AugmentConfig
from dfer.finetune.config import FinetuneConfig
from dfer.finetune.data import MediaClips, check_media
from dfer.finetune.model import EndToEnd, load_end_to_end
from dfer.finetune.trainable import count_trainable, enable_checkpointing, layer_groups, make_trainable
from dfer.heads import DferHeads, HeadMembers
from dfer.streams import HISTORIC_STREAMS
from dfer.inference.score import predict
from dfer.runs.card import write_card
from dfer.runs.files import write_json
from dfer.runs.load import load_run
from dfer.store import fingerprint as fp
from dfer.store.reader import CacheReader, open_cache
from dfer.train.loop import fit, loader_for
from dfer.train.progress import TrainProgress
from dfer.train.protocol import reported_metrics, run_config, write_folds_summary, write_test_results
from dfer.train.splits import Split, plan

console = Console()


def finetune(store: Path, init: Path, out: Path, cfg: FinetuneConfig, show: bool = True) -> dict:
    """Fine-tune `init`'s heads and their encoders end to end into `out`; return the test metrics ({} without)."""
    init, out = Path(init), Path(out)
    if out.resolve() == init.resolve():
        raise ValueError(f"--out {out} is the init run: give the fine-tuned run its own folder")
    heads, init_config = load_run(init, "best")
    if isinstance(heads, HeadMembers):
        raise ValueError(f"--init {init}: a run of {len(heads.members)} members answers with their mean; stage 3 "
                         f"fine-tunes one set of heads: start from one member, e.g. {init / 'member0'}")
    if not isinstance(heads, DferHeads):
        raise ValueError(f"--init {init}: a {init_config.get('model')} run has no heads to fine-tune; start from a "
                         "`dfer train` run")
    reader = open_cache(store)
    if reader.fingerprint.get("streams") is not None:
        raise ValueError(f"{store}: stage 3 fine-tunes the two historic streams, `video` and `audio` (extracted with "
                         f"--vision / --audio); this store's streams are {', '.join(s.name for s in reader.streams)}")
    modalities, fusion = init_config["heads"]["modalities"], init_config["heads"]["fusion"]
    check_media(reader, modalities)
    if reader.classes != init_config["classes"]:
        raise ValueError(f"{store}: classes {reader.classes} differ from the init run's {init_config['classes']}")
    fp.check(reader.path, init_config["fingerprint"], reader.fingerprint,
             fp.TOKEN_FIELDS)  # the heads were trained on this store's tokens
    split = _split(reader, init_config, cfg, modalities)
    ranks = distributed.ranks()
    show = show and ranks.is_main
    device = distributed.local_device(cfg.device)
    precision = cfg.precision if device.type == "cuda" else "fp32"

    vision, audio = build_encoders(reader.fingerprint, modalities, cfg, device)
    mode, number = cfg.mode
    for encoder in (vision, audio):
        if encoder is not None:
            make_trainable(encoder, mode, number, cfg.lora_alpha)
            if cfg.grad_checkpointing:
                enable_checkpointing(encoder)
    heads.track_input_statistics(cfg.statistics_momentum)
    model = EndToEnd(heads, vision, audio, precision)
    groups = [{"name": "heads", "params": list(heads.parameters()), "lr": cfg.head_lr}]  # first: logged as `lr`
    for name, encoder in (("vision", vision), ("audio", audio)):
        if encoder is not None:
            groups += layer_groups(encoder, cfg.lr, cfg.layer_decay, cfg.weight_decay, name)

    train_cfg = cfg.train_config(modalities, fusion)
    tuned = {
        **cfg.to_dict(), "precision": precision, "init": str(init.resolve()),
        "start": {"vision": vision.describe() if vision else None, "audio": audio.describe() if audio else None},
        "encoders": {"vision": "vision" if vision else None, "audio": "audio" if audio else None},
        "trainable": {"heads": count_trainable(heads), "vision": count_trainable(vision),
                      "audio": count_trainable(audio)},
    }
    # its "fingerprint" is the media's provenance; the encoders are RUN2/vision, RUN2/audio
    config = run_config(reader, split, model="heads", train=train_cfg.to_dict(), heads=init_config["heads"],
                        finetune=tuned)
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
    if show:
        trainable = config["finetune"]["trainable"]
        console.print(f"[bold]{out}[/]: {len(split.train)} train, {len(split.val)} val, {len(split.test)} test clips; "
                      f"trainable heads {trainable['heads']:,}, vision {trainable['vision']:,}, "
                      f"audio {trainable['audio']:,} ({cfg.unfreeze}, {precision})")
        for note in split.notes:
            console.print(f"  {note}")

    augment = Augment(AugmentConfig(**cfg.augmentation), reader.fingerprint["sample_rate"]) if cfg.augment else None
    train = MediaClips(reader, split.train, modalities, augment)
    val = MediaClips(reader, split.val, modalities)
    steps = cfg.epochs * -(-len(split.train) // (cfg.batch_size * ranks.world))  # rank 0's batches
    with TrainProgress(split.name, steps, enabled=show) as progress:
        state = fit(model, train, val, train_cfg, out, reader.classes, progress=progress, param_groups=groups,
                    accumulate=cfg.accumulate, save=functools.partial(model.save, out), keep_resume=False,
                    ranks=ranks)
    if not split.test or not ranks.is_main:  # rank 0 scores the test clips with the best epoch it saved
        return {}
    del model, vision, audio, encoder, heads, groups  # the best epoch is read back from the saved folders
    best, _ = load_end_to_end(out, cfg.device)
    loader = loader_for(MediaClips(reader, split.test, modalities), train_cfg)
    labels, probs = predict(best, loader, device)
    title = f"{reader.attrs['dataset']} {split.name} fine-tuned"
    return write_test_results(out, reader, split.name, split.test, labels, probs, title, show,
                              best_epoch=state["best_epoch"])


def finetune_folds(store: Path, init: Path, out: Path, cfg: FinetuneConfig, show: bool = True) -> dict:
    """Fine-tune a cross-validation: `init` from `dfer train --fold all` (INIT/foldK/ per fold, INIT/summary.json)
    gives OUT/foldK/ per fold, each from its own fold's heads on its own split, and OUT/summary.json + OUT/results.md
    as stage 2 writes them, so the two stages' figures compare fold for fold; returns the summary. A single run as
    `init` is fine-tuned into OUT (`finetune`), returning its test metrics. Under torchrun every fold trains on all
    ranks in turn, and only rank 0 returns figures (the others {})."""
    init, out = Path(init), Path(out)
    if (init / "config.json").exists() or not (init / "summary.json").exists():
        return _carded(out, finetune(store, init, out, cfg, show))
    if cfg.fold is not None:
        raise ValueError(f"--init {init} is a cross-validation: each fold fine-tunes on its own split; drop --fold")
    folds = json.loads((init / "summary.json").read_text())["folds"]
    runs = {name: finetune(store, init / name, out / name, cfg, show) for name in folds}
    if not distributed.ranks().is_main:
        return {}
    heads = json.loads((init / next(iter(folds)) / "config.json").read_text())["heads"]
    reader = open_cache(store)
    name = f"{reader.attrs['dataset']} {heads['modalities']} {heads['fusion']} fine-tuned"
    settings = {**cfg.to_dict(), "init": str(init.resolve())}
    return _carded(out, write_folds_summary(out, runs, name, reported_metrics(reader), settings, show))


def _carded(out: Path, figures: dict) -> dict:
    """`figures`, once rank 0 has written OUT's model card (`dfer.runs.card`)."""
    if distributed.ranks().is_main:
        write_card(out)
    return figures


def build_encoders(fingerprint: dict, modalities: str, cfg: FinetuneConfig,
                   device: torch.device) -> tuple[ImageEncoder | None, WaveformEncoder | None]:
    """The encoders the store was extracted with (same seed for random ones), or --vision / --audio, checked to give
    the tokens the heads take; only the ones the heads read. In eval mode; `EndToEnd.train()` decides what trains."""
    streams = HISTORIC_STREAMS[modalities]  # stage 3 reads stores of the historic streams alone
    return tuple(rebuild_encoder(kind, fingerprint[kind], device, source=override) if stream in streams else None
                 for stream, kind, override in (("video", "vision", cfg.vision), ("audio", "audio", cfg.audio)))


def _split(reader: CacheReader, init_config: dict, cfg: FinetuneConfig, modalities: str) -> Split:
    """The init run's split (by clip id), or a planned fold whose test clips the init run never trained on."""
    clip_ids = reader.read_all("clip_id").astype(str)
    saved = init_config["split"]
    if cfg.fold is None:
        row = {clip_id: i for i, clip_id in enumerate(clip_ids)}
        missing = [c for part in ("train", "val", "test") for c in saved[part] if c not in row]
        if missing:
            raise ValueError(f"{reader.path} lacks {len(missing)} clips of the init run's split (e.g. {missing[0]}): "
                             "fine-tune on the init run's store, or pass --fold")
        parts = {part: [row[c] for c in saved[part]] for part in ("train", "val", "test")}
        return Split(saved["name"], **parts, notes=[*saved["notes"], "the init run's split"])
    splits, _ = plan(reader, cfg.fold, modalities, cfg.seed, cfg.val_fraction)
    if len(splits) != 1:
        raise ValueError(f"--fold {cfg.fold} gives {len(splits)} splits: fine-tune one fold at a time, from the "
                         "init run of that fold (e.g. --init RUN/fold3 --fold 3)")
    split = splits[0]
    seen = set(saved["train"]) | set(saved["val"])
    leaked = [clip_ids[i] for i in split.test if clip_ids[i] in seen]
    if leaked:
        raise ValueError(f"--fold {cfg.fold}: {len(leaked)} of its test clips trained the init run's heads "
                         f"(e.g. {leaked[0]}); use the init run's own split (leave --fold out)")
    return split
