"""preprocess_once: run deterministic per-sample preprocessing over a whole dataset once, not per batch.

Naive generators redo the same scaling, normalising or one-hot encoding in every `__getitem__` of every
epoch. Done once over large chunks it is vectorised, can use several processes, and with `cache_dir`
survives across runs as a memory-mapped dataset (seqkit.store: `.npy` files plus a manifest with
checksums) keyed by a fingerprint of the data and of everything the function reaches.

Two forms: `fn` receives chunks of rows of `x` (the batch form; `x` may be a dict/tuple of arrays), or,
with `per_sample=True`, one sample `x[i]` at a time, as a generator's per-sample code does, and the
results are stacked. With `shard_mb` or a cluster engine ("dask", "ray") the cache is written as shards,
one task per shard (seqkit.shardwriter), identical on every engine.

This module does not import Keras (worker processes import it); `PreprocessedSequence` lives in
`seqkit.preprocessed` and is re-exported here on first use.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seqkit import store
from seqkit.arrays import check_count, check_processes, common_length, leaf_names
from seqkit.engines import check_engine, open_engine
from seqkit.fingerprint import FingerprintError, array_digest, function_digest
from seqkit.lifeline import check_timeout
from seqkit.pool import ITEM_TIMEOUT, ordered_map
from seqkit.progress import LazyProgress
from seqkit.sharded import ShardedArray, load_leaves
from seqkit.shardwriter import InlineRows, Output, ShardedRows, TreeRows, add_results, row_source, run_shards, tasks_for
from seqkit.structure import TreeDef, flatten, unflatten

CHUNK_BYTES = 4 << 20  # input bytes per chunk: big enough to vectorise, small enough that the allocator reuses its buffers
_SAMPLES_PER_CHUNK = 64  # per-sample inputs that are not arrays: samples per chunk (a task for a worker)
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
    per_sample: bool = False,
    engine: str = "local",
    scheduler: Any = None,
    shard_mb: float | None = None,
    timeout: float | None = ITEM_TIMEOUT,
) -> Any:
    """Apply the row-wise function `fn` to all of `x` (an array, `.npy` path, memmap, sharded array, or a
    dict/tuple of them) chunk by chunk and return the result (same structure as `fn`'s output).

    `fn` receives read-only chunks of `x` and must return one output row per input row. `verify` checks
    on a small probe that a row's output does not depend on the other rows of its batch (batch
    statistics, randomness), because computing such a function once would change the results. With
    `cache_dir` (`~` is expanded) the result is written there as a seqkit dataset and reused,
    memory-mapped, by later calls with the same data and the same function: a fingerprint of the data
    and of everything `fn` reaches (code, closure values, globals, project modules' attributes, class
    attributes, for a bound method the attributes of `self` it reads). What cannot be fingerprinted is
    refused with FingerprintError. A damaged cache (file sizes and headers are checked on every reuse;
    every checksum too with `verify_cache=True`) is rebuilt with a CacheWarning. `processes` > 1 runs
    chunks in worker processes (seqkit.pool: then `fn` must be picklable, a module-level function or a
    functools.partial of one; a chunk may take `timeout` seconds).

    `per_sample=True`: `fn` receives one sample, `x[i]`, with `x` indexed exactly as a generator indexes
    it (`x` may be an array, a memmap, a list of arrays, or any sequence with `len` and integer
    indexing; it is not read as a structure), and the results, which must all have one shape and
    dtype, are stacked into one array. No row-wise probe is needed: such a function is row-wise.

    `shard_mb` writes the cache as shards of about that many MB, one task per shard; `engine="dask"`
    or `"ray"` runs those tasks on a cluster (`scheduler`: a Dask address or `distributed.Client`, a
    Ray address; None starts a local one of `processes` workers) and needs a `cache_dir` that every
    worker sees; `shard_mb` then defaults to 256. Every engine writes the same bytes. A sharded result
    is returned as `seqkit.ShardedArray`s (one file: a memmap).
    """
    if not callable(fn):
        raise TypeError(f"preprocess_once: fn must be callable, got {fn!r}")
    name = function_name(fn)
    check_engine(engine, scheduler)
    check_timeout(timeout)
    shard_mb = store.check_shard_mb(shard_mb)
    if engine != "local" and shard_mb is None:
        shard_mb = store.DEFAULT_SHARD_MB  # a cluster engine runs one task per shard
    if shard_mb is not None and cache_dir is None:
        raise ValueError(
            f"preprocess_once(engine={engine!r}, shard_mb={shard_mb:g}) writes its result as shards into cache_dir: pass "
            "cache_dir, a folder on storage that every worker sees"
        )
    data = _Samples(x) if per_sample else _Rows(x)
    rows = data.chunk_rows(chunk_size)
    if engine == "local":
        processes = check_processes(processes, fn, repr(name), "preprocess_once")
    elif processes is not None:
        processes = check_count(processes, "processes")
    run = _Run(engine, scheduler, processes, timeout, shard_mb)
    if cache_dir is None:
        if verify and not per_sample:
            check_rowwise(fn, data.views, data.treedef, data.n)
        return _build(data.work(fn, name), data.read, data.n, rows, run, _MemorySink(data.n), name)
    cache_dir = store.expand(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    store.sweep(cache_dir)  # temps of builds killed before they could clean up
    try:
        key = data.cache_key(fn)
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
    if verify and not per_sample:
        check_rowwise(fn, data.views, data.treedef, data.n)
    if shard_mb is not None:
        return _build_sharded(data, fn, name, path, key, rows, run)
    return _build(data.work(fn, name), data.read, data.n, rows, run, _StoreSink(path, data.n, key), name)


@dataclass(frozen=True)
class _Run:
    """Where the work runs: processes here (or a cluster for shards), how long a task may take."""

    engine: str
    scheduler: Any
    processes: int | None
    timeout: float | None
    shard_mb: float | None

    def open(self):
        return open_engine(self.engine, scheduler=self.scheduler, processes=self.processes, timeout=self.timeout)


class _Rows:
    """The batch form's input: the leaves of `x` (arrays, memmaps, sharded arrays) and their structure."""

    def __init__(self, x: Any):
        leaves, self.treedef = load_leaves(x, "x")
        self.n = common_length(list(zip(leaf_names(x, "x"), leaves)), "all arrays of x")
        self.views = [leaf if isinstance(leaf, ShardedArray) else np.asarray(leaf) for leaf in leaves]
        self.leaves = leaves  # memmaps kept as such: tasks elsewhere map their files again

    def chunk_rows(self, chunk_size: int | None) -> int:
        return _chunk_rows(chunk_size, self.views, self.n)

    def read(self, start: int, stop: int) -> Any:
        return _chunk(self.views, self.treedef, start, stop)

    def source(self, start: int, stop: int) -> Any:
        return TreeRows(self.treedef, [row_source(leaf, start, stop) for leaf in self.leaves])

    def work(self, fn: Callable, name: str) -> "_BatchWork":
        return _BatchWork(fn, name)

    def probe(self, fn: Callable, name: str) -> tuple[list[np.ndarray], TreeDef]:
        return _call(fn, name, self.read(0, 1), 0, 1)

    def cache_key(self, fn: Callable) -> str:
        return cache_key(fn, self.views, self.treedef)


