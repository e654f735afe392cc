"""Rich progress display for long runs: clips done, frames/s, ETA."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    """A progress bar that appears only once the work is known (``set_total``), so an error raised before
    any work (a bad setting) is not printed under an empty bar."""

    def __init__(self, total: int, description: str, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.frames = 0
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, rate="")
        self._shown = False

    def __enter__(self) -> "RunProgress":
        if self._progress.tasks[0].total:
            self._show()
        return self

    def _show(self) -> None:
        if not self._shown:
            self._progress.__enter__()
            self._shown = True

    def __exit__(self, *exc: Any) -> None:
        if self._shown:
            self._progress.__exit__(*exc)
            self._shown = False

    def set_total(self, total: int) -> None:
        self._start = time.perf_counter()
        self._progress.update(self._task, total=total)
        self._show()

    def advance(self, frames: int = 0) -> None:
        self._show()
        self.frames += frames
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(self._task, advance=1, rate=f"{self.frames / elapsed:6.1f} frames/s")
