"""MkDocs hooks (mkdocs.yml `hooks:`): the CLI reference page is generated from the typer app at build time.

docs/cli.md holds one marker line; it is replaced by what `typer dfer.cli utils docs` prints, made by typer's own
generator (`typer.cli.get_docs_for_click`) from `dfer.cli.app`, so every command, argument, option and default
shown is the program's. mkdocs-click cannot do it: typer 0.29 builds on its own copy of click, whose options are not
`click.Option` instances, so mkdocs-click would list no option at all."""

from __future__ import annotations

import html

MARKER = "<!-- dfer cli reference -->"


def cli_reference() -> str:
    """The Markdown reference of every `dfer` command, as typer documents it."""
    import typer
    import typer.cli
    import typer.main

    from dfer.cli import app

    command = typer.main.get_command(app)
    context = typer.Context(command, info_name="dfer")
    # typer writes a level-1 title for the app and one level deeper per command; the page has its own title
    return escape_prose(typer.cli.get_docs_for_click(obj=command, ctx=context, name="dfer", indent=1, title="`dfer`"))


def escape_prose(markdown: str) -> str:
    """`<` and `&` escaped outside code: help texts such as `random:<arch>` are prose to typer, HTML to Markdown."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:  # odd pieces between backticks are code spans, left as they are
            line = "`".join(piece if i % 2 else html.escape(piece, quote=False)
                            for i, piece in enumerate(line.split("`")))
        lines.append(line)
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, **_) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
