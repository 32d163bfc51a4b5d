"""Stage 1, the cache: `dfer extract`, `dfer info`, `dfer export-h5`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dfer import api, checks
from dfer.cli.help import RECIPE, one_of
from dfer.cli.output import console, errors
from dfer.encoders.presets import DEFAULT_PRESET, PRESETS


def extract(
    dataset: str = typer.Argument(..., help="ravdess, cremad, dfew, mafw, meld or manifest"),
    root: Path = typer.Argument(..., help="the dataset's folder (for manifest: the CSV file)"),
    out: Path = typer.Option(..., "--out", "-o", help="the Zarr store to create or resume"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of extraction settings (the options below override it)"),
    preset: Optional[str] = typer.Option(None, show_default=RECIPE.format(DEFAULT_PRESET),
                                         help=f"encoder preset: {one_of(PRESETS)}"),
    vision: Optional[str] = typer.Option(None, show_default="the preset's",
                                         help="vision encoder spec: random:<arch>, hf:<id or path>, faceapi, a SigLIP2 "
                                         "hub id or a local folder (offline: a folder you downloaded)"),
    audio: Optional[str] = typer.Option(None, show_default="the preset's",
                                        help="audio encoder spec: ge2e, mel, acoustic (pitch, loudness and spectral "
                                        "shape, librosa), egemaps (openSMILE's prosody descriptors; its licence is "
                                        "for research, not commercial, use), random:<arch>, hf:<id or path>[,layer=N], "
                                        "a NeMo hub id, a .nemo file or a folder"),
    stream: Optional[list[str]] = typer.Option(
        None, "--stream", show_default="the preset's video and audio",
        help="NAME=SPEC, repeatable: the store's streams, any number, in place of the preset's (then no --vision / "
        "--audio). Named families say their input (faceapi, ge2e, acoustic, egemaps; mediapipe, face actions on whole "
        "frames, needs dfer[actions]); other specs start with it: face:SPEC or waveform:SPEC. E.g. --stream "
        "face=faceapi --stream actions=mediapipe --stream speech=ge2e --stream prosody=egemaps"),
    frames: Optional[int] = typer.Option(None, show_default=RECIPE.format(16),
                                         help="frames sampled uniformly per clip"),
    batch: Optional[int] = typer.Option(None, show_default=RECIPE.format(8), help="clips per encoder call"),
    device: Optional[str] = typer.Option(None, show_default=RECIPE.format("cpu"), help="cpu or cuda"),
    limit: Optional[int] = typer.Option(None, show_default="every clip",
                                        help="only the first N clips of the sorted listing"),
    keep_media: Optional[bool] = typer.Option(None, "--keep-media/--no-keep-media",
                                              show_default=RECIPE.format("--keep-media"),
                                              help="store face crops and waveforms for fine-tuning"),
    workers: Optional[int] = typer.Option(None, show_default=RECIPE.format(0), help="decoding worker processes"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="seed of random-init encoders, part of the fingerprint"),
    max_seconds: Optional[float] = typer.Option(None, show_default=RECIPE.format(16),
                                                help="longer clips are analysed over their central window of this "
                                                "many seconds"),
    face_track: Optional[str] = typer.Option(None, "--face-track", show_default=RECIPE.format("largest"),
                                             help="largest, or speaker: the face whose mouth moves while the audio "
                                             "is voiced (MELD's recipe)"),
    token_dtype: Optional[str] = typer.Option(None, "--token-dtype", show_default=RECIPE.format("float16"),
                                              help="float16, or int8: per-dimension codes, a quarter of float32 "
                                              "(cache/README.md)"),
    classes: Optional[str] = typer.Option(None, show_default="in order of appearance",
                                          help="manifest only: comma-separated class order"),
    face_frames: Optional[str] = typer.Option(None, "--face-frames", show_default=RECIPE.format("original"),
                                              help="dfew only: original clips through our face pipeline, or "
                                              "precropped: the release's clip_224x224"),
) -> None:
    """Decode, crop faces and run the frozen encoders once per clip, into a resumable Zarr cache."""
    from dfer.data import check_dataset
    from dfer.encoders.presets import resolve_preset

    check_dataset(dataset, root)
    checks.existing_file(recipe, "recipe")
    if preset is not None:
        resolve_preset(preset)
    summary = api.extract(dataset, root, out, recipe=recipe, preset=preset, vision=vision, audio=audio,
                          frames=frames, batch=batch, device=device, limit=limit, keep_media=keep_media,
                          workers=workers, seed=seed, max_seconds=max_seconds, face_track=face_track,
                          token_dtype=token_dtype, classes=classes, face_frames=face_frames, streams=stream or None)
    if not summary.is_main:  # under torchrun only rank 0 reports
        raise typer.Exit(1 if summary.failures else 0)
    for problem in summary.problems:
        errors.print(f"[yellow]skipped file[/] {problem}", soft_wrap=True)  # paths stay whole
    console.print(f"{summary.store}: {summary.done}/{summary.clips} clips done, {len(summary.failures)} failed",
                  soft_wrap=True)
    for clip_id, error in summary.failures:
        errors.print(f"[red]failed[/] {clip_id}: {error}", soft_wrap=True)
    raise typer.Exit(1 if summary.failures else 0)


def info(
    store: Path = typer.Argument(..., help="a dfer Zarr store"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Summarise a cache: clips, failures, classes, face detection rate, fingerprint, arrays, size."""
    checks.cache(store)
    from rich.table import Table

    from dfer.store.fingerprint import Fingerprint
    from dfer.store.info import store_info
    from dfer.streams import INPUTS

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
        ("face track", "-" if facts["face_tracks"] is None else "{choice}: {clips_with_several} clips with several "
                       "faces, {clips_not_largest} cropped another than the largest".format(**facts["face_tracks"])),
        ("classes", ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())),
        ("protocol", json.dumps(facts["protocol"])),
        *((f"stream {name}", f"{entry['id']} ({INPUTS[kind]})") for name, (kind, entry) in
          Fingerprint.from_dict(facts["fingerprint"]).encoders.items()),
        ("tokens", facts["token_dtype"]),
        ("size on disk", f"{facts['bytes_on_disk'] / 2**20:.1f} MiB ({facts['bytes_per_clip'] / 2**20:.2f} MiB a clip "
                         "without media)"),
        ("files", f"{facts['files_on_disk']} ({facts['shard_clips']} clips a shard)"),
    ]:
        table.add_row(key, str(value))
    for name, spec in facts["arrays"].items():
        table.add_row(name, f"{tuple(spec['shape'])} {spec['dtype']}")
    console.print(table)
    for failure in facts["failures"]:
        console.print(f"[red]failed[/] {failure['clip_id']}: {failure['error']}", soft_wrap=True)


def export_h5(
    store: Path = typer.Argument(..., help="a dfer Zarr store"),
    legacy_out: Optional[Path] = typer.Argument(None, hidden=True),  # the older `export-h5 STORE OUT`
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default="STORE.h5", help="the HDF5 file to write"),
) -> None:
    """Copy a Zarr cache into one HDF5 file (same arrays and attributes); dfer train reads either."""
    checks.cache(store)
    if legacy_out is not None:
        if out is not None:
            raise typer.BadParameter("give the output once, as --out", param_hint="--out")
        errors.print("[yellow]note:[/] `dfer export-h5 STORE OUT` is deprecated; use `dfer export-h5 STORE --out OUT`")
        out = legacy_out
    from dfer.store.h5 import export_h5 as export

    console.print(f"wrote {export(store, out or Path(store).with_suffix('.h5'))}")
