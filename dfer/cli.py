"""The `dfer` command line: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from dfer.finetune.command import finetune
from dfer.predict.command import predict
from dfer.serve.command import serve

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Audio-visual dynamic facial expression recognition.")
console = Console()
errors = Console(stderr=True)


@app.command()
def extract(
    dataset: str = typer.Argument(..., help="ravdess, cremad, dfew, mafw, meld or manifest"),
    root: Path = typer.Argument(..., help="the dataset's folder (for manifest: the CSV file)"),
    out: Path = typer.Option(..., "--out", help="the Zarr store to create or resume"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of extraction settings (flags below override it)"),
    preset: Optional[str] = typer.Option(None, help="encoder preset: tiny (default), lite, small, base, large, base-random, large-random"),
    vision: Optional[str] = typer.Option(None, help="vision encoder spec: random:<arch>, hf:<id or path>, a SigLIP2 "
                                         "hub id or folder"),
    audio: Optional[str] = typer.Option(None, help="audio encoder spec: ge2e, mel, random:<arch>, "
                                        "hf:<id or path>[,layer=N], a NeMo hub id, .nemo file or folder"),
    frames: Optional[int] = typer.Option(None, help="frames sampled uniformly per clip (16)"),
    batch: Optional[int] = typer.Option(None, help="clips per encoder call (8)"),
    device: Optional[str] = typer.Option(None, help="cpu (default) or cuda"),
    limit: Optional[int] = typer.Option(None, help="only the first N clips of the sorted listing"),
    keep_media: Optional[bool] = typer.Option(None, "--keep-media/--no-keep-media", help="store face crops and waveforms for fine-tuning (on)"),
    workers: Optional[int] = typer.Option(None, help="decoding worker processes (0)"),
    seed: Optional[int] = typer.Option(None, help="seed of random-init encoders, part of the fingerprint (0)"),
    max_seconds: Optional[float] = typer.Option(None, help="longer clips are analysed over their central window (16)"),
    face_track: Optional[str] = typer.Option(None, "--face-track", help="largest (default) or speaker: the face "
                                             "whose mouth moves while the audio is voiced (MELD's recipe)"),
    token_dtype: Optional[str] = typer.Option(None, "--token-dtype", help="float16 (default) or int8: per-dimension "
                                              "codes, a quarter of float32 (cache/README.md)"),
    classes: Optional[str] = typer.Option(None, help="manifest only: comma-separated class order"),
    face_frames: Optional[str] = typer.Option(None, "--face-frames", help="dfew only: original (default) clips "
                                              "through our face pipeline, or precropped: the release's clip_224x224"),
) -> None:
    """Decode, crop faces and run the frozen encoders once per clip, into a resumable Zarr cache."""
    from dfer.extract.pipeline import extract_config, run

    options = {"classes": classes.split(",") if classes else None, "frames": face_frames}
    summary = run(extract_config(
        recipe, dataset=dataset, root=root, out=out, preset=preset, vision=vision, audio=audio, frames=frames,
        batch=batch, device=device, limit=limit, keep_media=keep_media, workers=workers, seed=seed,
        max_seconds=max_seconds, face_track=face_track, token_dtype=token_dtype,
        dataset_options={k: v for k, v in options.items() if v is not None} or None,
    ))
    if not summary.is_main:  # under torchrun only rank 0 reports
        raise typer.Exit(1 if summary.failures else 0)
    for problem in summary.problems:
        errors.print(f"[yellow]skipped file[/] {problem}", soft_wrap=True)  # paths stay whole
    console.print(f"{summary.store}: {summary.done}/{summary.clips} clips done, {len(summary.failures)} failed",
                  soft_wrap=True)
    for clip_id, error in summary.failures:
        errors.print(f"[red]failed[/] {clip_id}: {error}", soft_wrap=True)
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
        ("face track", "-" if facts["face_tracks"] is None else "{choice}: {clips_with_several} clips with several "
                       "faces, {clips_not_largest} cropped another than the largest".format(**facts["face_tracks"])),
        ("classes", ", ".join(f"{k} {v}" for k, v in facts["class_counts"].items())),
        ("protocol", json.dumps(facts["protocol"])),
        ("vision", facts["fingerprint"]["vision"]["id"]), ("audio", facts["fingerprint"]["audio"]["id"]),
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


@app.command()
def train(
    store: Path = typer.Argument(..., help="a dfer cache (Zarr store or .h5 export)"),
    out: Path = typer.Option(..., "--out", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of training settings (flags below override it)"),
    fusion: Optional[str] = typer.Option(None, help="liquid, late, concat, gated or xattn"),
    modalities: Optional[str] = typer.Option(None, help="av, audio or video"),
    fold: Optional[str] = typer.Option(None, help="a fold number, all (default), or none (train on every clip)"),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    balance: Optional[str] = typer.Option(None, help="none, sampler or loss"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda"),
    workers: Optional[int] = typer.Option(None, help="DataLoader workers reading the cache"),
    in_memory: Optional[bool] = typer.Option(
        None, "--in-memory/--from-disk",
        help="keep the training and validation clips on --device, as stored (int8 or float16); refused if too big"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run where it stopped"),
) -> None:
    """Train the heads on cached tokens, over the dataset's folds, and report WAR/UAR (mean ± std); under torchrun
    the folds are spread over the ranks."""
    from dfer import distributed
    from dfer.train.config import make_config
    from dfer.train.run import train as run_training

    cfg = make_config(recipe, fusion=fusion, modalities=modalities, fold=fold, epochs=epochs, batch_size=batch_size,
                      lr=lr, seed=seed, balance=balance, device=device, workers=workers, in_memory=in_memory)
    distributed.init()  # gloo: the ranks exchange only their folds' metrics
    try:
        run_training(store, out, cfg, resume=resume)
    finally:
        distributed.shutdown()


@app.command()
def probe(
    store: Path = typer.Argument(..., help="a dfer cache (Zarr store or .h5 export)"),
    out: Path = typer.Option(..., "--out", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of probe settings (flags below override it)"),
    modalities: Optional[str] = typer.Option(None, help="av, audio or video"),
    fold: Optional[str] = typer.Option(None, help="a fold number, all (default), or none (fit on every clip)"),
    seed: Optional[int] = typer.Option(None, help="picks the validation speakers, as in dfer train"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: test metrics per split, summary"),
) -> None:
    """The linear-probe baseline: logistic regression on each clip's pooled tokens, on dfer train's splits; under
    torchrun the folds are spread over the ranks."""
    from dfer import distributed
    from dfer.train.probe import make_probe_config, probe as run_probe

    ranks = distributed.init()
    try:
        result = run_probe(store, out, make_probe_config(recipe, modalities=modalities, fold=fold, seed=seed),
                           show=not as_json)
    finally:
        distributed.shutdown()
    if as_json and ranks.is_main:
        print(json.dumps({"runs": result.runs, "summary": result.summary, "skipped": result.skipped}))


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="print one JSON list")) -> None:
    """The models that ship with dfer: pass a name as --model (predict, serve, explain) or RUN (evaluate, card)."""
    from dfer.models import bundled, model_facts

    facts = [model_facts(name) for name in bundled()]
    if as_json:
        print(json.dumps(facts))
        return
    for model in facts:
        table = Table(title=f"{model['name']}: {model['modalities']}", show_header=False)
        for key in ("folder", "classes", "encoders", "description", "training_data", "training_data_licence",
                    "headline", "scored", "protocol", "limitations"):
            if key in model:
                value = model[key]
                if key == "scored":
                    value = (f"WAR {100 * value['WAR']:.1f} %, UAR {100 * value['UAR']:.1f} % over {value['n']} clips: "
                             f"{value['subset']}")
                table.add_row(key.replace("_", " "), ", ".join(value) if isinstance(value, list) else str(value))
        console.print(table)


@app.command()
def zeroshot(
    store: Path = typer.Argument(..., help="a dfer cache whose vision encoder has its own classifier (--preset lite)"),
    out: Path = typer.Option(..., "--out", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of zero-shot settings (flags below override it)"),
    fold: Optional[str] = typer.Option(None, help="a fold number, all (default), or none (every clip sets the "
                                       "class prior)"),
    seed: Optional[int] = typer.Option(None, help="picks the validation speakers, as in dfer train"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: test metrics per split, summary"),
) -> None:
    """What the pretrained face network knows: its own expression classifier over each clip's face frames, on dfer
    train's splits, as a run folder evaluate, predict, serve and explain take."""
    from dfer import distributed
    from dfer.train.zeroshot import make_zeroshot_config, zeroshot as run_zeroshot

    ranks = distributed.init()
    try:
        result = run_zeroshot(store, out, make_zeroshot_config(recipe, fold=fold, seed=seed), show=not as_json)
    finally:
        distributed.shutdown()
    if as_json and ranks.is_main:
        print(json.dumps({"runs": result.runs, "summary": result.summary, "skipped": result.skipped}))


