"""The training progress bar: steps, loss, validation UAR of the last epoch, steps/s. Drawn on stderr, like every
progress bar and log of dfer: stdout is for a command's results."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainProgress:
    def __init__(self, name: str, total_steps: int, enabled: bool = True):
        self._progress = Progress(
            TextColumn(f"{name} epoch {{task.fields[epoch]}}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  val UAR {task.fields[uar]}  {task.fields[rate]} steps/s"),
            TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
        )
        self._task = self._progress.add_task(name, total=total_steps, epoch=1, loss=float("nan"), uar="-", rate="-")

    def __enter__(self) -> TrainProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def step(self, epoch: int, loss: float) -> None:
        self._progress.update(self._task, advance=1, epoch=epoch, loss=loss)

    def epoch_done(self, row: dict) -> None:
        uar = f"{row['val_UAR']:.3f}" if row["val_UAR"] != "" else "-"
        self._progress.update(self._task, uar=uar, rate=f"{row['steps_per_s']:.1f}")
