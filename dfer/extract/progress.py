"""The extraction progress bar: clips/s, ETA, frames without a face, failed clips. Drawn on stderr: stdout is for a
command's results (`dfer evaluate --dataset --root --json` extracts first, and its stdout must be JSON alone)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ExtractProgress:
    """A rich bar on the main rank; counts are kept (for the summary) even when the bar is off."""

    def __init__(self, total: int, enabled: bool = True):
        self.faces_missed = 0
        self.failed = 0
        self._progress = Progress(
            TextColumn("extract"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} clips/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("faces missed {task.fields[missed]} frames, failed {task.fields[failed]}"),
            console=Console(stderr=True), disable=not enabled,
        )
        self._task = self._progress.add_task("extract", total=total, rate="-", missed=0, failed=0)

    def __enter__(self) -> ExtractProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def advance(self, faces_missed: int = 0, failed: bool = False) -> None:
        self.faces_missed += faces_missed
        self.failed += int(failed)
        task = self._progress.tasks[0]
        rate = f"{task.speed:.2f}" if task.speed else "-"
        self._progress.update(self._task, advance=1, rate=rate, missed=self.faces_missed, failed=self.failed)
