"""Models and runs: `dfer models` (the bundled ones), `dfer card` (a run's model card), `dfer params` (parameter
counts)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from dfer import checks
from dfer.cli.help import one_of
from dfer.cli.output import console
from dfer.encoders.presets import DEFAULT_PRESET, PRESETS


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


def card(run: str = typer.Argument(..., help="a run folder (or cross-validation folder), or a bundled model: voice, "
                                   "face")) -> None:
    """Write RUN/README.md again: the run's model card in the Hugging Face format (metadata, results, usage)."""
    folder = checks.run_folder(run, cross_validation=True)
    from dfer.runs.card import write_card

    console.print(f"wrote {write_card(folder)}", soft_wrap=True)


def params(
    preset: str = typer.Option(DEFAULT_PRESET, help=f"encoder preset: {one_of(PRESETS)}"),
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
