"""The `dfer finetune` command: parse, build the settings, call `dfer.finetune.run.finetune`, print.

Kept beside the stage it drives so `dfer/cli.py` registers it with one line: `app.command()(finetune)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def finetune(
    store: Path = typer.Argument(..., help="a dfer cache extracted with --keep-media (face crops and waveforms)"),
    init: Path = typer.Option(..., "--init", help="the stage-2 run whose best heads start (its split is reused); a --fold all run fine-tunes every fold"),
    out: Path = typer.Option(..., "--out", help="the fine-tuned run folder (heads, vision/, audio/, results)"),
    recipe: Optional[Path] = typer.Option(None, help="YAML of fine-tune settings (flags below override it)"),
    unfreeze: Optional[str] = typer.Option(None, help="all (default), last:N blocks, or lora:R adapters"),
    layer_decay: Optional[float] = typer.Option(None, "--layer-decay",
                                                help="block i of L trains at lr x decay^(L-i) (0.75)"),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing",
                                                      help="recompute activations in backward to save memory"),
    accumulate: Optional[int] = typer.Option(None, help="batches per rank per optimizer step (1)"),
    precision: Optional[str] = typer.Option(None, help="bf16 (default) or fp32 autocast on CUDA; CPU runs fp32"),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="face and audio augmentation (on)"),
    epochs: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None, help="the encoders' last block (3e-5)"),
    head_lr: Optional[float] = typer.Option(None, "--head-lr", help="the heads (3e-4)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="clips per rank under torchrun (8)"),
    fold: Optional[str] = typer.Option(None, help="plan this fold instead of reusing the init run's split"),
    vision: Optional[str] = typer.Option(None, help="start from these vision weights instead of the store's encoder"),
    audio: Optional[str] = typer.Option(None, help="start from these audio weights instead of the store's encoder"),
    seed: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="cpu or cuda"),
    workers: Optional[int] = typer.Option(None, help="DataLoader workers reading and augmenting clips"),
) -> None:
    """Fine-tune the encoders and the heads end to end on the cache's face crops and waveforms; under torchrun, on
    every rank with DistributedDataParallel."""
    from dfer import distributed
    from dfer.finetune.config import make_finetune_config
    from dfer.finetune.run import finetune_folds

    cfg = make_finetune_config(
        recipe, unfreeze=unfreeze, layer_decay=layer_decay, grad_checkpointing=grad_checkpointing,
        accumulate=accumulate, precision=precision, augment=augment, epochs=epochs, lr=lr, head_lr=head_lr,
        batch_size=batch_size, fold=fold, vision=vision, audio=audio, seed=seed, device=device, workers=workers,
    )
    distributed.init(distributed.backend_for(cfg.device))
    try:
        finetune_folds(store, init, out, cfg)
        distributed.barrier()  # the others wait while rank 0 scores the test clips and writes the summary
    finally:
        distributed.shutdown()
