"""The `dfer` command line: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Audio-visual dynamic facial expression recognition.")
console = Console()
errors = Console(stderr=True)


@app.command()
def extract(
    dataset: str = typer.Argument(..., help="ravdess, cremad or manifest"),
    root: Path = typer.Argument(..., help="the dataset's folder (for manifest: the CSV file)"),
    out: Path = typer.Option(..., "--out", help="the Zarr store to create or resume"),
    preset: str = typer.Option("tiny", help="encoder preset: tiny, small, base, large, base-random, large-random"),
    vision: Optional[str] = typer.Option(None, help="vision encoder: hub id, local folder or random:<arch>"),
    audio: Optional[str] = typer.Option(None, help="audio encoder: hub id, .nemo file, folder or random:<arch>"),
    frames: int = typer.Option(16, help="frames sampled uniformly per clip"),
    batch: int = typer.Option(8, help="clips per encoder call"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    limit: Optional[int] = typer.Option(None, help="only the first N clips of the sorted listing"),
    keep_media: bool = typer.Option(True, "--keep-media/--no-keep-media", help="store face crops and waveforms for fine-tuning"),
    workers: int = typer.Option(0, help="decoding worker processes"),
    seed: int = typer.Option(0, help="seed of random-init encoders (part of the fingerprint)"),
    max_seconds: float = typer.Option(16.0, help="longer clips are analysed over their central window"),
    classes: Optional[str] = typer.Option(None, help="manifest only: comma-separated class order"),
) -> None:
    """Decode, crop faces and run the frozen encoders once per clip, into a resumable Zarr cache."""
    from dfer.extract.pipeline import ExtractConfig, run

    options = {"classes": classes.split(",")} if classes else {}
    summary = run(ExtractConfig(
        dataset=dataset, root=root, out=out, preset=preset, vision=vision, audio=audio, frames=frames, batch=batch,
        device=device, limit=limit, keep_media=keep_media, workers=workers, seed=seed, max_seconds=max_seconds,
        dataset_options=options,
    ))
    if not summary.is_main:  # under torchrun only rank 0 reports
        raise typer.Exit(1 if summary.failures else 0)
    for problem in summary.problems:
        errors.print(f"[yellow]skipped file[/] {problem}")
    console.print(f"{summary.store}: {summary.done}/{summary.clips} clips done, {len(summary.failures)} failed")
    for clip_id, error in summary.failures:
        errors.print(f"[red]failed[/] {clip_id}: {error}")
    raise typer.Exit(1 if summary.failures else 0)


@app.command()
def info(
    store: Path = typer.Argument(..., help="a dfer Zarr store"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Summarise a cache: clips, failures, classes, face detection rate, fingerprint, arrays, size."""
    from dfer.store.info import store_info

    facts = store_info(store)
    if as_json:
        print(json.dumps(facts))
        return
    table = Table(title=f"{facts['path']} ({facts['dataset']})", show_header=False)
    ratio = facts["face_found_ratio"]
    for key, value in [
        ("clips", facts["clips"]), ("done", facts["done"]), ("failed", facts["failed"]),
        ("with video / audio", f"{facts['clips_with_video']} / {facts['clips_with_audio']}"),
        ("face found", "-" if ratio is None else f"{ratio:.1%} of frames"),
        ("classes", ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())),
        ("protocol", json.dumps(facts["protocol"])),
        ("vision", facts["fingerprint"]["vision"]["id"]), ("audio", facts["fingerprint"]["audio"]["id"]),
        ("size on disk", f"{facts['bytes_on_disk'] / 2**20:.1f} MiB"),
    ]:
        table.add_row(key, str(value))
    for name, spec in facts["arrays"].items():
        table.add_row(name, f"{tuple(spec['shape'])} {spec['dtype']}")
    console.print(table)
    for failure in facts["failures"]:
        console.print(f"[red]failed[/] {failure['clip_id']}: {failure['error']}")
