"""`dfer predict`: parse, run the Predictor over the files, print a table or JSON lines. Registered in `dfer.cli`."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def predict(
    paths: list[Path] = typer.Argument(..., help="video files, or folders searched recursively for video files"),
    model: Path = typer.Option(..., "--model", help="a run folder (config.json + best.safetensors), e.g. runs/demo"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per file (errors too), as each finishes"),
    top: int = typer.Option(3, "--top", min=1, help="emotions shown per file in the table"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    explain: Optional[Path] = typer.Option(None, "--explain", help="also explain each prediction: <stem>.explain.png "
                                           "and .json into this folder; JSON lines gain `explain`"),
) -> None:
    """Emotion probabilities for video files through a run's whole pipeline; exit code 1 if any file failed."""
    from dfer.predict.predictor import Predictor, predict_paths, top_k

    predictor = Predictor(model, device)
    for warning in predictor.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    failed = 0
    table = Table(title=f"{model} ({predictor.modalities})")
    table.add_column("file", overflow="fold")
    for rank in range(1, min(top, len(predictor.classes)) + 1):
        table.add_column(f"#{rank}", justify="right")
    table.add_column("face found", justify="right")
    score = None
    if explain is not None:
        from dfer.predict.explain import explain_to

        score = partial(explain_to, predictor, out=explain)
    for record in predict_paths(predictor, paths, score):
        failed += "error" in record
        if as_json:
            print(json.dumps(record), flush=True)
        elif "error" in record:
            errors.print(f"[red]failed[/] {record['path']}: {record['error']}")
        else:
            ratio = record["face_found_ratio"]
            table.add_row(record["path"], *(f"{label} {prob:.0%}" for label, prob in top_k(record, top)),
                          "-" if ratio is None else f"{ratio:.0%}")
    if not as_json and table.row_count:
        console.print(table)
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":  # `python -m dfer.predict.command FILE --model RUN`, the same as `dfer predict`
    typer.run(predict)