@app.command()
def evaluate(
    runs: list[Path] = typer.Argument(..., help="run folders (config.json + best.safetensors); several are scored "
                                      "on the same clips and printed side by side"),
    store: Optional[Path] = typer.Option(None, help="a cache made with the runs' encoders"),
    dataset: Optional[str] = typer.Option(None, help="with --root: extract this folder with the run's encoders first"),
    root: Optional[Path] = typer.Option(None),
    device: str = typer.Option("cpu"),
    out: Optional[Path] = typer.Option(None, "--out", help="write metrics.json, predictions.csv (one row per clip) "
                                       "and the confusion, recall and reliability PNGs into this folder (with "
                                       "several runs: into OUT/<run folder name>)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (with several runs: run -> metrics)"),
) -> None:
    """Score runs' best checkpoints: WAR, UAR, F1, ECE, per-class figures and the confusion matrix."""
    from dfer.train.checkpoint import load_run
    from dfer.train.evaluate import cache_for_folder, evaluate_run, extract_like_run
    from dfer.train.report import comparison_table, metrics_table

    if (store is None) == (dataset is None or root is None):
        errors.print("give either --store STORE or --dataset NAME --root DIR")
        raise typer.Exit(2)
    if store is None:
        _, config = load_run(runs[0])
        store = extract_like_run(config, dataset, root, cache_for_folder(config, dataset, root), device)
    several = len(runs) > 1
    scored = {run: evaluate_run(run, store, device, out / run.name if several and out else out) for run in runs}
    if as_json:
        print(json.dumps({str(run): metrics for run, metrics in scored.items()} if several else scored[runs[0]]))
        return
    for run, metrics in scored.items():
        console.print(f"{run} on {store}: {metrics['subset']}")
        if not several:
            console.print(metrics_table(metrics, metrics["display_names"]))
    if several:
        console.print(comparison_table({str(run): metrics for run, metrics in scored.items()},
                                       ["WAR", "UAR", "macro_f1"], f"on {store} (%)"))
    if out is not None:
        console.print(f"per-clip predictions and plots in {out}")


