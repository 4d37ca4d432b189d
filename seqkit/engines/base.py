"""What every engine shares: the interface, and for cluster engines the driver loop that keeps a
window of tasks in flight, yields results in order, detects a run that stopped making progress, and
cancels what is left when something fails."""

from __future__ import annotations

import queue
import time
from typing import Any, Callable, Iterable, Iterator

from seqkit.lifeline import WorkerError

# A task that raises is tried at most 1 + RETRIES times before the run fails. A task whose worker died
# is retried as often by Ray, and by Dask as its scheduler allows (distributed.scheduler.allowed-failures).
RETRIES = 2


def extra_missing(engine: str, module: str, extra: str, package: str) -> ImportError:
    return ImportError(
        f"engine={engine!r} needs {module}, which is not installed: pip install 'seqkit[{extra}]' (or pip install '{package}')"
    )


def task_label(task: Any) -> str:
    label = getattr(task, "label", None)
    return label() if callable(label) else repr(task)[:80]


class Engine:
    """Runs `fn` over tasks; see seqkit.engines. Subclasses implement `run` and `close`."""

    name = "engine"

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ClusterEngine(Engine):
    """The driver side of Dask and Ray: at most `window` tasks in flight, results in task order.

    Each task's handle reports its completion through a callback into one queue, so the driver sleeps
    until something finishes (or the timeout passes) and pays little per task (polling every handle, or
    a `wait` over all of them, cost several milliseconds of the driver's CPU per task). Subclasses say
    how to submit one task (`_submit` -> handle), register a completion callback (`_when_done`), fetch a
    finished handle's result (`_result`) and cancel handles (`_cancel`).
    """

    timeout: float | None = None

    def _window(self) -> int:
        return 4

    def run(self, fn, tasks):
        finished: queue.SimpleQueue = queue.SimpleQueue()  # positions of handles that are done
        pending: dict[int, tuple] = {}  # position -> (task, handle), submitted and not yet yielded
        done: set[int] = set()
        todo = iter(tasks)
        taken = next_out = 0
        exhausted = False
        window = max(1, self._window())
        last_progress = time.monotonic()
        try:
            while True:
                while not exhausted and taken - next_out < window:
                    task = next(todo, None)
                    if task is None:
                        exhausted = True
                        break
                    handle = self._submit(fn, task)
                    pending[taken] = (task, handle)
                    self._when_done(handle, lambda _=None, position=taken: finished.put(position))
                    taken += 1
                if next_out == taken:
                    return
                if next_out in done:
                    task, handle = pending.pop(next_out)
                    done.discard(next_out)
                    next_out += 1
                    yield task, self._fetch(task, handle)
                    continue
                wait = None if self.timeout is None else max(0.0, self.timeout - (time.monotonic() - last_progress))
                try:
                    done.add(finished.get(timeout=wait))
                except queue.Empty:
                    names = ", ".join(task_label(t) for position, (t, _) in sorted(pending.items()) if position not in done)
                    raise WorkerError(
                        f"no task finished on {self.name} for timeout={self.timeout:g}s, so the run was stopped; "
                        f"still running or waiting: {names}"
                    ) from None
                last_progress = time.monotonic()
        finally:
            if pending:
                self._cancel([handle for _, handle in pending.values()])

    def _fetch(self, task, handle):
        try:
            return self._result(handle)
        except Exception as exc:
            translated = self._translate(task, exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translate(self, task, exc: Exception) -> Exception:
        """An engine's own failure (a worker that kept dying) as WorkerError naming the task; the task's own
        exceptions are raised as they are."""
        return exc

    # -- per engine --------------------------------------------------------------------------------------
    def _submit(self, fn, task) -> Any:
        raise NotImplementedError

    def _when_done(self, handle, callback: Callable[..., None]) -> None:
        """Call `callback()` (from any thread) once `handle` has finished, however it finished."""
        raise NotImplementedError

    def _result(self, handle) -> Any:
        raise NotImplementedError

    def _cancel(self, handles: list) -> None:
        raise NotImplementedError
