"""The docs site (mkdocs.yml, docs/): every page in the nav exists, every included file exists, the CLI reference is
generated from the program, and the strict build passes (slow: `make docs` and CI run the same build)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::[\d:]*)?"', re.M)  # a pymdownx.snippets include, lines optional


def nav_pages(entries) -> list[str]:
    """Every page path in mkdocs.yml's nav, sections flattened."""
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    pages = nav_pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
    assert len(pages) == len(set(pages))
    for page in pages:
        assert (DOCS / page).is_file(), f"mkdocs.yml's nav names docs/{page}, which does not exist"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk <= set(pages), "pages missing from the nav"


def test_every_included_file_exists():
    included = [m.group(1) for page in DOCS.rglob("*.md") for m in INCLUDE.finditer(page.read_text())]
    assert "recipes/ravdess_speech/RESULTS.md" in included
    for path in included:
        assert (REPO / path).is_file(), f"docs include {path}, which does not exist"


def test_the_layout_names_every_package_and_module():
    """The implementation notes' layout of `dfer/` names each folder (`name/`) and each module beside them
    (`name.py`), so a new package cannot go unlisted."""
    notes = (DOCS / "notes.md").read_text()
    layout = notes[notes.index("## Layout of the repository"):]
    parts = [f"`{path.name}/`" for path in (REPO / "dfer").iterdir() if (path / "__init__.py").exists()]
    parts += [f"`{path.name}`" for path in (REPO / "dfer").glob("*.py") if path.name != "__init__.py"]
    assert parts and [part for part in parts if part not in layout] == []


def test_help_texts_are_escaped_outside_code():
    escape = load_hooks().escape_prose
    text = "* `--vision TEXT`: random:<arch> & more\n```console\n$ dfer <x>\n```\n"
    assert escape(text) == "* `--vision TEXT`: random:&lt;arch&gt; &amp; more\n```console\n$ dfer <x>\n```\n"


def test_cli_reference_is_generated_from_the_app():
    from typer.main import get_command

    from dfer.cli import app

    reference = load_hooks().cli_reference()
    for name, command in get_command(app).commands.items():
        assert f"## `dfer {name}`" in reference
        for parameter in command.params:
            if parameter.param_type_name == "option":
                assert all(any(f"{before}{option}" in reference for before in ("`", "/ ", ", ")) for option in parameter.opts), \
                    (name, parameter.opts)


@pytest.mark.slow
def test_strict_build(tmp_path):
    pytest.importorskip("mkdocs", reason="requirements-docs.txt is not installed (make docs installs it)")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dfer predict" in (tmp_path / "cli.html").read_text()  # the generated CLI reference
