"""What `pack_samples` shows while it builds: a rich bar on a terminal, a plain line now and then
otherwise (a log file, a notebook's captured stderr, CI), and short notes (why it loads in threads,
why it rebuilds). All on stderr; nothing at all with `progress=False`."""

from __future__ import annotations

import sys
import time

from seqkit.progress import LazyProgress

PLAIN_INTERVAL = 10.0  # seconds between two plain progress lines
DELAY = 1.0  # nothing is shown for builds shorter than this


class BuildProgress:
    """`advance(n)` as keys are loaded; `note(text)` for one line; `close()` at the end.

    `mode`: None (a bar on a terminal after DELAY seconds, plain lines otherwise), True (the same from
    the start), False (quiet).
    """

    def __init__(self, total: int, description: str, mode: bool | None):
        self.total = total
        self.description = description
        self.quiet = mode is False
        self.delay = 0.0 if mode is True else DELAY
        self.start = time.perf_counter()
        self.done = 0
        self.terminal = not self.quiet and _stderr_is_terminal()
        self.bar = LazyProgress(total, description, delay=self.delay, enabled=True) if self.terminal else None
        self.next_line = self.start + self.delay
        self.lines = 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.advance(n)
            return
        now = time.perf_counter()
        if now >= self.next_line and self.done < self.total:
            self._line(now)
            self.next_line = now + PLAIN_INTERVAL

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        share = self.done / self.total if self.total else 1.0
        left = f", about {elapsed / share - elapsed:.0f} s left" if 0 < share < 1 else ""
        _print(f"{self.description}: {self.done}/{self.total} keys ({share:.0%}) in {elapsed:.0f} s{left}")
        self.lines += 1

    def note(self, text: str) -> None:
        if not self.quiet:
            _print(text)

    def close(self, summary: str | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elapsed = time.perf_counter() - self.start
        if not self.quiet and summary and (self.lines or elapsed >= max(self.delay, DELAY)):
            _print(summary)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _print(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # a closed stderr must not fail the build
