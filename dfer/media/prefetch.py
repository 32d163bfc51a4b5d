"""Decode ahead: the next items of an iterator are made in a background thread while the caller works on this one.

Why: `dfer predict` over several files, `--timeline` over a long one and `dfer serve` each decode a clip, then detect
faces and encode it; done one after the other, one core idles while the other decodes. PyAV releases the GIL while it
decodes (measured: a decoding thread runs fully in parallel with torch's work), so one thread is enough: no process,
and no copying of frames between processes.

`prefetched(items, depth)`:
- keeps at most `depth` items made and not yet taken, the one being made included, so memory stays bounded (a decoded
  clip can be tens of MB); the item handed over is not kept, so the caller decides when it is freed;
- re-raises the exception that ended `items` where the caller would have received that item, after every item made
  before it;
- when the caller stops early (breaks out of its loop, an exception leaves it, or it closes the generator), lets the
  thread finish the item it is making, closes `items` and joins the thread: no thread outlives the iteration.

No well-kept library does this: `prefetch_generator` leaves its thread running when the caller stops, and
`torch.utils.data.DataLoader` runs worker processes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass
class _End:
    """What the thread sends after the last item: None when `items` ran out, else the exception that ended it."""

    error: BaseException | None


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """`items`, made up to `depth` ahead of the caller in one daemon thread (see the module docstring)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    return _handed_over(items, depth)


def _handed_over(items: Iterable[T], depth: int) -> Iterator[T]:
    slots = threading.Semaphore(depth)  # items the thread may make before the caller takes one
    made: queue.SimpleQueue = queue.SimpleQueue()  # [item] boxes, then one _End
    stop = threading.Event()
    thread = threading.Thread(target=_make, args=(items, slots, made, stop), name="dfer-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            box = made.get()
            if isinstance(box, _End):
                if box.error is not None:
                    raise box.error
                return
            slots.release()  # the caller takes this one: the thread may start on the next
            yield box.pop()  # handed over without a reference left here
    finally:
        stop.set()
        slots.release()  # wakes a thread waiting for a slot, so it sees `stop`
        thread.join()


def _make(items: Iterable[T], slots: threading.Semaphore, made: queue.SimpleQueue, stop: threading.Event) -> None:
    """The thread: one item per free slot into `made`, until `items` ends (or fails) or the caller stops."""
    iterator = iter(items)
    try:
        while True:
            slots.acquire()
            if stop.is_set():
                return
            try:
                item = next(iterator)
            except StopIteration:
                made.put(_End(None))
                return
            except BaseException as error:  # the caller's to handle, where it would have received this item
                made.put(_End(error))
                return
            made.put([item])
            del item
    finally:
        close = getattr(iterator, "close", None)  # a generator's `finally` (e.g. closing its file) runs now
        if close is not None:
            close()
