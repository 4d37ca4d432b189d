"""Ordered work in a process pool, started with forkserver/spawn (never fork: the parent may hold
TensorFlow's threads, which a forked child inherits broken), with few items in flight so memory stays flat."""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator


def start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], processes: int) -> Iterator[tuple[Any, Any]]:
    """Yield `(item, fn(item))` in the order of `items`; exceptions come back as raised by `fn`.

    With `processes` <= 1 it runs inline. At most 2 * processes items are submitted ahead, so a long
    iterable of big chunks never piles up in memory; the pool is shut down on exit, error or interrupt.
    """
    if processes <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(start_method()))
    pending: deque = deque()
    todo = iter(items)
    try:
        for item in todo:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * processes:
                break
        while pending:
            item, future = pending.popleft()
            result = future.result()
            for nxt in todo:
                pending.append((nxt, pool.submit(fn, nxt)))
                break
            yield item, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
