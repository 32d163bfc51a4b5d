"""`dfer explain`: why a run predicts what it does for one file, as a figure and a JSON record."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from dfer import api, checks
from dfer.cli.output import console, errors


def explain(
    file: Path = typer.Argument(..., help="a video file"),
    legacy_file: Optional[Path] = typer.Argument(None, hidden=True),  # the older `explain RUN FILE`
    model: Optional[str] = typer.Option(None, "--model", "-m", show_default=False,
                                        help="the run that explains FILE: a run folder (e.g. runs/demo) or a bundled "
                                        "model (dfer models)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for FILE's <stem>.explain.png and <stem>.explain.json"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
) -> None:
    """Why a run predicts what it does for FILE: ROI attention on the face crops, each modality alone, each step."""
    if legacy_file is not None:
        if model is not None:
            raise typer.BadParameter("give one FILE with --model", param_hint="FILE")
        errors.print("[yellow]note:[/] `dfer explain RUN FILE` is deprecated; use `dfer explain FILE --model RUN`")
        model, file = str(file), legacy_file
    if model is None:
        raise typer.BadParameter("which run explains FILE? e.g. --model runs/demo", param_hint="--model")
    checks.media_inputs([file])
    run = checks.run_folder(model)
    record = api.load(run, device).explain(file, out)
    if "error" in record:
        errors.print(f"[red]failed[/] {file}: {escape(record['error'])}")
        raise typer.Exit(1)
    facts = record["explain"]
    answers = ", ".join(f"{key} {facts[key][record['top1']]:.0%}" for key in facts["available"])
    console.print(f"{file}: {record['top1']} ({answers})", soft_wrap=True)
    for note in facts["notes"]:
        console.print(f"note: {note}", soft_wrap=True)
    actions = facts["actions"]
    console.print(f"actions: {escape(actions['words'] or actions['unavailable'])}", soft_wrap=True)
    console.print(f"wrote {record['explain_files']['png']} and {record['explain_files']['json']}", soft_wrap=True)