class _Samples:
    """The per-sample form's input: `x` as the user indexes it, one `x[i]` per call of `fn`."""

    def __init__(self, x: Any):
        if isinstance(x, (str, bytes, os.PathLike, dict)) or not hasattr(x, "__len__") or not hasattr(x, "__getitem__"):
            raise TypeError(
                f"preprocess_once(per_sample=True): x must be a sequence of samples with len() and x[i] (an array, a "
                f"list of arrays, a dataset object), got {type(x).__name__}"
            )
        self.x = x
        self.n = len(x)
        if self.n == 0:
            raise ValueError("preprocess_once(per_sample=True): x has no samples, so there is nothing to stack")
        # Arrays are read in slices (their rows are x[i]); anything else is indexed one sample at a time.
        self.array = x if isinstance(x, (np.ndarray, ShardedArray)) else None
        self.expected: tuple | None = None  # shape and dtype of fn(x[0]), which every sample must match

    def chunk_rows(self, chunk_size: int | None) -> int:
        if chunk_size is not None:
            return check_count(chunk_size, "chunk_size")
        if self.array is not None:
            row = self.array.itemsize * int(np.prod(self.array.shape[1:], dtype=np.int64))
            return max(1, min(self.n, CHUNK_BYTES // max(1, row)))
        return min(self.n, _SAMPLES_PER_CHUNK)

    def read(self, start: int, stop: int) -> Any:
        if self.array is not None:
            rows = self.array[start:stop]
            if isinstance(rows, np.ndarray):
                rows = rows.view()
                rows.flags.writeable = False  # fn must not scribble over the user's data
            return rows
        return [self.x[i] for i in range(start, stop)]

    def source(self, start: int, stop: int) -> Any:
        if isinstance(self.array, ShardedArray):
            return ShardedRows(self.array)
        if self.array is not None:
            return row_source(self.array, start, stop)
        if isinstance(self.x, (list, tuple)):
            return InlineRows(start, self.x[start:stop])
        return InlineRows(start, self.read(start, stop))

    def work(self, fn: Callable, name: str) -> "_SampleWork":
        if self.expected is None:
            self.probe(fn, name)
        return _SampleWork(fn, name, *self.expected)

    def probe(self, fn: Callable, name: str) -> tuple[list[np.ndarray], TreeDef]:
        out = _sample_output(fn, name, self.read(0, 1)[0], 0)
        self.expected = (out.shape, out.dtype.str)
        return [out[None]], TreeDef("leaf")

    def cache_key(self, fn: Callable) -> str:
        parts = [_CACHE_FORMAT, "per-sample", function_digest(fn), sequence_digest(self.x)]
        return array_digest(np.frombuffer("|".join(parts).encode(), dtype=np.uint8))


def cache_key(fn: Callable, views: list[np.ndarray], treedef: TreeDef) -> str:
    parts = [_CACHE_FORMAT, repr(treedef), function_digest(fn)] + [_data_digest(v) for v in views]
    return array_digest(np.frombuffer("|".join(parts).encode(), dtype=np.uint8))


def _data_digest(array: Any) -> str:
    # A sharded input is identified by its shards' checksums, written with them: nothing is read.
    return array.digest() if isinstance(array, ShardedArray) else array_digest(array)


def sequence_digest(x: Any) -> str:
    """The fingerprint of a per-sample input: an array's contents, a list's items one by one (an item
    that names a file also by the file's size and modification time, since fn will read it), or, for
    any other sequence object, its state as seqkit.fingerprint sees it."""
    if isinstance(x, (np.ndarray, ShardedArray)):
        return _data_digest(x)
    if not isinstance(x, (list, tuple)):
        return "object:" + function_digest(x)  # not only functions: any object, by its class and state
    h = hashlib.sha256(f"{type(x).__name__}[{len(x)}]".encode())
    for item in x:
        if isinstance(item, np.ndarray):
            h.update(f"|array:{array_digest(item)}".encode())
        elif isinstance(item, (str, os.PathLike)):
            text = os.fspath(item)
            try:
                stat = os.stat(store.expand(text))
                h.update(f"|path:{text!r}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            except (OSError, ValueError):
                h.update(f"|str:{text!r}".encode())
        elif isinstance(item, (int, float, complex, bool, bytes, type(None), np.generic)):
            h.update(f"|{type(item).__name__}:{item!r}".encode())
        else:
            h.update(f"|object:{function_digest(item)}".encode())
    return h.hexdigest()


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


@dataclass(frozen=True)
class _BatchWork:
    """`fn` over one chunk of rows, its output checked: one row per input row, no Python objects."""

    fn: Callable
    name: str

    def __call__(self, chunk: Any, start: int, stop: int) -> Output:
        leaves, treedef = _call(self.fn, self.name, chunk, start, stop)
        return Output(leaves, treedef)

    def describe_mismatch(self, start: int, stop: int) -> str:
        return (
            f"preprocess function {self.name!r} returned a different structure, shape or dtype for chunk rows "
            f"{start}:{stop} than for the first chunk; every chunk must give the same kind of output"
        )


@dataclass(frozen=True)
class _SampleWork:
    """`fn` over the samples of one chunk, one call each, stacked; every result must have the shape and
    dtype that `fn(x[0])` had, so a mismatch names the first sample that differs."""

    fn: Callable
    name: str
    shape: tuple
    dtype: str

    def __call__(self, samples: Any, start: int, stop: int) -> Output:
        out = None
        for k, sample in enumerate(samples):
            result = _sample_output(self.fn, self.name, sample, start + k)
            if result.shape != self.shape or result.dtype.str != self.dtype:
                raise ValueError(
                    f"preprocess function {self.name!r} returned shape {result.shape} {result.dtype} for x[{start + k}], but "
                    f"shape {self.shape} {np.dtype(self.dtype)} for x[0]; per-sample results must all have one shape and "
                    "dtype to be stacked into one array (resize or pad them to a common shape)"
                )
            if out is None:
                out = np.empty((stop - start, *self.shape), dtype=result.dtype)
            out[k] = result
        return Output([out])

    def describe_mismatch(self, start: int, stop: int) -> str:
        return f"preprocess function {self.name!r} returned a different shape or dtype for x[{start}] than for x[0]"


def _sample_output(fn: Callable, name: str, sample: Any, index: int) -> np.ndarray:
    try:
        result = fn(sample)
    except Exception as exc:
        raise PreprocessError(f"preprocess function {name!r} failed on sample x[{index}]: {exc!r}") from exc
    out = np.asarray(result)
    if out.dtype == object:
        raise TypeError(
            f"preprocess function {name!r} returned {type(result).__name__} for x[{index}], which is not an array of "
            "numbers (per_sample=True stacks one array per sample)"
        )
    return out


@dataclass(frozen=True)
class _Job:
    """What a worker process runs for one chunk: (start, stop, chunk) -> the work's output."""

    work: Callable

    def __call__(self, job: tuple) -> Output:
        start, stop, chunk = job
        return self.work(chunk, start, stop)


def _build(work, read, n, rows, run: _Run, sink, name) -> Any:
    bounds = [(start, min(start + rows, n)) for start in range(0, n, rows)] or [(0, 0)]
    progress = LazyProgress(n, f"preprocessing with {name}")
    try:
        for start, stop, out in _outputs(work, read, bounds, run):
            sink.write(start, stop, out.leaves, out.treedef, work)
            progress.advance(stop - start)
        return sink.finish()
    except BaseException:
        sink.abort()  # also on KeyboardInterrupt: no half-written cache may ever be taken for a full one
        raise
    finally:
        progress.close()


def _outputs(work, read, bounds, run: _Run):
    processes = run.processes or 1
    if processes <= 1 or len(bounds) == 1:
        for start, stop in bounds:
            yield start, stop, work(read(start, stop), start, stop)
        return
    # seqkit.pool's workers: forkserver, a timeout per chunk, and they die with this process.
    jobs = ((start, stop, read(start, stop)) for start, stop in bounds)
    for (start, stop, _chunk), out in ordered_map(_Job(work), jobs, processes, timeout=run.timeout):
        yield start, stop, out


def _build_sharded(data, fn, name: str, path: Path, key: str, rows: int, run: _Run) -> Any:
    """The cache as shards of about `run.shard_mb` MB, one task per shard on `run.engine`; the result
    (ShardedArrays) is read back from the committed dataset."""
    if data.n == 0:
        raise ValueError("preprocess_once: x has no rows, so there is nothing to write as shards")
    leaves, treedef = data.probe(fn, name)
    row_bytes = max(leaf[:1].nbytes for leaf in leaves) if leaves else 1
    work = data.work(fn, name)
    writer = store.DatasetWriter(path, fingerprint=key, structure=treedef, meta={"kind": "preprocess cache", "shard_mb": run.shard_mb})
    try:
        tasks = tasks_for(data.n, store.rows_per_shard(row_bytes, run.shard_mb), data.source, work, writer.stage, None, rows)
        with run.open() as engine:
            results = run_shards(engine, tasks, total=data.n, description=f"preprocessing with {name}")
        if any(r.treedef is not None and r.treedef != results[0].treedef for r in results) or len(results[0].names) != treedef.num_leaves:
            raise ValueError(work.describe_mismatch(0, 1))
        add_results(writer, results)
        dataset = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return dataset.tree()


class _Sink:
    """Where the chunks of a build go. The first chunk fixes the output's structure, shapes and dtypes;
    every later chunk must match it. Subclasses say how outputs are opened (`_start`) and appended."""

    def __init__(self, n: int):
        self.n = n
        self.treedef: TreeDef | None = None
        self.kinds: list[tuple] = []

    def write(self, start: int, stop: int, leaves: list[np.ndarray], treedef: TreeDef | None, work: Any) -> None:
        treedef = treedef if treedef is not None else TreeDef("leaf")
        kinds = [(leaf.shape[1:], leaf.dtype) for leaf in leaves]
        if self.treedef is None:
            self.treedef, self.kinds = treedef, kinds
            self._start(leaves)
        elif treedef != self.treedef or kinds != self.kinds:
            raise ValueError(work.describe_mismatch(start, stop))
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