@app.command()
def card(run: str = typer.Argument(..., help="a run folder (or cross-validation folder), or a bundled model: voice, "
                                   "face")) -> None:
    """Write RUN/README.md again: the run's model card in the Hugging Face format (metadata, results, usage)."""
    from dfer.models import resolve_run
    from dfer.train.card import write_card

    console.print(f"wrote {write_card(resolve_run(run))}", soft_wrap=True)


@app.command()
def params(
    preset: str = typer.Option("base", help="encoder preset"),
    fusion: str = typer.Option("liquid"),
    modalities: str = typer.Option("av"),
    vision: Optional[str] = typer.Option(None, help="a vision encoder spec in place of the preset's"),
    audio: Optional[str] = typer.Option(None, help="an audio encoder spec in place of the preset's"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Parameter counts per module (frozen encoders, trainable heads) and the total against the 800M budget."""
    from dfer.params import parameter_table

    facts = parameter_table(preset, fusion, modalities, vision=vision, audio=audio)
    if as_json:
        print(json.dumps(facts))
        return
    table = Table(title=f"{preset} / {fusion} / {modalities}")
    for column in ("module", "parameters", "trainable in stage 2"):
        table.add_column(column)
    for name, row in facts["modules"].items():
        table.add_row(name, f"{row['parameters']:,}", "yes" if row["trainable"] else "frozen")
    table.add_row("total", f"{facts['total']:,}", f"{facts['trainable']:,} trainable")
    console.print(table)
    console.print(f"budget {facts['budget']:,}: {'within' if facts['within_budget'] else 'OVER'}")


@app.command("export-h5")
def export_h5(store: Path = typer.Argument(...), out: Path = typer.Argument(...)) -> None:
    """Copy a Zarr cache into one HDF5 file (same arrays and attributes); `dfer train` reads either."""
    from dfer.store.h5 import export_h5 as export

    console.print(f"wrote {export(store, out)}")


@app.command()
def explain(
    run: Path = typer.Argument(..., help="a run folder (config.json + best.safetensors), e.g. runs/demo, or a bundled model: voice, face"),
    file: Path = typer.Argument(..., help="a video file"),
    out: Path = typer.Option(..., "--out", help="folder for FILE's <stem>.explain.png and <stem>.explain.json"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
) -> None:
    """Why the run predicts what it does for FILE: ROI attention on the face crops, each modality alone, each step."""
    from dfer.media.decode import ClipError
    from dfer.predict.explain import explain_to
    from dfer.predict.predictor import Predictor

    try:
        record = explain_to(Predictor(run, device), file, out)
    except ClipError as error:
        errors.print(f"[red]failed[/] {file}: {error.reason}")
        raise typer.Exit(1)
    facts = record["explain"]
    answers = ", ".join(f"{key} {facts[key][record['top1']]:.0%}" for key in facts["available"])
    console.print(f"{file}: {record['top1']} ({answers})", soft_wrap=True)
    for note in facts["notes"]:
        console.print(f"note: {note}", soft_wrap=True)
    console.print(f"wrote {record['explain_files']['png']} and {record['explain_files']['json']}", soft_wrap=True)


app.command()(predict)
app.command()(serve)
app.command()(finetune)


def main() -> None:
    """The console script: a user's mistake (bad path, mismatched cache, unknown option value, a store another
    extraction is writing) is one red line."""
    from dfer.store.clip_store import StoreLocked
    from dfer.store.fingerprint import FingerprintMismatch

    try:
        app()
    except (FileNotFoundError, FingerprintMismatch, ValueError, StoreLocked) as error:
        errors.print(f"[red]error:[/] {error}")
        sys.exit(2)
