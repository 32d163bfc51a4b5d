"""The `dfer` command line: check the inputs, parse, call the library, print. No logic lives here.

Every command checks what it is given (`dfer.checks`) before it imports anything heavy, and imports torch and the
stages inside its body, so `dfer --help` and a mistyped path answer at once.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

import dfer
from dfer import api, checks
from dfer.cli_help import RECIPE, DferCommand, DferGroup
from dfer.encoders.presets import DEFAULT_PRESET
from dfer.errors import DferError
from dfer.finetune.command import finetune
from dfer.predict.command import predict
from dfer.serve.command import serve


app = typer.Typer(
    cls=DferGroup, add_completion=False, no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
command = partial(app.command, cls=DferCommand)
console = Console()
errors = Console(stderr=True)


def show_version(value: bool) -> None:
    if value:
        print(f"dfer {dfer.__version__}")
        raise typer.Exit()


APP_HELP = (
    "Audio-visual dynamic facial expression recognition: extract a cache once, train heads on it, predict.\n\n"
    "Commands are listed in stage order. What a command acts on is positional: files, caches, and the runs that "
    "evaluate and card act on; the model a command runs on files is always --model/-m (a run folder or a bundled "
    "model: dfer models); what it writes is always --out/-o. The encoder "
    f"preset is {DEFAULT_PRESET} (pretrained, offline, on a CPU) unless --preset or a recipe says otherwise."
)


@app.callback(help=APP_HELP)  # a help string, not a docstring: typer's Rich help keeps a docstring's line breaks
def dfer_app(
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                 help="Print dfer's version and exit."),
) -> None:
    pass


# Stage 1: the cache.


@command()
def extract(
    dataset: str = typer.Argument(..., help="ravdess, cremad, dfew, mafw, meld or manifest"),
    root: Path = typer.Argument(..., help="the dataset's folder (for manifest: the CSV file)"),
    out: Path = typer.Option(..., "--out", "-o", help="the Zarr store to create or resume"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of extraction settings (the options below override it)"),
    preset: Optional[str] = typer.Option(None, show_default=RECIPE.format(DEFAULT_PRESET),
                                         help="encoder preset: tiny, lite, small, base, large, base-random, "
                                         "large-random"),
    vision: Optional[str] = typer.Option(None, show_default="the preset's",
                                         help="vision encoder spec: random:<arch>, hf:<id or path>, faceapi, a SigLIP2 "
                                         "hub id or a local folder (offline: a folder you downloaded)"),
    audio: Optional[str] = typer.Option(None, show_default="the preset's",
                                        help="audio encoder spec: ge2e, mel, random:<arch>, hf:<id or path>[,layer=N], "
                                        "a NeMo hub id, a .nemo file or a folder"),
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
                          token_dtype=token_dtype, classes=classes, face_frames=face_frames)
    if not summary.is_main:  # under torchrun only rank 0 reports
        raise typer.Exit(1 if summary.failures else 0)
    for problem in summary.problems:
        errors.print(f"[yellow]skipped file[/] {problem}", soft_wrap=True)  # paths stay whole
    console.print(f"{summary.store}: {summary.done}/{summary.clips} clips done, {len(summary.failures)} failed",
                  soft_wrap=True)
    for clip_id, error in summary.failures:
        errors.print(f"[red]failed[/] {clip_id}: {error}", soft_wrap=True)
    raise typer.Exit(1 if summary.failures else 0)


@command()
def info(
    store: Path = typer.Argument(..., help="a dfer Zarr store"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Summarise a cache: clips, failures, classes, face detection rate, fingerprint, arrays, size."""
    checks.cache(store)
    from rich.table import Table

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


@command("export-h5")
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


# Stage 2: heads on the cache.


@command()
def train(
    store: Path = typer.Argument(..., help="a dfer cache (Zarr store or .h5 export)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of training settings (the options below override it)"),
    fusion: Optional[str] = typer.Option(None, show_default=RECIPE.format("liquid"),
                                         help="liquid, late, concat, gated or xattn"),
    modalities: Optional[str] = typer.Option(None, show_default=RECIPE.format("av"), help="av, audio or video"),
    fold: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                       help="a fold number, all, or none (train on every clip)"),
    epochs: Optional[int] = typer.Option(None, show_default=RECIPE.format(40), help="passes over the training clips"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", show_default=RECIPE.format(32),
                                             help="clips per step"),
    lr: Optional[float] = typer.Option(None, show_default=RECIPE.format("1e-3"), help="AdamW's peak learning rate"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="initialisation, sampling and the validation speakers"),
    balance: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"), help="none, sampler or loss"),
    device: Optional[str] = typer.Option(None, show_default=RECIPE.format("cpu"), help="cpu or cuda"),
    workers: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                          help="DataLoader workers reading the cache"),
    in_memory: Optional[bool] = typer.Option(
        None, "--in-memory/--from-disk", show_default=RECIPE.format("--from-disk"),
        help="keep the training and validation clips on --device, as stored (int8 or float16); refused if too big"),
    adapt: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"),
                                        help="speaker: standardise each clip with its speaker's statistics (dfer.adapt)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run where it stopped"),
) -> None:
    """Train the heads on cached tokens over the dataset's folds, report WAR/UAR (mean ± std); torchrun spreads folds."""
    checks.cache(store)
    checks.existing_file(recipe, "recipe")
    api.train(store, out, recipe=recipe, fusion=fusion, modalities=modalities, fold=fold, epochs=epochs,
              batch_size=batch_size, lr=lr, seed=seed, balance=balance, device=device, workers=workers,
              in_memory=in_memory, resume=resume, adapt=adapt)


