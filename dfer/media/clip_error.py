"""`ClipError`: a clip that cannot be decoded, raised by probing a file and by decoding it.

Bad input (a missing, empty or undecodable file, a stream the clip needs and lacks) is the file's problem, not a bug
in dfer: it names the file and the reason, so a caller records it per clip and goes on with the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ClipError(Exception):
    """A clip that cannot be decoded: bad, missing or unsupported input, never a bug in dfer.

    `path` and `reason` are kept so callers can record the failure per clip (the cache's `error` string);
    the arguments are passed to Exception so the error pickles across worker processes.
    """

    def __init__(self, path: Path | str, reason: str):
        super().__init__(path, reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@contextmanager
def as_clip_error(path: Path | str) -> Iterator[None]:
    """An unforeseen decoder failure is still this file's problem: re-raise it as the file's ClipError."""
    try:
        yield
    except ClipError:
        raise
    except Exception as error:
        raise ClipError(path, f"unexpected {type(error).__name__}: {error}") from error


def error_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)
