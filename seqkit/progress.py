"""A progress bar that appears only when the work turns out to be long (over a second)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class LazyProgress:
    """`advance(n)` as work is done; a rich bar shows up after `delay` seconds, and vanishes at the end."""

    def __init__(self, total: int, description: str, *, delay: float = 1.0, enabled: bool | None = None):
        self.total = total
        self.description = description
        self.delay = delay
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self._start = time.perf_counter()
        self._progress: Progress | None = None
        self._task = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._progress is None:
            if not self.enabled or time.perf_counter() - self._start < self.delay:
                return
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        self._progress.update(self._task, completed=self.done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "LazyProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
