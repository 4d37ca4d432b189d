"""Ordered work in worker processes, started with forkserver/spawn (never fork: the parent may hold
TensorFlow's threads, which a forked child inherits broken), with few items in flight so memory stays flat.

The workers have the guarantees of seqkit.lifeline: one item may take at most `timeout` seconds (then
`WorkerError` names the item and carries the worker's stack), and they exit when the calling process
dies, even in the middle of an item. This module imports no Keras and no numpy.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import time
from collections import deque
from multiprocessing import connection
from typing import Any, Callable, Iterable, Iterator

from seqkit.lifeline import Guard, WorkerError, check_timeout, report_error, start_workers, stop_workers

__all__ = ["ordered_map", "start_method", "ITEM_TIMEOUT", "WorkerError"]

# Seconds one item may take in a worker. Items are chunks of a dataset (thousands of images decoded, a
# preprocessing function over many rows), which can take minutes on a slow disk; a hang still ends.
ITEM_TIMEOUT = 600.0
_POLL_SECONDS = 0.5
_LOADING = -1  # a worker's state while it unpickles the function
# What the fork server imports once, so that every worker (pool or MultiprocessSequence) starts in ms.
FORKSERVER_PRELOAD = ["seqkit.worker", "seqkit.pool"]
_BACKSTOP_GRACE_SECONDS = 5.0


def start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class RemoteTraceback(Exception):
    """Attached as the cause of an exception re-raised from a worker: the worker's traceback."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nIn the worker process:\n{self.text}"


def ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], processes: int, *, timeout: float | None = ITEM_TIMEOUT
) -> Iterator[tuple[Any, Any]]:
    """Yield `(item, fn(item))` in the order of `items`; exceptions come back as raised by `fn` (the
    worker's traceback is their cause).

    With `processes` <= 1 it runs inline (without a timeout). At most 2 * processes items are taken from
    `items` ahead of the one being yielded, so a long iterable of big chunks never piles up in memory;
    the workers are stopped on exit, error or interrupt. An item running longer than `timeout` seconds
    (None: no limit) raises `WorkerError` with the item's position and the worker's stack, and a worker
    that dies raises `WorkerError` saying how.
    """
    timeout = check_timeout(timeout)
    if processes <= 1:
        for item in items:
            yield item, fn(item)
        return
    try:
        payload = pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(f"the function given to worker processes must be picklable (defined at module level): {exc}") from exc
    context = multiprocessing.get_context(start_method())
    if start_method() == "forkserver":
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
    workers, lifeline = start_workers(context, _serve, processes, (), name="seqkit-pool", timeout=timeout)
    run = _Run(workers, timeout)
    try:
        for worker in workers:
            worker.conn.send(("init", payload))
        yield from run.results(iter(items))
    finally:
        stop_workers(workers, lifeline, graceful=not run.failed)


