"""The heads' test figures beside the linear probe's on the same splits: `dfer train` prints both, one above the
other, and puts both rows in RUN/results.md, so no heads figure is read without its baseline.

The probe lives in RUN/probe, laid out as RUN is (RUN/probe/foldK/ under a k-fold protocol). It is fitted again only
when it is missing or was fitted on other splits than the heads' runs: other clips (another fold, modalities, seed or
val_fraction), another store or another fingerprint. It takes seconds next to the heads' minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from dfer import distributed
from dfer.store.reader import open_cache
from dfer.train.config import TrainConfig
from dfer.train.probe import ProbeConfig, probe, probe_config_for
from dfer.train.protocol import ProtocolResult, reported_metrics
from dfer.train.report import comparison_table

console = Console()
SAME_DATA = ("store", "fingerprint")  # the config.json entries a probe run must share with the heads' run


def probe_beside(store: Path, out: Path, cfg: TrainConfig, heads: ProtocolResult, show: bool = True) -> dict:
    """Make sure OUT/probe holds the probe of `heads` (a `dfer.train.run.train` result in OUT whose every split
    was tested), print both models' figures and, for a cross-validation, append the probe's row to OUT/results.md.
    Returns the probe's figures: its fold summary, or its one run's test metrics. Under torchrun every rank
    fits its share of the probe's splits (`run_protocol`); rank 0 alone decides whether to and writes."""
    probe_out = out / "probe"
    folders = {name: probe_out / folder.relative_to(out) for name, folder in heads.folders.items()}
    nested = heads.summary is not None
    settings = probe_config_for(cfg)
    current = all(_same_split(heads.folders[name], folder, settings) for name, folder in folders.items()) and (
        not nested or _fold_names(probe_out) == set(heads.runs))
    current = distributed.broadcast(current)  # rank 0's decision on every rank: fitting the probe is collective
    if not current:
        probe(store, probe_out, settings, show=False)
    if nested:
        figures = json.loads((probe_out / "summary.json").read_text())["summary"]
        probe_row = (probe_out / "results.md").read_text().splitlines()[-1]  # the row `dfer probe` wrote
        if distributed.ranks().is_main:
            with open(out / "results.md", "a") as file:
                file.write(probe_row + "\n")
    else:
        (folder,) = folders.values()
        figures = json.loads((folder / "results.json").read_text())["test"]
    if show:
        reader = open_cache(store)
        mine = heads.summary if nested else next(iter(heads.runs.values()))
        which = f"{len(heads.runs)} folds" if nested else next(iter(heads.runs))
        title = f"{reader.attrs['dataset']} {cfg.modalities} test (%), {which}"
        console.print(comparison_table({f"heads ({cfg.fusion})": mine, "linear probe": figures},
                                       reported_metrics(reader), title))
        console.print(f"linear probe {'up to date' if current else 'fitted now'}: {probe_out}")
    return figures


def _same_split(heads_run: Path, probe_run: Path, settings: ProbeConfig) -> bool:
    """The probe run was made with `settings` on the heads' data, and fitted on the heads' clips."""
    if not (probe_run / "results.json").exists():
        return False
    mine, theirs = (json.loads((run / "config.json").read_text()) for run in (heads_run, probe_run))
    return (theirs.get("model") == "probe" and theirs["probe"] == settings.to_dict()
            and all(mine[key] == theirs[key] for key in SAME_DATA)
            and _fitted_on(mine["split"]) == _fitted_on(theirs["split"]))


def _fitted_on(split: dict) -> tuple[set[str], set[str]]:
    """(the clips a final model was fitted on, its test clips): the probe refits on training + validation, so a
    probe that picked C on held-out speakers matches heads that trained on all of them (val_fraction 0)."""
    return set(split["train"]) | set(split["val"]), set(split["test"])


def _fold_names(probe_out: Path) -> set[str]:
    summary = probe_out / "summary.json"
    return set(json.loads(summary.read_text())["folds"]) if summary.exists() else set()
