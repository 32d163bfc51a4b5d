"""The heads' test figures beside their baselines on the same splits: `dfer train` prints all of them, one above the
other, and puts their rows in RUN/results.md, so no heads figure is read without what it improves on.

- zero-shot (when the store's vision encoder has its own classifier, `dfer.train.zeroshot`): what the pretrained
  network knows with nothing trained, in RUN/zeroshot;
- linear probe (`dfer.train.probe`): what a logistic regression on the pooled tokens adds, in RUN/probe;
- the heads: what the sequence model adds.

Each baseline's run lives in RUN/<name>, laid out as RUN is (RUN/<name>/foldK/ under a k-fold protocol). It is made
again only when it is missing or was made on other splits than the heads' runs: other clips (another fold, seed or
val_fraction), another store or another fingerprint. Each takes seconds next to the heads' minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dfer import distributed
from dfer.streams import select
from dfer.runs.report import BASELINES, comparison_table
from dfer.store.reader import open_cache
from dfer.train.config import TrainConfig
from dfer.train.probe import probe, probe_config_for
from dfer.train.protocol import ProtocolResult, reported_metrics
from dfer.train.zeroshot import ZeroShotConfig, has_classifier, zeroshot

console = Console()
SAME_DATA = ("store", "fingerprint")  # the config.json entries a baseline's run must share with the heads' run


@dataclass
class Baseline:
    title: str  # its row's name
    model: str  # its runs' config.json "model", and the folder under RUN
    settings: object  # its config (a dataclass with to_dict), made for the heads' splits
    fit: Callable  # fit(store, out, settings, show=...) -> ProtocolResult


def baselines_for(store: Path, cfg: TrainConfig) -> list[Baseline]:
    """The baselines of heads trained with `cfg` on `store`, on the heads' splits: zero-shot when its vision encoder
    has a classifier of its own and the heads see faces, then the linear probe."""
    probe_settings = probe_config_for(cfg)
    rows = []
    reader = open_cache(store)
    if "video" in [stream.name for stream in select(reader.streams, cfg.modalities)] and has_classifier(reader.fingerprint):
        rows.append(Baseline(BASELINES["zeroshot"], "zeroshot", ZeroShotConfig(
            modalities=cfg.modalities, fold=cfg.fold, seed=cfg.seed, val_fraction=probe_settings.val_fraction),
            zeroshot))
    return rows + [Baseline(BASELINES["probe"], "probe", probe_settings, probe)]


def baselines_beside(store: Path, out: Path, cfg: TrainConfig, heads: ProtocolResult, show: bool = True) -> dict:
    """Make sure OUT/<baseline> holds each baseline of `heads` (a `dfer.train.run.train` result in OUT whose every
    split was tested), print them above the heads' figures and, for a cross-validation, append their rows to
    OUT/results.md. Returns each baseline's figures by title: its fold summary, or its one run's test metrics.
    Under torchrun every rank fits its share of a baseline's splits (`run_protocol`); rank 0 alone decides whether
    to and writes."""
    baselines = baselines_for(store, cfg)
    done = [_beside(store, out, heads, baseline) for baseline in baselines]  # (figures, made now) each
    figures = {baseline.title: figures for baseline, (figures, _) in zip(baselines, done)}
    if show:
        reader = open_cache(store)
        nested = heads.summary is not None
        mine = heads.summary if nested else next(iter(heads.runs.values()))
        which = f"{len(heads.runs)} folds" if nested else next(iter(heads.runs))
        title = f"{reader.attrs['dataset']} {cfg.modalities} test (%), {which}"
        console.print(comparison_table({**figures, f"heads ({cfg.fusion})": mine}, reported_metrics(reader), title))
        for baseline, (_, made) in zip(baselines, done):
            console.print(f"{baseline.title} {'fitted now' if made else 'up to date'}: {out / baseline.model}")
    return figures


def _beside(store: Path, out: Path, heads: ProtocolResult, baseline: Baseline) -> tuple[dict, bool]:
    """(the baseline's figures, whether it was made now) in OUT/<baseline.model>, its row added to OUT/results.md."""
    base_out = out / baseline.model
    folders = {name: base_out / folder.relative_to(out) for name, folder in heads.folders.items()}
    nested = heads.summary is not None
    current = all(_same_split(heads.folders[name], folder, baseline) for name, folder in folders.items()) and (
        not nested or _fold_names(base_out) == set(heads.runs))
    current = distributed.broadcast(current)  # rank 0's decision on every rank: fitting a baseline is collective
    if not current:
        baseline.fit(store, base_out, baseline.settings, show=False)
    if nested:
        figures = json.loads((base_out / "summary.json").read_text())["summary"]
        row = (base_out / "results.md").read_text().splitlines()[-1]  # the row its own command wrote
        if distributed.ranks().is_main:
            with open(out / "results.md", "a") as file:
                file.write(row + "\n")
    else:
        (folder,) = folders.values()
        figures = json.loads((folder / "results.json").read_text())["test"]
    return figures, not current


def _same_split(heads_run: Path, run: Path, baseline: Baseline) -> bool:
    """The baseline's run was made with its settings on the heads' data, and fitted on the heads' clips."""
    if not (run / "results.json").exists():
        return False
    mine, theirs = (json.loads((folder / "config.json").read_text()) for folder in (heads_run, run))
    return (theirs.get("model") == baseline.model and theirs[baseline.model] == baseline.settings.to_dict()
            and all(mine[key] == theirs[key] for key in SAME_DATA)
            and _fitted_on(mine["split"]) == _fitted_on(theirs["split"]))


def _fitted_on(split: dict) -> tuple[set[str], set[str]]:
    """(the clips a final model was fitted on, its test clips): the baselines refit on training + validation, so a
    probe that picked C on held-out speakers matches heads that trained on all of them (val_fraction 0)."""
    return set(split["train"]) | set(split["val"]), set(split["test"])


def _fold_names(base_out: Path) -> set[str]:
    summary = base_out / "summary.json"
    return set(json.loads(summary.read_text())["folds"]) if summary.exists() else set()
