"""`dfer evaluate`: score runs on a cache (or a dataset extracted with their encoders first), print or write the
metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dfer import api, checks
from dfer.adapt.settings import TRAIN_MODES
from dfer.cli.help import one_of
from dfer.cli.output import console


def evaluate(
    runs: list[Path] = typer.Argument(..., metavar="RUN", help="run folders (config.json + best.safetensors) or "
                                      "bundled models; several are scored on the same clips, side by side"),
    store: Optional[Path] = typer.Option(None, help="a cache made with the runs' encoders"),
    dataset: Optional[str] = typer.Option(None, help="with --root: extract this dataset with the run's encoders first"),
    root: Optional[Path] = typer.Option(None, help="with --dataset: the dataset's folder (for manifest: the CSV)"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default="print only",
                                       help="write metrics.json, predictions.csv (one row per clip) and the confusion, "
                                       "recall and reliability PNGs into this folder (several runs: OUT/<run name>)"),
    adapt: str = typer.Option("none", help=f"{one_of(TRAIN_MODES)}; speaker: standardise each speaker's "
                              "clips with their own statistics (unlabelled; needs the dataset's speaker ids)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (with several runs: run -> metrics)"),
) -> None:
    """Score runs' best checkpoints: WAR, UAR, F1, ECE, per-class figures and the confusion matrix.

    Another corpus's store is scored on the emotions both name, the run's probabilities renormalised over them."""
    if (store is None) == (dataset is None or root is None):
        raise typer.BadParameter("give either --store STORE or --dataset NAME --root DIR", param_hint="--store")
    for run in runs:
        checks.run_folder(run)
    if store is not None:
        checks.cache(store)
    else:
        from dfer.data import check_dataset

        check_dataset(dataset, root)
    from dfer.runs.report import comparison_table, metrics_table

    result = api.evaluate(runs, store=store, dataset=dataset, root=root, device=device, out=out, adapt=adapt)
    if as_json:
        print(json.dumps(result))
        return
    several = len(runs) > 1
    scored = result if several else {str(runs[0]): result}
    for run, metrics in scored.items():
        console.print(f"{run} on {metrics['store']}: {metrics['subset']}; {metrics['protocol']}")
        if not several:
            console.print(metrics_table(metrics, metrics["display_names"]))
    if several:
        store = next(iter(scored.values()))["store"]
        console.print(comparison_table(scored, ["WAR", "UAR", "macro_f1"], f"on {store} (%)"))
    if out is not None:
        console.print(f"per-clip predictions and plots in {out}")
