"""`dfer.media.prefetch.prefetched`: order, the depth bound, where a failure surfaces, and no thread left behind."""

from __future__ import annotations

import threading
import weakref

import pytest

from dfer.media.prefetch import prefetched

WAIT = 10  # seconds an event may take before the test fails (a correct run never waits this long)


class Source:
    """A producer that sets `started[k]` when it begins making item k, and `closed` when it is closed."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.started = [threading.Event() for _ in range(n)]
        self.closed = threading.Event()
        self.n, self.fail_at = n, fail_at

    def __iter__(self):
        try:
            for k in range(self.n):
                self.started[k].set()
                if k == self.fail_at:
                    raise ValueError(f"item {k} is bad")
                yield k
        finally:
            self.closed.set()


def prefetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "dfer-prefetch"]


def test_items_come_in_order():
    assert list(prefetched(range(50), depth=3)) == list(range(50))
    assert list(prefetched([])) == []
    assert not prefetch_threads()


def test_the_next_item_is_made_while_the_caller_works_on_this_one():
    """The producer starts item k + 1 before the caller is done with item k: decoding overlaps the work."""
    source = Source(4)
    for k in prefetched(source):
        if k + 1 < source.n:
            assert source.started[k + 1].wait(WAIT), f"item {k + 1} was not started while item {k} was worked on"


@pytest.mark.parametrize("depth", [1, 2])
def test_at_most_depth_items_are_made_ahead(depth):
    """While the caller holds item 0, items 1..depth are made and item depth + 1 is not started."""
    source = Source(depth + 3)
    items = prefetched(source, depth)
    assert next(items) == 0
    assert source.started[depth].wait(WAIT)
    assert not source.started[depth + 1].wait(0.2)  # a correct producer waits for a slot, however long we wait
    assert next(items) == 1
    assert source.started[depth + 1].wait(WAIT)  # taking one frees one slot
    items.close()


def test_an_item_handed_over_is_freed_when_the_caller_drops_it():
    """Nothing in the prefetcher keeps a reference: a timeline frees a window's frames before the next is read."""

    class Clip:
        pass

    items = prefetched(Clip() for _ in range(3))
    clip = next(items)
    dropped = weakref.ref(clip)
    del clip
    assert dropped() is None
    items.close()


def test_a_failure_surfaces_where_its_item_would_have():
    """Item 2's exception reaches the caller after items 0 and 1, and the producer is then gone."""
    source, received = Source(5, fail_at=2), []
    with pytest.raises(ValueError, match="item 2 is bad"):
        for k in prefetched(source):
            received.append(k)
    assert received == [0, 1]
    assert not prefetch_threads()


def test_stopping_early_closes_the_source_and_joins_the_thread():
    """Breaking out after one item, or an exception in the caller's loop: the source is closed and no thread is
    left, by the time the loop is left."""
    source = Source(100)
    items = prefetched(source)
    assert next(items) == 0
    items.close()
    assert source.closed.is_set() and not prefetch_threads()

    source = Source(100)
    with pytest.raises(KeyError):
        for _ in prefetched(source, depth=2):
            raise KeyError("the caller's own failure")
    assert source.closed.is_set() and not prefetch_threads()


def test_depth_below_one_is_refused():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        prefetched(range(3), depth=0)
