"""librosa, imported once per process alone among this machine's processes, with pYIN's kernels compiled.

Why: librosa compiles its numba kernels with `cache=True` and writes them beside its own code. Its `guvectorize`
kernels (`util.localmin`, `util.localmax`, ...) compile when `librosa.util` first loads (librosa loads its submodules
on first use), and each writes two cache files with nothing tying the pair together (numba#10128). Processes doing
that at once on a fresh install (pytest-xdist workers, torchrun ranks) can leave one process's loop wrapper beside
another's function, and from then on every process that loads the pair dies in a segmentation fault: seen in CI, in
`librosa.util.localmin`, on every worker. So each process's first use, a pYIN call that loads those kernels and
compiles the lazy Viterbi one, holds a file lock; later processes load the finished cache under it, quickly.

Every use of librosa in dfer, and every import of a package that uses it (NeMo, resemblyzer), comes after
`librosa_module`.
"""

from __future__ import annotations

import fcntl
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

LOCK = Path(tempfile.gettempdir()) / "dfer-librosa-kernels.lock"


@cache
def librosa_module() -> ModuleType:
    """The librosa module, its kernels compiled or loaded from the cache under `LOCK`."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            import librosa

            tone = np.sin(2 * np.pi * 150 * np.arange(2048) / 16000).astype(np.float32)
            librosa.pyin(tone, fmin=60.0, fmax=600.0, sr=16000, frame_length=1024, hop_length=160)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return librosa
