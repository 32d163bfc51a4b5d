"""The `dfer` command line: check the inputs, parse, call the library, print. No logic lives here.

Every command checks what it is given (`dfer.checks`) before it imports anything heavy, and imports torch and the
stages inside its body, so `dfer --help` and a mistyped path answer at once. One module per group of commands
(`stage1`: the cache, `stage2`: heads on it, `evaluate`, `finetune`, `predict`, `explain`, `serve`, `models`: models
and runs); this module builds the app from them, in stage order, and runs it (`main`, the console script).
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

import dfer
from dfer.cli import evaluate, explain, finetune, models, predict, serve, stage1, stage2
from dfer.cli.help import DferCommand, DferGroup
from dfer.cli.output import errors
from dfer.encoders.presets import DEFAULT_PRESET
from dfer.errors import DferError

# Stage order: the order `dfer --help` lists them in. A command is named after its function (export_h5: export-h5).
COMMANDS = [
    stage1.extract, stage1.info, stage1.export_h5,
    stage2.train, stage2.probe, stage2.zeroshot,
    evaluate.evaluate,
    finetune.finetune,
    predict.predict, explain.explain, serve.serve,
    models.models, models.card, models.params,
]

app = typer.Typer(
    cls=DferGroup, add_completion=False, no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for function in COMMANDS:
    app.command(cls=DferCommand)(function)


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


def main() -> None:
    """The console script: a user's mistake (bad path, mismatched cache, unknown option value, a store another
    extraction is writing, an encoder the hub cannot give) is one red line and exit code 2."""
    try:
        app()
    except (FileNotFoundError, ValueError, DferError) as error:
        errors.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        sys.exit(2)