@command()
def probe(
    store: Path = typer.Argument(..., help="a dfer cache (Zarr store or .h5 export)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of probe settings (the options below override it)"),
    modalities: Optional[str] = typer.Option(None, show_default=RECIPE.format("av"), help="av, audio or video"),
    fold: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                       help="a fold number, all, or none (fit on every clip)"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="picks the validation speakers, as in dfer train"),
    adapt: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"),
                                        help="speaker: standardise each clip with its speaker's statistics (dfer.adapt)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: test metrics per split, summary"),
) -> None:
    """The linear-probe baseline: logistic regression on each clip's pooled tokens, on dfer train's splits."""
    checks.cache(store)
    checks.existing_file(recipe, "recipe")
    from dfer import distributed

    ranks = distributed.init()  # under torchrun the folds are spread over the ranks; the API's init is then a no-op
    result = api.probe(store, out, recipe=recipe, modalities=modalities, fold=fold, seed=seed, show=not as_json,
                       adapt=adapt)
    if as_json and ranks.is_main:
        print(json.dumps({"runs": result.runs, "summary": result.summary, "skipped": result.skipped}))


@command()
def zeroshot(
    store: Path = typer.Argument(..., help="a dfer cache whose vision encoder has its own classifier (--preset lite)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of zero-shot settings (the options below override it)"),
    fold: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                       help="a fold number, all, or none (every clip sets the class prior)"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="picks the validation speakers, as in dfer train"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: test metrics per split, summary"),
) -> None:
    """What the pretrained face network knows: its own expression classifier on dfer train's splits, as a run folder."""
    checks.cache(store)
    checks.existing_file(recipe, "recipe")
    from dfer import distributed

    ranks = distributed.init()  # under torchrun the folds are spread over the ranks; the API's init is then a no-op
    result = api.zeroshot(store, out, recipe=recipe, fold=fold, seed=seed, show=not as_json)
    if as_json and ranks.is_main:
        print(json.dumps({"runs": result.runs, "summary": result.summary, "skipped": result.skipped}))


@command()
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
    adapt: str = typer.Option("none", help="speaker: standardise each speaker's clips with their own statistics "
                                           "(unlabelled; needs the dataset's speaker ids)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (with several runs: run -> metrics)"),
) -> None:
    """Score runs' best checkpoints: WAR, UAR, F1, ECE, per-class figures and the confusion matrix."""
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


# Stage 3, then use: registered from the modules beside the stages they drive.
command()(finetune)
command()(predict)


@command()
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
    console.print(f"wrote {record['explain_files']['png']} and {record['explain_files']['json']}", soft_wrap=True)


command()(serve)


# Models and runs.


@command()
def models(as_json: bool = typer.Option(False, "--json", help="print one JSON list")) -> None:
    """The models that ship with dfer: pass a name as --model (predict, explain, serve) or RUN (evaluate, card)."""
    from rich.table import Table

    from dfer.models import bundled, model_facts

    facts = [model_facts(name) for name in bundled()]
    if as_json:
        print(json.dumps(facts))
        return
    for model in facts:
        table = Table(title=f"{model['name']}: {model['modalities']}", show_header=False)
        for key in ("folder", "classes", "encoders", "adapts", "description", "training_data", "training_data_licence",
                    "headline", "scored", "protocol", "limitations"):
            if key in model:
                value = model[key]
                if key == "scored":
                    value = (f"WAR {100 * value['WAR']:.1f} %, UAR {100 * value['UAR']:.1f} % over {value['n']} clips: "
                             f"{value['subset']}")
                table.add_row(key.replace("_", " "), ", ".join(value) if isinstance(value, list) else str(value))
        console.print(table)


@command()
def card(run: str = typer.Argument(..., help="a run folder (or cross-validation folder), or a bundled model: voice, "
                                   "face")) -> None:
    """Write RUN/README.md again: the run's model card in the Hugging Face format (metadata, results, usage)."""
    folder = checks.run_folder(run, cross_validation=True)
    from dfer.runs.card import write_card

    console.print(f"wrote {write_card(folder)}", soft_wrap=True)


@command()
def params(
    preset: str = typer.Option(DEFAULT_PRESET, help="encoder preset (see dfer extract --help)"),
    fusion: str = typer.Option("liquid", help="liquid, late, concat, gated or xattn"),
    modalities: str = typer.Option("av", help="av, audio or video"),
    vision: Optional[str] = typer.Option(None, show_default="the preset's", help="a vision encoder spec"),
    audio: Optional[str] = typer.Option(None, show_default="the preset's", help="an audio encoder spec"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: modules, total, trainable, budget"),
) -> None:
    """Parameter counts per module (frozen encoders, trainable heads) and the total against the 800M budget."""
    from dfer.encoders.presets import resolve_preset

    resolve_preset(preset)
    from rich.table import Table

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


def main() -> None:
    """The console script: a user's mistake (bad path, mismatched cache, unknown option value, a store another
    extraction is writing, an encoder the hub cannot give) is one red line and exit code 2."""
    try:
        app()
    except (FileNotFoundError, ValueError, DferError) as error:
        errors.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(2)
