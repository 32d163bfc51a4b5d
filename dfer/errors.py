"""The errors a user can fix: `dfer`'s console script prints one of these as one red line and exits with code 2.

They live here, apart from the code that raises them, so the CLI can recognise them without importing that code (an
encoder module pulls in torch); a bug anywhere else still ends in a traceback.
"""

from __future__ import annotations


class DferError(Exception):
    """A mistake in what the user asked for, or in their setup, that dfer can name in one line."""


class Named(DferError, ValueError):
    """A refusal of one thing the user named: `what` is that thing as they wrote it, so the line names it."""

    def __init__(self, what: object, reason: str):
        super().__init__(what, reason)
        self.what, self.reason = what, reason

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


class InputError(Named):
    """A command's input is not what the command takes: a path that is missing, an empty folder, a file that is
    not a video, a folder that is not a run or a cache, an unknown dataset or preset."""


class NotARun(Named):
    """A folder named as a run holds none (no config.json): raised where runs are read (`dfer.runs.folder`), and
    reported by the CLI as the `InputError` of its RUN argument."""


class EncoderUnavailable(DferError):
    """A pretrained encoder could not be fetched (no network, or the hub refused); the line says how to pass a
    local copy instead."""


class MissingExtra(DferError, ImportError):
    """What the user asked for needs an optional package that is not installed; the line names the pip extra that
    installs it (`dfer.extras.require`)."""
