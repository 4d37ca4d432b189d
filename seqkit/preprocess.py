"""preprocess_once: run deterministic per-sample preprocessing over a whole dataset once, not per batch.

Naive generators redo the same scaling, normalising or one-hot encoding in every `__getitem__` of every
epoch. Done once over large chunks it is vectorised, can use several processes, and with `cache_dir`
survives across runs as a memory-mapped dataset (seqkit.store: `.npy` files plus a manifest with
checksums) keyed by a fingerprint of the data and of everything the function reaches.

This module does not import Keras (worker processes import it); `PreprocessedSequence` lives in
`seqkit.preprocessed` and is re-exported here on first use.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import re
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seqkit import store
from seqkit.arrays import check_count, check_processes, common_length, leaf_names, load_structure
from seqkit.fingerprint import FingerprintError, array_digest, function_digest
from seqkit.progress import LazyProgress
from seqkit.structure import TreeDef, flatten, unflatten

CHUNK_BYTES = 4 << 20  # input bytes per chunk: big enough to vectorise, small enough that the allocator reuses its buffers
_PROBE_ROWS = 16
_CACHE_FORMAT = "2"  # bump when the cache layout or the fingerprint changes: 2 = seqkit.store datasets


class PreprocessError(RuntimeError):
    """The preprocessing function failed on part of the data (the chunk's rows are in the message)."""


class CacheWarning(UserWarning):
    """A cache was found damaged (the message says which file and how) and is being rebuilt."""


def __getattr__(name: str):
    if name == "PreprocessedSequence":
        from seqkit.preprocessed import PreprocessedSequence

        return PreprocessedSequence
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def function_name(fn: Callable) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", None)
    return name or type(fn).__qualname__


def preprocess_once(
    fn: Callable[[Any], Any],
    x: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    processes: int | None = None,
    verify: bool = True,
    verify_cache: bool = False,
) -> Any:
    """Apply the row-wise function `fn` to all of `x` (an array, `.npy` path, memmap, or a dict/tuple of
    them) chunk by chunk and return the result (same structure as `fn`'s output).

    `fn` receives read-only chunks of `x` and must return one output row per input row. `verify` checks
    on a small probe that a row's output does not depend on the other rows of its batch (batch
    statistics, randomness), because computing such a function once would change the results. With
    `cache_dir` (`~` is expanded) the result is written there as a seqkit dataset and reused,
    memory-mapped, by later calls with the same data and the same function: a fingerprint of the data
    and of everything `fn` reaches (code, closure values, globals, project modules' attributes, class
    attributes, for a bound method the attributes of `self` it reads). What cannot be fingerprinted is
    refused with FingerprintError. A damaged cache (file sizes and headers are checked on every reuse;
    every checksum too with `verify_cache=True`) is rebuilt with a CacheWarning. `processes` > 1 runs
    chunks in a process pool (then `fn` must be picklable: a module-level function or a
    functools.partial of one).
    """
    if not callable(fn):
        raise TypeError(f"preprocess_once: fn must be callable, got {fn!r}")
    name = function_name(fn)
    leaves, treedef = load_structure(x, "x")
    n = common_length(list(zip(leaf_names(x, "x"), leaves)), "all arrays of x")
    views = [np.asarray(leaf) for leaf in leaves]
    rows = _chunk_rows(chunk_size, views, n)
    processes = check_processes(processes, fn, repr(name), "preprocess_once")
    if cache_dir is None:
        if verify:
            check_rowwise(fn, views, treedef, n)
        return _build(fn, name, views, treedef, n, rows, processes, sink=_MemorySink(n))
    cache_dir = store.expand(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    store.sweep(cache_dir)  # temps of builds killed before they could clean up
    try:
        key = cache_key(fn, views, treedef)
    except FingerprintError as exc:
        raise FingerprintError(
            f"preprocess_once(cache_dir={os.fspath(cache_dir)!r}): {exc}. A cache keyed without it could be reused "
            "after it changes, so nothing is cached. Pass cache_dir=None, or make the function reach only "
            "plain values, arrays, functions and objects with attributes"
        ) from None
    path = cache_dir / f"{_safe(name)}-{key[:32]}"
    cached = _load_cache(path, key, verify_cache)
    if cached is not None:
        return cached  # same data, same function: it passed the row-wise check when it was built
    if verify:
        check_rowwise(fn, views, treedef, n)
    return _build(fn, name, views, treedef, n, rows, processes, sink=_StoreSink(path, n, key))


def cache_key(fn: Callable, views: list[np.ndarray], treedef: TreeDef) -> str:
    parts = [_CACHE_FORMAT, repr(treedef), function_digest(fn)] + [array_digest(v) for v in views]
    return array_digest(np.frombuffer("|".join(parts).encode(), dtype=np.uint8))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:60] or "fn"


def _chunk_rows(chunk_size: int | None, views: list[np.ndarray], n: int) -> int:
    if chunk_size is not None:
        return check_count(chunk_size, "chunk_size")
    row_bytes = sum(v.itemsize * int(np.prod(v.shape[1:], dtype=np.int64)) for v in views) or 1
    return max(1, min(n, CHUNK_BYTES // row_bytes))


def _chunk(views: list[np.ndarray], treedef: TreeDef, start: int, stop: int) -> Any:
    pieces = []
    for view in views:
        piece = view[start:stop]
        piece.flags.writeable = False  # fn must not scribble over the user's data (or the cache)
        pieces.append(piece)
    return unflatten(treedef, pieces)


def _apply(fn: Callable, chunk: Any) -> Any:
    """What a worker runs; module level so that spawn/forkserver children can unpickle it."""
    return fn(chunk)


# -- row-wise check ------------------------------------------------------------------------------


def check_rowwise(fn: Callable, views: list[np.ndarray], treedef: TreeDef, n: int) -> None:
    """Refuse functions whose output for a row depends on the other rows passed with it.

    Two overlapping windows of the same rows go through `fn`; a row-wise function gives the same rows
    in both. Batch statistics (`x - x.mean()`) or random draws do not, and computing them once over the
    dataset would silently differ from the per-batch results the user had.
    """
    name = function_name(fn)
    if n < 3:
        return
    m = min(n, _PROBE_ROWS)
    whole = _run_probe(fn, name, views, treedef, 0, m)
    tail = _run_probe(fn, name, views, treedef, 1, m)
    single = _run_probe(fn, name, views, treedef, m - 1, m)
    for (window, reference), (label) in (
        ((tail, [leaf[1:] for leaf in whole]), f"fn(x[1:{m}]) differs from fn(x[0:{m}])[1:]"),
        ((single, [leaf[m - 1 :] for leaf in whole]), f"fn(x[{m - 1}:{m}]) differs from fn(x[0:{m}])[{m - 1}:]"),
    ):
        if not all(_same(a, b) for a, b in zip(window, reference)):
            raise ValueError(
                f"preprocess function {name!r} is not row-wise: {label}. Its output for a sample depends on the "
                "other samples passed with it (batch statistics such as x.mean() or x.std(), or random draws). "
                "Computing it once over the whole dataset would change the results compared with computing it "
                "per batch, so it is not cached. Compute such statistics once (e.g. over the training set) and "
                "use them as constants, keep random augmentation in the model, or pass verify=False if the "
                "whole-dataset result is what you want."
            )


def _run_probe(fn, name, views, treedef, start, stop) -> list[np.ndarray]:
    out = _call(fn, name, _chunk(views, treedef, start, stop), start, stop)
    return [leaf for leaf in out[0]]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.inexact):
        return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))
    return bool(np.array_equal(a, b))


