"""Stage 2, heads on the cache: `dfer train`, `dfer probe`, `dfer zeroshot`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dfer import api, checks
from dfer.adapt.settings import TRAIN_MODES
from dfer.cli.help import RECIPE, one_of

ADAPT_HELP = f"{one_of(TRAIN_MODES)}; speaker: standardise each clip with its speaker's statistics (dfer.adapt)"

MODALITIES_HELP = ("the store's streams to read: av, audio or video (every stream, those reading the waveform, or "
                   "those reading the picture: face crops and face actions), or stream names, e.g. speech,prosody")


def train(
    store: Path = typer.Argument(..., help="a dfer cache (Zarr store or .h5 export)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of training settings (the options below override it)"),
    fusion: Optional[str] = typer.Option(None, show_default=RECIPE.format("liquid"),
                                         help="liquid, late, concat, gated or xattn"),
    modalities: Optional[str] = typer.Option(None, show_default=RECIPE.format("av"), help=MODALITIES_HELP),
    fold: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                       help="a fold number, all, or none (train on every clip)"),
    epochs: Optional[int] = typer.Option(None, show_default=RECIPE.format(40), help="passes over the training clips"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", show_default=RECIPE.format(32),
                                             help="clips per step"),
    lr: Optional[float] = typer.Option(None, show_default=RECIPE.format("1e-3"), help="AdamW's peak learning rate"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="initialisation, sampling and the validation speakers"),
    balance: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"), help="none, sampler or loss"),
    members: Optional[int] = typer.Option(
        None, show_default=RECIPE.format(1),
        help="heads trained per split, from seeds SEED, SEED+1, ...: the run answers with their mean log-probability "
             "(RUN/member0, ... hold each alone); K times the training time"),
    device: Optional[str] = typer.Option(None, show_default=RECIPE.format("cpu"), help="cpu or cuda"),
    workers: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                          help="DataLoader workers reading the cache"),
    in_memory: Optional[bool] = typer.Option(
        None, "--in-memory/--from-disk", show_default=RECIPE.format("--from-disk"),
        help="keep the training and validation clips on --device, as stored (int8 or float16); refused if too big"),
    adapt: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"), help=ADAPT_HELP),
    view: Optional[list[Path]] = typer.Option(
        None, "--view", show_default=RECIPE.format("none"),
        help="a store of the same clips through another recording channel (repeatable; bench/channel_copy.py makes "
             "the recordings): each training batch is read from one of them or STORE, at random; needs --in-memory"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run where it stopped"),
) -> None:
    """Train the heads on cached tokens over the dataset's folds, report WAR/UAR (mean ± std); torchrun spreads folds."""
    checks.cache(store)
    checks.existing_file(recipe, "recipe")
    for path in view or []:
        checks.cache(path)
    api.train(store, out, recipe=recipe, fusion=fusion, modalities=modalities, fold=fold, epochs=epochs,
              batch_size=batch_size, lr=lr, seed=seed, balance=balance, device=device, workers=workers,
              in_memory=in_memory, resume=resume, adapt=adapt, views=view or None, members=members)


def probe(
    store: Path = typer.Argument(..., help="a dfer cache (Zarr store or .h5 export)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of probe settings (the options below override it)"),
    modalities: Optional[str] = typer.Option(None, show_default=RECIPE.format("av"), help=MODALITIES_HELP),
    fold: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                       help="a fold number, all, or none (fit on every clip)"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="picks the validation speakers, as in dfer train"),
    adapt: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"), help=ADAPT_HELP),
    balance: Optional[str] = typer.Option(None, show_default=RECIPE.format("none"),
                                          help="none, or loss: each class weighted inversely to its count"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: test metrics per split, summary"),
) -> None:
    """The linear-probe baseline: logistic regression on each clip's pooled tokens, on dfer train's splits."""
    checks.cache(store)
    checks.existing_file(recipe, "recipe")
    from dfer import distributed

    ranks = distributed.init()  # under torchrun the folds are spread over the ranks; the API's init is then a no-op
    result = api.probe(store, out, recipe=recipe, modalities=modalities, fold=fold, seed=seed, show=not as_json,
                       adapt=adapt, balance=balance)
    if as_json and ranks.is_main:
        print(json.dumps({"runs": result.runs, "summary": result.summary, "skipped": result.skipped}))


def zeroshot(
    store: Path = typer.Argument(..., help="a dfer cache whose vision encoder has its own classifier (--preset lite)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of zero-shot settings (the options below override it)"),
    fold: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                       help="a fold number, all, or none (every clip sets the class prior)"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                       help="picks the validation speakers, as in dfer train"),
    actions: Optional[bool] = typer.Option(None, "--actions/--no-actions",
                                           show_default=RECIPE.format("--no-actions"),
                                           help="combine the network's answer with the face actions' EMFACS "
                                           "prototypes (needs dfer[actions]; a store holds no actions: --fold none, "
                                           "then predict on files)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: test metrics per split, summary"),
) -> None:
    """What the pretrained face network knows: its own expression classifier on dfer train's splits, as a run folder."""
    checks.cache(store)
    checks.existing_file(recipe, "recipe")
    from dfer import distributed

    ranks = distributed.init()  # under torchrun the folds are spread over the ranks; the API's init is then a no-op
    result = api.zeroshot(store, out, recipe=recipe, fold=fold, seed=seed, actions=actions, show=not as_json)
    if as_json and ranks.is_main:
        print(json.dumps({"runs": result.runs, "summary": result.summary, "skipped": result.skipped}))
