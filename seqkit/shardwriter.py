"""One shard per task: a task reads its rows, computes, and writes its shard files; the driver runs the
tasks on an engine (seqkit.engines) and commits what they wrote.

`pack` and `preprocess_once` come here whenever their output is sharded (a `shard_mb`, or a Dask or
Ray engine). The same task code runs on every engine, which is why their outputs are identical byte
for byte:
  * the shards are planned up front, from input row counts (`plan`), never from what a worker saw;
  * a task streams its rows through `NpyFileWriter` into a temp file in the writer's stage folder (a
    folder every worker sees), renames it to `<name>-<index>.npy` when it is complete, and reports
    rows, sizes and checksums. A retried attempt replaces the work of a killed one; a killed attempt's
    temp file is removed before the commit;
  * the driver checks that every shard gave the same kind of output, adds the files in order and
    commits: the manifest is written last, by the driver only. A failed or interrupted run aborts the
    writer: no manifest, no files.

A task's input (`source`) is either a reference that the task opens where it runs (a whole-file
memmap or a sharded array: a path on shared storage) or rows carried inline (in-memory arrays, lists).
This module imports no Keras: worker processes import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from seqkit import store
from seqkit.mapped import MappedFile, mapped_file
from seqkit.npyfile import NpyFileWriter
from seqkit.progress import LazyProgress
from seqkit.sharded import ShardedArray
from seqkit.structure import TreeDef, to_json, unflatten
from seqkit.tempfiles import temp_name, temp_owner

# -- what a task reads -----------------------------------------------------------------------------


class FileRows:
    """Rows of a whole `.npy` file, mapped where the task runs (the path must be visible there)."""

    def __init__(self, mapped: MappedFile):
        self.mapped = mapped
        self._array: np.ndarray | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._array is None:
            try:
                self._array = np.asarray(self.mapped.open())
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"{self.mapped.filename}: not found where the task runs; the input must be on storage every worker sees"
                ) from None
        return self._array[start:stop]

    def __getstate__(self) -> dict:
        return {"mapped": self.mapped, "_array": None}


@dataclass
class InlineRows:
    """Rows that travel with the task: `data` holds rows `start:start + len(data)`."""

    start: int
    data: Any

    def read(self, start: int, stop: int) -> Any:
        piece = self.data[start - self.start : stop - self.start]
        if isinstance(piece, np.ndarray):
            piece = piece.view()
            piece.flags.writeable = False  # the function must not scribble over the user's data
        return piece


@dataclass
class ShardedRows:
    """Rows of a sharded array; it pickles as its files' description and maps them where the task runs."""

    array: ShardedArray

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.array[start:stop]


@dataclass
class TreeRows:
    """Rows of several arrays at once, handed to the work in their structure (a dict of inputs)."""

    treedef: TreeDef
    sources: list

    def read(self, start: int, stop: int) -> Any:
        return unflatten(self.treedef, [source.read(start, stop) for source in self.sources])


def row_source(array: Any, start: int, stop: int) -> Any:
    """How a task gets rows `start:stop` of `array`: by reference if it lives in files, else inline."""
    if isinstance(array, ShardedArray):
        return ShardedRows(array)
    mapped = mapped_file(array) if isinstance(array, np.ndarray) else None
    if mapped is not None:
        return FileRows(mapped)
    return InlineRows(start, array[start:stop])


# -- a task ----------------------------------------------------------------------------------------


@dataclass
class Output:
    """What the work made of one chunk: output leaves (one row per kept input row), the structure they
    came in (preprocess_once), and the inputs it skipped ({"file", "error"})."""

    leaves: list[np.ndarray]
    treedef: TreeDef | None = None
    skipped: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ShardTask:
    """Shard `index`: input rows `start:stop` read from `source` in chunks of `chunk_rows`, turned into
    outputs by `work(chunk, start, stop) -> Output`, written as `<name>-<index>.npy` into `stage`."""

    index: int
    start: int
    stop: int
    source: Any
    work: Callable[[Any, int, int], Output]
    stage: str
    names: tuple | None  # the output arrays' names; None: "0", "1", ... one per output leaf
    chunk_rows: int
    durable: bool = True

    def label(self) -> str:
        return f"shard {self.index} (rows {self.start}:{self.stop})"

    def payload_bytes(self) -> int:
        """How many bytes of rows travel with the task (an engine may ship them apart from the task)."""
        return _inline_bytes(self.source)


def _inline_bytes(source: Any) -> int:
    if isinstance(source, TreeRows):
        return sum(_inline_bytes(s) for s in source.sources)
    if not isinstance(source, InlineRows):
        return 0  # a reference: the task reads its rows where it runs
    data = source.data
    if isinstance(data, np.ndarray):
        return data.nbytes
    return sum(getattr(item, "nbytes", 0) for item in data) if isinstance(data, (list, tuple)) else 0


