"""dfer: audio-visual dynamic facial expression recognition from cached frozen-encoder tokens.

The Python API is reached from here and loads only when used (PEP 562 `__getattr__`): `import dfer` takes
milliseconds and imports no torch, so a script pays for a stage only when it calls it.

    import dfer
    model = dfer.load("runs/demo")  # or "voice", "face"; see `dfer models`
    model.predict(["samples/cremad/VideoFlash/1001_DFA_HAP_XX.flv"])
    cache = dfer.open_cache("cache/demo")  # tokens decoded, per-clip listing
    dfer.api.train("cache/demo", out="runs/again")  # every stage, named like its command (`dfer.api`)

The stage functions live in `dfer.api`, not here: `extract`, `train` and `finetune` are also the names of the
subpackages that implement them (dfer/extract/, dfer/train/, dfer/finetune/), and a package's attribute is its
subpackage once that is imported. So `dfer.train` is the package, `import dfer.train.run as run` works, and a dotted
path such as `monkeypatch.setattr("dfer.train.loop.fit", ...)` finds the module.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "load": "dfer.api",
    "open_cache": "dfer.store.reader",
    "Model": "dfer.predict.model",
}
__all__ = ["__version__", "api", *_EXPORTS]


def __getattr__(name: str):
    """Import the module behind a public name on first use, and keep the object here for next time."""
    if name == "api":
        return importlib.import_module("dfer.api")  # importing a submodule binds it here, as any import does
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
