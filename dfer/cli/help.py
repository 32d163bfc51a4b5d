"""How `dfer`'s help reads: flags without a type, and usage lines that name arguments as the help does.

typer 0.29's Rich help prints a type column for every parameter, flags included, so each flag (`--json`, `--help`,
`--keep-media/--no-keep-media`) showed `<bool>` although it takes no value; its plain formatter skips flags
(`TyperOption.get_help_record`), the Rich one does not. That column shows an option's metavar when one is set, and a
flag's value is never written, so the fix is the true one: a flag's metavar is empty. Usage lines name arguments as
click does (`FILE...`, `[OUT]`) instead of typer's `{paths}...`.

`DferGroup` is the app's class and `DferCommand` every command's (`dfer.cli` registers them in stage order, which is
the order `--help` lists them in). A help string names the choices the code defines (`one_of`), not a copy of them.
"""

from __future__ import annotations

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# The default an option shows when None means "the recipe's value, else the stage's own default" (typer shows it in
# brackets, as every other default): RECIPE.format(16) -> [default: (from the recipe, else 16)].
RECIPE = "from the recipe, else {}"


def one_of(choices) -> str:
    """("a", "b", "c") -> "a, b or c": the choices a help string offers, from the names the code defines."""
    choices = list(choices)
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


class _FlagsTakeNoValue:
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:  # the help option is made here too, so this is the one place that sees every flag
            if isinstance(param, TyperOption) and param.is_flag:
                param.metavar = ""
        return params


class DferGroup(_FlagsTakeNoValue, TyperGroup):
    """The `dfer` app."""


class DferCommand(_FlagsTakeNoValue, TyperCommand):
    """One `dfer` command."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument) and not param.hidden:
                name = (param.metavar or param.name).upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces
