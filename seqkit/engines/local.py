"""engine="local": this machine's processes, through seqkit.pool.ordered_map (forkserver workers with a
per-task timeout that die with their parent); `processes=1` runs the tasks in this process."""

from __future__ import annotations

from seqkit.engines.base import Engine
from seqkit.pool import ITEM_TIMEOUT, ordered_map


class LocalEngine(Engine):
    name = "local"

    def __init__(self, processes: int = 1, *, timeout: float | None = ITEM_TIMEOUT):
        self.processes = processes
        self.timeout = timeout

    def run(self, fn, tasks):
        # A task that fails is not retried here: on one machine it would fail the same way again.
        yield from ordered_map(fn, tasks, self.processes, timeout=self.timeout)
