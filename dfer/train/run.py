"""`dfer train`: every split of the protocol, one run folder each, the mean ± std the papers report, and the same
figures of the baselines beside them (`dfer.train.compare`: the zero-shot classifier of a vision encoder that has
one, and the linear probe): a heads figure is read against what it improves on.

The splits, run folders and summary files follow `dfer.train.protocol`; under `torchrun` each rank trains its share
of the splits (`--fold all`: fold k on rank k % world) and rank 0 alone prints. With `members` K > 1 each split trains
K heads, from seeds seed .. seed + K - 1, into RUN/member0 .. RUN/member{K-1} (each a run of its own), and RUN holds
them together (`dfer.heads.members`): what it tests, loads and ships.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from rich.console import Console

from dfer import distributed
from dfer.adapt.batches import speaker_split
from dfer.adapt.settings import PROTOCOLS
from dfer.heads import DferHeads, HeadConfig, HeadMembers
from dfer.inference.score import predict
from dfer.runs.card import write_card
from dfer.runs.files import load_weights, save_weights, write_json
from dfer.runs.load import load_run
from dfer.store.reader import CacheReader
from dfer.train.compare import baselines_beside
from dfer.train.config import TrainConfig, head_config
from dfer.train.data import ResidentClips, clip_sets, token_statistics
from dfer.train.loop import fit, loader_for
from dfer.train.progress import TrainProgress
from dfer.train.protocol import ProtocolResult, run_config, run_protocol, write_test_results
from dfer.train.splits import Split
from dfer.train.views import ViewedClips, open_views

console = Console()


def train(store: Path, out: Path, cfg: TrainConfig, resume: bool = False, show: bool = True) -> ProtocolResult:
    """Train the heads on every split of `cfg.fold` into `out`; when every split was tested, the baselines too (into
    OUT/zeroshot and OUT/probe, unless they are there already for the same splits), printed beside the heads."""
    show = show and distributed.ranks().is_main
    result = run_protocol(store, out, cfg, cfg.fusion,
                          lambda reader, split, run: _train_split(reader, split, run, cfg, resume, show), show)
    if all(result.runs.values()):
        baselines_beside(store, Path(out), cfg, result, show)
    if distributed.ranks().is_main:  # after the baselines: the card shows their rows
        write_card(Path(out))
    return result


def _train_split(reader: CacheReader, split: Split, run: Path, cfg: TrainConfig, resume: bool, show: bool) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    classes = reader.classes
    heads_config = head_config(reader.streams, classes, cfg)
    config = run_config(reader, split, model="heads", train=cfg.to_dict(), heads=heads_config.to_dict())
    if resume and (run / "config.json").exists():
        previous = json.loads((run / "config.json").read_text())
        same_heads = HeadConfig.from_dict(previous["heads"]) == heads_config  # a config.json of any format
        same_members = previous.get("train", {}).get("members", 1) == cfg.members
        if previous["split"] != config["split"] or not same_heads or not same_members:
            raise ValueError(f"{run}: --resume needs the same store, split, heads and members as the run it continues")
    write_json(run / "config.json", config)
    if show:
        console.print(f"[bold]{run}[/]: {len(split.train)} train, {len(split.val)} val, {len(split.test)} test clips")
        for note in split.notes:
            console.print(f"  {note}")

    streams = tuple(stream.name for stream in heads_config.streams)
    statistics, views = None, open_views(reader, cfg.views)
    view_statistics = [None] * len(views)
    if cfg.adapt == "speaker":  # the training clips' exact statistics, and each part's speaker groups (dfer.adapt)
        parts = {part: getattr(split, part) for part in ("train", "val", "test")}
        exact, statistics = speaker_split(reader, streams, parts, cfg.adapt_shrink, cfg.adapt_lone)
        view_statistics = [speaker_split(view, streams, {"train": split.train}, cfg.adapt_shrink, cfg.adapt_lone,
                                         exact)[1]["train"] for view in views]
        prior = {stream: tuple(torch.from_numpy(x).float() for x in values) for stream, values in exact.items()}
    else:
        prior = token_statistics(reader, split.train, cfg.modalities)
    datasets = clip_sets(reader, split, cfg.modalities, cfg.in_memory, cfg.device, statistics)
    if views:
        datasets["train"] = ViewedClips([datasets["train"], *(
            ResidentClips(view, split.train, cfg.modalities, cfg.device, batches)
            for view, batches in zip(views, view_statistics))])
    steps = cfg.epochs * -(-len(split.train) // cfg.batch_size)
    folders = [run] if cfg.members == 1 else [run / f"member{k}" for k in range(cfg.members)]
    best_epochs = []
    for k, folder in enumerate(folders):
        member = dataclasses.replace(cfg, seed=cfg.seed + k, members=1)  # trains as a run of that seed would
        if folder != run:  # a run of its own, beside the others: it loads, predicts and fine-tunes alone
            folder.mkdir(exist_ok=True)
            write_json(folder / "config.json", {**config, "train": member.to_dict()})
        torch.manual_seed(member.seed)  # the same seed builds the same initial heads
        model = DferHeads(heads_config)
        for stream, (mean, std) in prior.items():
            model.set_input_statistics(stream, mean, std)
        name = split.name if folder == run else f"{split.name} {folder.name}"
        with TrainProgress(name, steps, enabled=show) as progress:
            state = fit(model, datasets["train"], datasets["val"], member, folder, classes, resume, progress)
        best_epochs.append(state["best_epoch"])
    if cfg.members > 1:
        gather_members(run, folders, heads_config)
    if not split.test:
        return {}
    model, _ = load_run(run, "best", cfg.device)
    labels, probs = predict(model, loader_for(datasets["test"], cfg), torch.device(cfg.device))
    return write_test_results(run, reader, split.name, split.test, labels, probs,
                              f"{reader.attrs['dataset']} {split.name}", show,
                              best_epoch=best_epochs[0] if cfg.members == 1 else best_epochs,
                              protocol=PROTOCOLS[cfg.adapt])


def gather_members(run: Path, folders: list[Path], heads_config: HeadConfig) -> None:
    """RUN/best.safetensors and last.safetensors: the members' weights (each member folder's) as one `HeadMembers`,
    so that RUN loads, predicts and ships as a single run."""
    members = HeadMembers(heads_config, len(folders))
    for kind in ("best", "last"):
        for member, folder in zip(members.members, folders):
            member.load_state_dict(load_weights(folder / f"{kind}.safetensors", "cpu"))
        save_weights(members, run / f"{kind}.safetensors")
