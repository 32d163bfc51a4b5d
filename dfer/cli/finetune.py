"""Stage 3, `dfer finetune`: parse, check the paths, call `dfer.api.finetune`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dfer import api, checks
from dfer.cli.help import RECIPE


def finetune(
    store: Path = typer.Argument(..., help="a dfer cache extracted with --keep-media (face crops and waveforms)"),
    init: Path = typer.Option(..., "--init", help="the stage-2 run whose best heads start (its split is reused); a "
                              "--fold all run fine-tunes every fold"),
    out: Path = typer.Option(..., "--out", "-o", help="the fine-tuned run folder (heads, vision/, audio/, results)"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of fine-tune settings (the options below override it)"),
    unfreeze: Optional[str] = typer.Option(None, show_default=RECIPE.format("all"),
                                           help="all, last:N blocks, or lora:R adapters"),
    layer_decay: Optional[float] = typer.Option(None, "--layer-decay", show_default=RECIPE.format(0.75),
                                                help="block i of L trains at lr x decay^(L-i)"),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing",
                                                      show_default=RECIPE.format("--no-grad-checkpointing"),
                                                      help="recompute activations in backward to save memory"),
    accumulate: Optional[int] = typer.Option(None, show_default=RECIPE.format(1),
                                             help="batches per rank per optimizer step"),
    precision: Optional[str] = typer.Option(None, show_default=RECIPE.format("bf16"),
                                            help="bf16 or fp32 autocast on CUDA; a CPU runs fp32"),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", show_default=RECIPE.format("--augment"),
                                           help="face and audio augmentation"),
    epochs: Optional[int] = typer.Option(None, show_default=RECIPE.format(10), help="passes over the training clips"),
    lr: Optional[float] = typer.Option(None, show_default=RECIPE.format("3e-5"),
                                       help="learning rate of the encoders' last block"),
    head_lr: Optional[float] = typer.Option(None, "--head-lr", show_default=RECIPE.format("3e-4"),
                                            help="learning rate of the heads"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", show_default=RECIPE.format(8),
                                             help="clips per rank under torchrun"),
    fold: Optional[str] = typer.Option(None, show_default="the init run's split",
                                       help="plan this fold instead of reusing the init run's split"),
    vision: Optional[str] = typer.Option(None, show_default="the store's encoder",
                                         help="start from these vision weights (a spec or a folder)"),
    audio: Optional[str] = typer.Option(None, show_default="the store's encoder",
                                        help="start from these audio weights (a spec or a folder)"),
    seed: Optional[int] = typer.Option(None, show_default=RECIPE.format(0), help="initialisation and sampling"),
    device: Optional[str] = typer.Option(None, show_default=RECIPE.format("cpu"), help="cpu or cuda"),
    workers: Optional[int] = typer.Option(None, show_default=RECIPE.format(0),
                                          help="DataLoader workers reading and augmenting clips"),
) -> None:
    """Fine-tune the encoders and the heads end to end on the cache's face crops and waveforms (torchrun: DDP).

    Not adapted to the speaker: every clip is standardised with the training set's statistics, whatever --init was
    trained with."""
    checks.cache(store)
    checks.run_folder(init, cross_validation=True)
    checks.existing_file(recipe, "recipe")
    api.finetune(store, init, out, recipe=recipe, unfreeze=unfreeze, layer_decay=layer_decay,
                 grad_checkpointing=grad_checkpointing, accumulate=accumulate, precision=precision, augment=augment,
                 epochs=epochs, lr=lr, head_lr=head_lr, batch_size=batch_size, fold=fold, vision=vision, audio=audio,
                 seed=seed, device=device, workers=workers)
