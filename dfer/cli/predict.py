"""`dfer predict`: parse, run the Predictor over the files, print a table or JSON lines."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import typer

from dfer import checks
from dfer.adapt.settings import PREDICT_MODES, TIMELINE_ADAPT
from dfer.cli.output import console, errors
from dfer.models import DEFAULT_MODELS


def predict(
    paths: list[Path] = typer.Argument(..., metavar="FILE", help="video or audio files, photos (each its own "
                                       "answer), or folders searched recursively for them"),
    model: list[str] | None = typer.Option(None, "--model", "-m", show_default=" + ".join(DEFAULT_MODELS),
                                           help="a run folder (e.g. runs/demo) or a bundled model (dfer models); "
                                           "repeat to fuse several"),
    weights: str | None = typer.Option(None, "--weights", show_default="equal",
                                       help="comma-separated weights of the fused --model runs"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per file (errors too), as each finishes"),
    top: int = typer.Option(3, "--top", min=1, help="emotions shown per file in the table"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    explain: Path | None = typer.Option(None, "--explain", help="also explain each prediction: <stem>.explain.png "
                                        "and .json into this folder (a repeated stem: <stem>-2, ...); JSON lines "
                                        "gain `explain`"),
    timeline: Path | None = typer.Option(None, "--timeline", help="analyse whole files in sliding windows; write "
                                         "DIR/<stem>.csv, .jsonl, .vtt and .png (a repeated stem: <stem>-2, ...)"),
    window: float | None = typer.Option(None, "--window", min=0.1, show_default="the run's training clip length",
                                        help="timeline window in seconds"),
    hop: float | None = typer.Option(None, "--hop", min=0.01, show_default="window / 3",
                                     help="timeline hop in seconds"),
    adapt: str | None = typer.Option(None, "--adapt", show_default="none; a timeline of a run trained with "
                                     "--adapt speaker: file",
                                     help="standardise with the speaker's own statistics: together (every input is "
                                     "one speaker), folder (the files of a folder are one speaker); with --timeline, "
                                     "file (each file's windows so far)"),
    statistics: Path | None = typer.Option(None, "--statistics", help="a speaker's saved statistics "
                                           "(--save-statistics) that every file joins"),
    save_statistics: Path | None = typer.Option(None, "--save-statistics", help="with --adapt together: save the "
                                                "inputs' statistics here, for later --statistics"),
    actions: bool = typer.Option(False, "--actions", help="with --timeline: read the face's actions too (MediaPipe's "
                                 "52 blendshapes and head pose): the strongest per window beside the emotions, and "
                                 "every analysed frame's in DIR/<stem>.actions.csv; needs pip install mediapipe==1.2.2"),
) -> None:
    """Emotion probabilities for video, audio and photo files through a run's whole pipeline, or several runs' fused.

    Exit code 1 if a file failed (the others are still scored), 2 if an input is wrong: a missing file, an empty
    folder, a file that is no video, an unknown model; those are found before any model loads.
    """
    if actions and timeline is None:
        raise typer.BadParameter("reads actions over a whole file's windows; give --timeline DIR", param_hint="--actions")
    if timeline is not None and explain is not None:
        raise typer.BadParameter("explains one clip per file; not with --timeline", param_hint="--explain")
    modes = TIMELINE_ADAPT if timeline is not None else PREDICT_MODES
    if adapt is not None and adapt not in modes:
        raise typer.BadParameter(f"{adapt!r} is not one of {', '.join(modes)}", param_hint="--adapt")
    if explain is not None and (adapt not in (None, "none") or statistics is not None):
        raise typer.BadParameter("explains one clip's unadapted answer; not with --adapt or --statistics",
                                 param_hint="--explain")
    if save_statistics is not None and adapt != "together":
        raise typer.BadParameter("saves one speaker's statistics: give --adapt together", param_hint="--save-statistics")
    checks.existing_file(statistics, "statistics")
    checks.media_inputs(paths)
    checks.model_inputs(model)
    weights = parse_weights(weights)
    reader = face_action_reader() if actions else None
    from dfer.adapt.saved import load_statistics
    from dfer.predict.adapted import predict_adapted
    from dfer.predict.ensemble import load_model
    from dfer.predict.predictor import predict_paths, top_k

    predictor = load_model(model, device, weights)
    for warning in predictor.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    saved = load_statistics(statistics) if statistics is not None else None
    if timeline is not None:
        raise typer.Exit(predict_timelines(predictor, paths, timeline, window, hop, as_json, adapt, saved, reader))
    from rich.table import Table

    failed = 0
    table = Table(title=f"{predictor.run} ({predictor.modalities})")
    table.add_column("file", overflow="fold")
    for rank in range(1, min(top, len(predictor.classes)) + 1):
        table.add_column(f"#{rank}", justify="right")
    table.add_column("face found", justify="right")
    score = None
    if explain is not None:
        if not hasattr(predictor, "heads"):
            raise typer.BadParameter("explains one run's model; give one --model", param_hint="--explain")
        from dfer.predict.explain import explain_to
        from dfer.predict.predictor import OutputStems

        score = partial(explain_to, predictor, out=explain, stems=OutputStems())
    records = (predict_paths(predictor, paths, score) if score is not None else
               predict_adapted(predictor, paths, adapt or "none", saved,
                               None if save_statistics is None else partial(keep_statistics, predictor, save_statistics)))
    for record in records:
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
    if save_statistics is not None and not as_json:
        console.print(f"statistics saved to {save_statistics} (a voice's statistics are close to a voiceprint)")
    raise typer.Exit(1 if failed else 0)


def keep_statistics(predictor, path: Path, moments: dict) -> None:
    """Save a group's moments (`--save-statistics`) with the encoder records that key them."""
    from dfer.adapt.saved import save_statistics

    save_statistics(path, moments, predictor.encoder_records)


