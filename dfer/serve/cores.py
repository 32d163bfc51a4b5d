"""The cores shared among the predictions a server runs at once.

Two predictions side by side keep a small CPU busier than one split over it (MTCNN's networks and the lite encoders
run small operations), but a lone request on one core of two waits for nothing: on 2 cores, bench/serve_load.py gave
one client 0.95 requests/s with one worker of 2 threads and 0.69 with two workers of one. So each prediction takes
its share of the cores when it starts: all of them when it runs alone, half when a second one is running, and so on.
A share is not taken back from a prediction already running, so for the rest of it the cores are briefly
oversubscribed (2 + 1 threads on 2 cores); under steady load every prediction starts beside the others and takes
its even share.

PyTorch's thread count is per thread here: set in one thread, it is reported but not obeyed in threads started
later (measured: a pool thread ran 2 threads after `set_num_threads(1)` in the main one), so the worker thread
sets it itself, as it starts each prediction.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

CORES = os.cpu_count() or 1


def cores_each(running: int, cores: int = CORES) -> int:
    """PyTorch's intra-op threads for each of `running` predictions: the cores shared out, at least one each."""
    return max(1, cores // running)


class CoreShares:
    """Counts the predictions running and sets each one's PyTorch threads as it starts (`share`)."""

    def __init__(self, cores: int = CORES):
        self.cores = cores
        self.running = 0
        self._lock = threading.Lock()

    @contextmanager
    def share(self) -> Iterator[int]:
        """Run one prediction in this block, on this thread: its thread count is set here and yielded."""
        with self._lock:
            self.running += 1
            threads = cores_each(self.running, self.cores)
        torch.set_num_threads(threads)
        try:
            yield threads
        finally:
            with self._lock:
                self.running -= 1
