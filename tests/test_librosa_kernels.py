"""librosa's first import in a process waits for every other process's: two importing at once on a fresh install
can mix numba's cache files for good (`dfer.encoders.librosa_kernels`)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time

from dfer.encoders.librosa_kernels import LOCK

IMPORT = "from dfer.encoders.librosa_kernels import librosa_module; print(librosa_module().__name__)"


def test_a_process_imports_librosa_only_while_no_other_holds_the_lock():
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = subprocess.Popen([sys.executable, "-c", IMPORT], stdout=subprocess.PIPE, text=True)
        time.sleep(3)  # librosa imports in about a second here: the child would have finished
        assert waiting.poll() is None, "the import went ahead while another process held the lock"
        fcntl.flock(lock, fcntl.LOCK_UN)
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and out.strip() == "librosa"
