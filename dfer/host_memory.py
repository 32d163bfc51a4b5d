"""glibc's malloc, tuned for the patterns of host memory dfer has; both are no-ops where the C library is not glibc
(macOS, musl).

- Training on a CPU allocates and frees the same few very large blocks every batch: a batch of 32 base-size clips
  holds ~300 MB of float32 tokens once decoded. glibc serves every block over 32 MB with a fresh mmap and unmaps it
  when it is freed, so each batch page-faults all of it again. `keep_freed_memory` keeps freed blocks in the heap
  for the next batch instead; measured on a 2-core CPU, decoding int8 tokens took 14.5 ms a clip without it and
  1.4 ms with it (`bench/train.py`'s loader shows the same on whole batches).
- A timeline allocates and frees some tens of MB of varying sizes per window; kept in glibc's heaps they fragment,
  so `release_freed_memory` gives them back after each window. Decoding a video larger than the frames kept
  (`dfer.media.decode`) frees its decoder's frames, 50 MB each at 8K, when the pass ends; they are given back then
  too, or the next thread to decode (`dfer serve` decodes on one thread and predicts on others) takes its own.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
KEEP_BYTES = 2**31 - 1  # free memory at the top of the heap kept, not trimmed: mallopt takes an int


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc
        return None


_LIBC = _glibc()


def keep_freed_memory() -> None:
    """Serve every block from the heap (no mmap) and keep what is freed there: the next batch reuses pages that are
    already mapped. The process's RSS then stays at its peak, as with a GPU's caching allocator."""
    if _LIBC is not None:
        _LIBC.mallopt(M_MMAP_MAX, 0)
        _LIBC.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)


def release_freed_memory() -> None:
    """Give the memory freed since the last call back to the system (malloc_trim).

    Each timeline window allocates and frees some tens of MB (frames, MTCNN's pyramid, crops) of slightly varying
    sizes; without this a 10-minute file's RSS climbs by ~25 MB a window though what is live stays flat (measured:
    1.2 GB live, 2.7 GB RSS after 75 windows)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