def _call(fn: Callable, name: str, chunk: Any, start: int, stop: int, result: Any = None, computed: bool = False):
    """fn on one chunk, with errors that say which rows; returns (output leaves, output structure)."""
    if not computed:
        try:
            result = fn(chunk)
        except Exception as exc:
            raise PreprocessError(f"preprocess function {name!r} failed on chunk rows {start}:{stop}: {exc!r}") from exc
    return _check_output(result, name, start, stop)


def _check_output(result: Any, name: str, start: int, stop: int) -> tuple[list[np.ndarray], TreeDef]:
    out_leaves, out_def = flatten(result)
    arrays = []
    for leaf in out_leaves:
        array = np.asarray(leaf)
        if array.dtype == object:
            raise TypeError(f"preprocess function {name!r} returned an object-dtype array for chunk rows {start}:{stop}")
        if array.ndim == 0 or len(array) != stop - start:
            got = "a scalar" if array.ndim == 0 else f"{len(array)} rows"
            raise ValueError(
                f"preprocess function {name!r} returned {got} for chunk rows {start}:{stop} ({stop - start} rows); "
                "it must return exactly one output row per input row"
            )
        arrays.append(array)
    return arrays, out_def


# -- building --------------------------------------------------------------------------------------


def _build(fn, name, views, treedef, n, rows, processes, sink) -> Any:
    bounds = [(start, min(start + rows, n)) for start in range(0, n, rows)] or [(0, 0)]
    progress = LazyProgress(n, f"preprocessing with {name}")
    try:
        for start, stop, result in _results(fn, views, treedef, bounds, processes):
            leaves, out_def = _call(fn, name, None, start, stop, result, computed=True)
            sink.write(start, stop, leaves, out_def, name)
            progress.advance(stop - start)
        return sink.finish()
    except BaseException:
        sink.abort()  # also on KeyboardInterrupt: no half-written cache may ever be taken for a full one
        raise
    finally:
        progress.close()


def _results(fn, views, treedef, bounds, processes):
    if processes <= 1 or len(bounds) == 1:
        name = function_name(fn)
        for start, stop in bounds:
            try:
                result = fn(_chunk(views, treedef, start, stop))
            except Exception as exc:
                raise PreprocessError(f"preprocess function {name!r} failed on chunk rows {start}:{stop}: {exc!r}") from exc
            yield start, stop, result
        return
    yield from _pool_results(fn, views, treedef, bounds, processes)


