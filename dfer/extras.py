"""The one check before dfer uses an optional package: the core install (`pip install dfer`) runs the lite preset
and the bundled models, and each extra (`pip install 'dfer[serve]'`, pyproject.toml) adds the packages of one
feature. Where a feature needs one that is missing, `require` fails in one line naming the extra to install, before
any work starts, instead of a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util

from dfer.errors import MissingExtra


def installed(module: str) -> bool:
    """Whether `module` (a top-level import name) can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def require(what: str, extra: str, *modules: str) -> None:
    """MissingExtra unless every one of `modules` is installed: "`what` needs M (not installed): pip install
    'dfer[extra]'"."""
    missing = [module for module in modules if not installed(module)]
    if missing:
        raise MissingExtra(f"{what} needs {', '.join(missing)} (not installed): pip install 'dfer[{extra}]'")
