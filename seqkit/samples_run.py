"""Where `pack_samples` loads its chunks of keys: in this process, in threads, or in worker processes
that this process helps. Every runner yields the chunks' results in chunk order.

Worker processes take a while to start: a fork server has to start and import numpy the first time
(about 0.5 s here), each worker then forks and unpickles the loader (about 0.15 s). A build of ten
thousand small files takes about as long in total. So this process does not wait for them: it loads
chunks itself, from the same queue the workers take theirs from, whenever it has no finished chunk to
hand on, holding at most PENDING_BYTES of results that are waiting for an earlier chunk. The pool
runs in a helper thread (its loop only waits on pipes, so it needs the GIL only briefly); each key is
still loaded exactly once.

seqkit.pool takes a few items ahead of its workers, but pickles each only when it sends it to a worker
that is free. The items are tickets that take their chunk from the queue at that moment, so chunks are
never held for workers that are still starting, or busy, while this process could load them.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from seqkit.lifeline import WorkerError
from seqkit.pool import ordered_map
from seqkit.samples_load import ChunkResult, LoadTask
from seqkit.samples_ship import MainHidden, Shipped

PENDING_BYTES = 128 << 20  # results held while an earlier chunk is still in a worker
_JOIN_SECONDS = 0.5


def in_this_process(task: LoadTask, chunks: list) -> Iterator[ChunkResult]:
    for chunk in chunks:
        yield task(chunk)


def in_threads(task: LoadTask, chunks: list, workers: int) -> Iterator[ChunkResult]:
    """The chunks in `workers` threads, at most 2 per thread in flight (np.load, PIL and OpenCV
    release the GIL while they read and decode)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seqkit-pack-samples")
    pending: deque = deque()
    todo = iter(chunks)
    try:
        for chunk in itertools.islice(todo, 2 * workers):
            pending.append(pool.submit(task, chunk))
        while pending:
            result = pending.popleft().result()
            for chunk in itertools.islice(todo, 1):
                pending.append(pool.submit(task, chunk))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class SharedWork:
    """The chunks in `workers` worker processes, with this process loading too while it waits.

    Iterate it for the results in chunk order. `fell_back` is the reason, if the workers could not
    start (their loader failed to load there) and the chunks they had taken were loaded in threads.
    """

    def __init__(self, task: LoadTask, shipped: Shipped, chunks: list, workers: int, on_fallback: Callable[[str], None] | None = None):
        self.task = task
        self.shipped = shipped  # Indexed(task), as ship() pickled it for the workers
        self.chunks = chunks
        self.workers = max(1, min(workers, len(chunks)))
        self.on_fallback = on_fallback
        self.fell_back: str | None = None
        self._lock = threading.Lock()
        self._next_claim = 0
        self._stop = threading.Event()
        self._from_pool: queue.Queue = queue.Queue()
        self._pool_taken: set[int] = set()  # chunks sent to a worker
        self._tickets: list[_Ticket] = []
        self._pool_done: set[int] = set()
        self._fallback: Iterator | None = None  # (index, result) of the chunks left, after a fallback
        self._fallback_threads: Iterator | None = None
        self.keys_here = 0  # keys loaded by this process (not by the workers, nor by fallback threads)

    def _claim(self) -> int | None:
        with self._lock:
            if self._next_claim >= len(self.chunks) or self._stop.is_set():
                return None
            index = self._next_claim
            self._next_claim += 1
            return index

    def _claim_for_pool(self) -> int | None:
        index = self._claim()
        if index is not None:
            self._pool_taken.add(index)
        return index

    def _pool_items(self, hidden: MainHidden) -> Iterator["_Ticket"]:
        hidden.restore()  # ordered_map asks for its first item once its workers have been started
        while not self._stop.is_set() and self._next_claim < len(self.chunks):
            ticket = _Ticket(self)
            self._tickets.append(ticket)  # (item i of the pool is ticket i)
            yield ticket

    def _run_pool(self, shipped) -> None:
        """The helper thread: feed the pool, pass its results on, stop it when told to."""
        hidden = MainHidden()
        results = None
        try:
            with hidden:
                results = ordered_map(shipped, self._pool_items(hidden), self.workers)
                for _ticket, (index, result) in results:
                    if index is not None:  # (None: nothing was left to take when it was sent)
                        self._from_pool.put(("result", index, result))
                    if self._stop.is_set():
                        break
        except BaseException as exc:  # handed to the main thread, which raises it or falls back
            self._from_pool.put(("error", exc, None))
        finally:
            if results is not None:
                results.close()  # a stop mid-way: the workers are stopped now, not after all chunks
            self._from_pool.put(("done", None, None))

    def __iter__(self) -> Iterator[ChunkResult]:
        thread = threading.Thread(target=self._run_pool, args=(self.shipped,), name="seqkit-pack-samples-pool", daemon=True)
        thread.start()
        pending: dict[int, ChunkResult] = {}
        held = 0  # bytes of results in `pending`
        pool_running = True
        try:
            for next_out in range(len(self.chunks)):
                while next_out not in pending:
                    if self._fallback is not None:  # (yields the chunks left, smallest index first)
                        index, result = next(self._fallback)
                    else:
                        message = self._take(block=False) if pool_running else None
                        index = None
                        if message is None and held < PENDING_BYTES:
                            index = self._claim()  # nothing to hand on yet: load a chunk here
                        if index is not None:
                            result = self.task(self.chunks[index])
                            self.keys_here += len(self.chunks[index])
                        else:
                            if message is None:
                                if not pool_running:
                                    raise RuntimeError(f"chunk {next_out} was taken by the worker processes, which ended without it")
                                message = self._take(block=True)
                            kind, index, result = message
                            if kind == "done":
                                pool_running = False
                                continue
                            if kind == "error":
                                self._fall_back_or_raise(index, pending)
                                continue
                            self._pool_done.add(index)
                    pending[index] = result
                    held += _nbytes(result)
                result = pending.pop(next_out)
                held -= _nbytes(result)
                yield result
        finally:
            self._stop.set()
            if self._fallback_threads is not None:
                self._fallback_threads.close()
            while thread.is_alive():
                thread.join(_JOIN_SECONDS)

    def _take(self, block: bool):
        try:
            return self._from_pool.get(block=block)
        except queue.Empty:
            return None

    def _fall_back_or_raise(self, error: BaseException, pending: dict) -> None:
        """Workers that could not start (before any result): the chunks they took, and those nobody
        took yet, are loaded in threads from now on."""
        index = self._tickets[error.index].index if isinstance(error, WorkerError) and error.index is not None and error.index < len(self._tickets) else None
        if index is not None:
            chunk = self.chunks[index]
            raise WorkerError(
                f"{error} (the chunk of {len(chunk)} keys from {chunk[0][1]!r} to {chunk[-1][1]!r})",
                index=error.index,
                worker_traceback=error.worker_traceback,
            ) from error
        if not isinstance(error, WorkerError) or error.index is not None or self._pool_done:
            raise error
        self.fell_back = f"worker processes could not start ({str(error).splitlines()[0]})"
        if self.on_fallback is not None:
            self.on_fallback(self.fell_back)
        left = [index for index in sorted(self._pool_taken) if index not in pending]
        while (index := self._claim()) is not None:
            left.append(index)
        left.sort()
        self._fallback_threads = in_threads(self.task, [self.chunks[i] for i in left], self.workers)
        self._fallback = zip(left, self._fallback_threads)


class _Ticket:
    """An item of the pool that becomes a chunk (index, keys) when it is pickled to be sent to a worker,
    taking the next chunk nobody took yet: (None, []) if none is left."""

    def __init__(self, work: SharedWork):
        self.work = work
        self.index: int | None = None
        self.sent = False

    def __reduce__(self):
        if not self.sent:
            self.index, self.sent = self.work._claim_for_pool(), True
        chunk = self.work.chunks[self.index] if self.index is not None else []
        return (tuple, ((self.index, chunk),))


@dataclass
class Indexed:
    """What the workers run: the task on a chunk, its index passed back with the result."""

    task: LoadTask

    def __call__(self, item: tuple[int | None, list]) -> tuple[int | None, ChunkResult | None]:
        index, chunk = item
        return index, (self.task(chunk) if index is not None else None)


def _nbytes(result: ChunkResult) -> int:
    return sum(leaf.nbytes for leaf in result.leaves or ())