@dataclass(frozen=True)
class ShardResult:
    index: int
    start: int
    stop: int
    names: tuple
    entries: list | None  # one manifest file entry per output array; None if the shard kept no rows
    kinds: tuple  # ((row shape, dtype descr), ...) of the outputs
    treedef: Any  # the output structure as JSON, or None
    skipped: list


def write_shard(task: ShardTask) -> ShardResult:
    """Run one shard task (in a worker, a Dask or Ray task, or inline) and return what it wrote."""
    stage = Path(task.stage)
    writers: list[NpyFileWriter] = []
    names: tuple = ()
    kinds = treedef = None
    skipped: list[dict] = []
    try:
        for start in range(task.start, task.stop, task.chunk_rows):
            stop = min(start + task.chunk_rows, task.stop)
            out = task.work(task.source.read(start, stop), start, stop)
            skipped.extend(out.skipped)
            if not out.leaves:
                continue  # every input of the chunk was skipped
            chunk_kinds = tuple((tuple(leaf.shape[1:]), leaf.dtype.str) for leaf in out.leaves)
            if kinds is None:
                kinds, treedef = chunk_kinds, out.treedef
                names = tuple(task.names) if task.names is not None else tuple(str(i) for i in range(len(out.leaves)))
                writers = [
                    NpyFileWriter(stage / temp_name(store.shard_file(name, task.index)), durable=task.durable, align=store.SHARD_ALIGN)
                    for name in names
                ]
            elif chunk_kinds != kinds or out.treedef != treedef:
                raise ValueError(mismatch(task.work, start, stop))
            for writer, leaf in zip(writers, out.leaves):
                writer.append(leaf)
        entries = None
        if writers:
            entries = []
            for writer, name in zip(writers, names):
                entry = writer.close()
                final = store.shard_file(name, task.index)
                os.replace(writer.path, stage / final)  # complete, so visible under its own name
                entries.append({**entry, "file": final, "dtype": np.lib.format.dtype_to_descr(writer.dtype), "shape": list(writer.row_shape)})
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return ShardResult(task.index, task.start, task.stop, names, entries, kinds or (), to_json(treedef) if treedef is not None else None, skipped)


def mismatch(work: Any, start: int, stop: int) -> str:
    """The error for output rows whose structure, shape or dtype differ from the earlier rows'."""
    describe = getattr(work, "describe_mismatch", None)
    if describe is not None:
        return describe(start, stop)
    return f"input rows {start}:{stop} give outputs of another structure, shape or dtype than the rows before them"


def plan(num_rows: int, rows_per_shard: int) -> list[tuple[int, int, int]]:
    """(index, start, stop) of each shard of `num_rows` input rows."""
    return [(i, start, min(start + rows_per_shard, num_rows)) for i, start in enumerate(range(0, num_rows, rows_per_shard))]


# -- the driver ------------------------------------------------------------------------------------


def run_shards(engine, tasks: Iterable[ShardTask], *, total: int, description: str, progress_delay: float = 1.0) -> list[ShardResult]:
    """Run every task on `engine`, in order; check that all shards gave the same kind of output."""
    results: list[ShardResult] = []
    first: ShardResult | None = None
    with LazyProgress(total, description, delay=progress_delay) as progress:
        for task, result in engine.run(write_shard, tasks):
            if result.entries is not None:
                if first is None:
                    first = result
                elif (result.kinds, result.treedef) != (first.kinds, first.treedef):
                    raise ValueError(mismatch(task.work, result.start, result.stop))
            results.append(result)
            progress.advance(result.stop - result.start)
    return results


def add_results(writer: store.DatasetWriter, results: list[ShardResult]) -> tuple:
    """Add the shards of `results` to `writer` as its arrays (in shard order); returns their names. A
    killed attempt's temp files are removed from the stage, so only what is listed gets committed."""
    written = [r for r in results if r.entries is not None]
    if not written:
        return ()
    names = written[0].names
    for k, name in enumerate(names):
        writer.add_files(name, [r.entries[k] for r in written])
    listed = {entry["file"] for r in written for entry in r.entries}
    for path in writer.stage.iterdir():
        if path.name not in listed and temp_owner(path.name) is not None:
            path.unlink(missing_ok=True)
    return names


def tasks_for(
    num_rows: int,
    rows_per_shard: int,
    source_for: Callable[[int, int], Any],
    work: Callable,
    stage: Path,
    names: tuple | None,
    chunk_rows: int,
) -> Iterator[ShardTask]:
    """The tasks of a run, made lazily: inline rows are sliced only when their task is submitted."""
    for index, start, stop in plan(num_rows, rows_per_shard):
        yield ShardTask(index, start, stop, source_for(start, stop), work, os.fspath(stage), names, chunk_rows)