class _Run:
    """The owner's bookkeeping for one ordered_map: which worker runs which item, results by position.

    A worker gets its next item only once it has answered the last one, so neither side ever blocks
    sending to the other while that one is sending too (items and results may be large).
    """

    def __init__(self, workers, timeout):
        self.workers = workers
        self.timeout = timeout
        # What each worker is doing: the position of its item, _LOADING the function, or None (idle).
        self.busy: list[int | None] = [_LOADING] * len(workers)
        self.started = [time.monotonic()] * len(workers)
        self.items: dict[int, Any] = {}
        self.finished: dict[int, tuple] = {}  # position -> ("done", result) or ("error", exception)
        self.failed = False

    def results(self, todo: Iterator) -> Iterator[tuple[Any, Any]]:
        window = 2 * len(self.workers)
        taken = 0  # positions taken from `todo`
        waiting: deque[int] = deque()  # taken, not yet given to a worker
        exhausted = False
        next_out = 0
        try:
            while True:
                while not exhausted and taken - next_out < window:
                    try:
                        self.items[taken] = next(todo)
                    except StopIteration:
                        exhausted = True
                        break
                    waiting.append(taken)
                    taken += 1
                for number, position in enumerate(self.busy):
                    if position is None and waiting:
                        self._give(number, waiting.popleft())
                if next_out in self.finished:
                    kind, value = self.finished.pop(next_out)
                    item = self.items.pop(next_out)
                    if kind == "error":
                        raise value
                    next_out += 1
                    yield item, value
                    continue
                if exhausted and next_out == taken:
                    return
                self._wait()
        except BaseException:
            self.failed = True
            raise

    def _give(self, number: int, position: int) -> None:
        self.busy[number] = position
        self.started[number] = time.monotonic()
        try:
            self.workers[number].conn.send(("item", position, self.items[position]))
        except (BrokenPipeError, ConnectionResetError):
            self._died(number)

    def _wait(self) -> None:
        sentinels = {worker.process.sentinel: number for number, worker in enumerate(self.workers)}
        conns = {worker.conn: number for number, worker in enumerate(self.workers)}
        for ready in connection.wait(list(conns) + list(sentinels), timeout=_POLL_SECONDS):
            if ready in conns:
                number = conns[ready]
                try:
                    message = ready.recv()
                except (EOFError, OSError):
                    self._died(number)
                else:
                    self._receive(number, message)
            else:
                number = sentinels[ready]
                if self.workers[number].conn.poll():  # its last answer is still in the pipe
                    continue
                self._died(number)
        if self.timeout is not None:
            now = time.monotonic()
            for number, position in enumerate(self.busy):
                if position is not None and now - self.started[number] > self.timeout + _BACKSTOP_GRACE_SECONDS:
                    self._timed_out(number, self.workers[number].request_stacks())

    def _receive(self, number: int, message) -> None:
        kind, position = message[0], message[1]
        if kind == "error" and position is None:
            _, _, _, summary, text = message
            raise WorkerError(f"worker {number} failed to start: {summary}\n\nWorker traceback:\n{text}", worker_traceback=text)
        self.busy[number] = None
        if kind == "ready":
            return
        if kind == "done":
            self.finished[position] = ("done", message[2])
            return
        _, _, payload, summary, text = message
        try:
            error = pickle.loads(payload) if payload is not None else None
        except Exception:
            error = None
        if error is None:
            error = WorkerError(f"item {position} failed in worker {number}: {summary}", index=position, worker_traceback=text)
        error.__cause__ = RemoteTraceback(text)
        self.finished[position] = ("error", error)

    def _died(self, number: int) -> None:
        worker = self.workers[number]
        worker.process.join(_POLL_SECONDS)
        if worker.timed_out():
            self._timed_out(number, worker.read_stacks())
        position = self.busy[number]
        doing = {None: "while idle", _LOADING: "while loading the function"}.get(position, f"while working on item {position}")
        hint = " (SIGKILL usually means the out-of-memory killer)" if worker.process.exitcode == -signal.SIGKILL else ""
        raise WorkerError(
            f"worker {number} (pid {worker.pid}) died with {worker.exit_description()}{hint} {doing}",
            index=None if position == _LOADING else position,
        )

    def _timed_out(self, number: int, stack: str) -> None:
        position = self.busy[number]
        what = "loading the function" if position == _LOADING else f"item {position}"
        raise WorkerError(
            f"{what} took longer than timeout={self.timeout:g}s in worker {number} (pid {self.workers[number].pid}), "
            f"which was stopped. Where it was stuck:\n{stack or '(no stack was written)'}",
            index=None if position == _LOADING else position,
            worker_traceback=stack,
        )


def _serve(conn, guard: Guard) -> None:
    """A worker: load the function, then answer items in order until told to stop or the owner dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle
    guard.arm()
    fn = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        position = message[1] if message[0] == "item" else None
        try:
            with guard.deadline():
                if message[0] == "init":
                    fn = pickle.loads(message[1])
                    reply = ("ready", None)
                else:
                    reply = ("done", position, fn(message[2]))
            conn.send(reply)
        except Exception as exc:
            report_error(conn, position, exc)