def parse_weights(weights: str | None) -> list[float] | None:
    """`--weights 2,1` -> [2.0, 1.0]."""
    try:
        return None if weights is None else [float(w) for w in weights.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{weights!r} is not comma-separated numbers", param_hint="--weights") from None


def face_action_reader():
    """The face-action reader of `--actions`, made before any model loads: without mediapipe, exit 2 with its line."""
    from dfer.encoders.face_actions import FaceActionReader

    try:
        return FaceActionReader()
    except ImportError as error:
        raise typer.BadParameter(str(error), param_hint="--actions") from None


def predict_timelines(predictor, paths: list[Path], folder: Path, window: float | None, hop: float | None,
                      as_json: bool, adapt: str | None = None, saved: dict | None = None, actions=None) -> int:
    """`dfer predict --timeline`: a progress bar per file on stderr, a line (or JSON object) per file; the exit
    code."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from dfer.predict.timeline import timeline_paths, window_and_hop

    window, hop, source = window_and_hop(predictor.config, window, hop)
    if source is not None:
        errors.print(f"window {window:g} s ({source})")
    if window > predictor.max_seconds:
        raise typer.BadParameter(f"{window} s is longer than the {predictor.max_seconds} s this run's encoders take",
                                 param_hint="--window")
    failed = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                  TimeRemainingColumn(), console=errors) as progress:
        tasks: dict[Path, int] = {}

        def advance(path: Path, end: float, total: float) -> None:
            if path not in tasks:
                tasks[path] = progress.add_task(path.name, total=total)
            progress.update(tasks[path], completed=end)

        for record in timeline_paths(predictor, paths, folder, window, hop, advance, adapt, saved, actions):
            failed += "error" in record
            if as_json:
                print(json.dumps(record), flush=True)
            elif "error" in record:
                progress.console.print(f"[red]failed[/] {record['path']}: {record['error']}")
            else:
                progress.console.print(f"{record['path']}: {record['windows']} windows -> {record['files']['csv']}")
                for note in record["notes"]:
                    progress.console.print(f"  [yellow]note:[/] {note}")
    return 1 if failed else 0