def _pool_results(fn, views, treedef, bounds, processes):
    # forkserver/spawn, never fork: the parent may hold TensorFlow's threads, which fork would copy broken.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    name = function_name(fn)
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(method))
    pending: deque = deque()
    todo = iter(bounds)
    try:
        for start, stop in todo:
            pending.append((start, stop, pool.submit(_apply, fn, _chunk(views, treedef, start, stop))))
            if len(pending) >= 2 * processes:
                break
        while pending:
            start, stop, future = pending.popleft()
            try:
                result = future.result()
            except Exception as exc:
                raise PreprocessError(f"preprocess function {name!r} failed on chunk rows {start}:{stop}: {exc!r}") from exc
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((*nxt, pool.submit(_apply, fn, _chunk(views, treedef, *nxt))))
            yield start, stop, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Sink:
    """Where the chunks of a build go. The first chunk fixes the output's structure, shapes and dtypes;
    every later chunk must match it. Subclasses say how outputs are opened (`_start`) and appended."""

    def __init__(self, n: int):
        self.n = n
        self.treedef: TreeDef | None = None
        self.kinds: list[tuple] = []

    def write(self, start: int, stop: int, leaves: list[np.ndarray], treedef: TreeDef, name: str) -> None:
        kinds = [(leaf.shape[1:], leaf.dtype) for leaf in leaves]
        if self.treedef is None:
            self.treedef, self.kinds = treedef, kinds
            self._start(leaves)
        elif treedef != self.treedef or kinds != self.kinds:
            raise ValueError(
                f"preprocess function {name!r} returned a different structure, shape or dtype for chunk rows "
                f"{start}:{stop} than for the first chunk; every chunk must give the same kind of output"
            )
        self._append(start, stop, leaves)


class _MemorySink(_Sink):
    """Collects the result in memory.

    On Linux each output is written with write(2) into an anonymous in-memory file and mapped read-only at
    the end: the kernel fills page-sized buffers in bulk, where filling a fresh numpy array takes one page
    fault per 4 KiB, which on virtual machines doubled the time of a whole build. The result is
    read-only, like a reused cache.
    """

    def __init__(self, n: int):
        super().__init__(n)
        self.outputs: list = []  # file descriptors, or arrays where there are no memfds

    def _start(self, leaves: list[np.ndarray]) -> None:
        self.outputs = [self._open(leaf) for leaf in leaves]

    def _open(self, leaf: np.ndarray):
        if not hasattr(os, "memfd_create") or self.n * leaf[:1].nbytes == 0:
            return np.empty((self.n, *leaf.shape[1:]), dtype=leaf.dtype)
        return os.memfd_create("seqkit-preprocess", os.MFD_CLOEXEC)

    def _append(self, start: int, stop: int, leaves: list[np.ndarray]) -> None:
        for output, leaf in zip(self.outputs, leaves):
            if isinstance(output, np.ndarray):
                output[start:stop] = leaf
            else:
                _write_all(output, np.ascontiguousarray(leaf))

    def finish(self) -> Any:
        arrays = []
        for output, (shape, dtype) in zip(self.outputs, self.kinds):
            if isinstance(output, np.ndarray):
                arrays.append(output)
                continue
            buffer = mmap.mmap(output, 0, prot=mmap.PROT_READ)  # the array keeps the map alive
            arrays.append(np.frombuffer(buffer, dtype=dtype).reshape((self.n, *shape)))
        self.abort()
        return unflatten(self.treedef, arrays)

    def abort(self) -> None:
        for output in self.outputs:
            if not isinstance(output, np.ndarray):
                os.close(output)
        self.outputs = []


def _write_all(fd: int, array: np.ndarray) -> None:
    view = memoryview(array).cast("B")
    while view:
        view = view[os.write(fd, view):]


class _StoreSink(_Sink):
    """Streams chunks into a cache dataset (seqkit.store) with plain sequential writes, checksummed on
    the way; the dataset becomes visible only when the manifest is committed. Leaves are arrays "0",
    "1", ... and the output structure is in the manifest."""

    def __init__(self, path: Path, n: int, key: str):
        super().__init__(n)
        self.path = path
        self.key = key
        self.writer: store.DatasetWriter | None = None

    def _start(self, leaves: list[np.ndarray]) -> None:
        self.writer = store.DatasetWriter(self.path, fingerprint=self.key, structure=self.treedef, meta={"kind": "preprocess cache"})
        for i in range(len(leaves)):
            self.writer.array(str(i))

    def _append(self, start: int, stop: int, leaves: list[np.ndarray]) -> None:
        for i, leaf in enumerate(leaves):
            self.writer.append(str(i), leaf)

    def finish(self) -> Any:
        dataset = self.writer.commit()
        self.writer = None
        return dataset.tree()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _load_cache(path: Path, key: str, verify_cache: bool) -> Any:
    """The cached result at `path`, memory-mapped; None if there is none or it is damaged (warned)."""
    try:
        return store.open_dataset(path, fingerprint=key, verify=verify_cache).tree()
    except FileNotFoundError:
        return None
    except (store.StoreError, ValueError, OSError) as exc:
        warnings.warn(CacheWarning(f"preprocess cache {path} is damaged ({exc}); rebuilding it"), stacklevel=3)
        return None
