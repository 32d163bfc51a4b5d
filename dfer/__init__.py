"""dfer: audio-visual dynamic facial expression recognition from cached frozen-encoder tokens.

The Python API (`dfer.api`, `dfer.open_cache`) is reached from here and loads only when used (PEP 562 `__getattr__`):
`import dfer` takes milliseconds and imports no torch, so a script pays for a stage only when it calls it.

    import dfer
    model = dfer.load("runs/demo")  # or "voice", "face"; see `dfer models`
    model.predict(["samples/cremad/VideoFlash/1001_DFA_HAP_XX.flv"])
    cache = dfer.open_cache("cache/demo")  # tokens decoded, per-clip listing
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "load": "dfer.api",
    "extract": "dfer.api",
    "train": "dfer.api",
    "probe": "dfer.api",
    "zeroshot": "dfer.api",
    "evaluate": "dfer.api",
    "open_cache": "dfer.store.reader",
    "Model": "dfer.predict.model",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import the module behind a public name on first use, and keep the object here for next time."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Stage:
    """`dfer.extract` and `dfer.train` are functions named like the subpackages behind them (dfer/extract/,
    dfer/train/), and importing a subpackage binds it as an attribute of its parent, over the function. This keeps
    the function: the import's binding is ignored. The subpackages stay importable as `from dfer.train.run import
    train` (the form dfer uses throughout), not as `import dfer.train.run as run` nor by a dotted path walked through
    attributes (`monkeypatch.setattr("dfer.train.loop.fit", ...)`: patch the module object instead)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, module, owner=None):
        if module is None:
            return self
        value = vars(module).get(self.name)
        return __getattr__(self.name) if value is None or isinstance(value, ModuleType) else value

    def __set__(self, module, value):
        if not isinstance(value, ModuleType):
            vars(module)[self.name] = value


class _Package(ModuleType):
    extract = _Stage("extract")
    train = _Stage("train")


sys.modules[__name__].__class__ = _Package  # the documented way to customise a module's attributes (Python 3.5+)
