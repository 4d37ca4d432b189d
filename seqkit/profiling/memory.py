"""Memory per batch: the peak a batch needs while it is made, what stays behind, and views.

tracemalloc sees numpy's data buffers (numpy reports them to it), so `peak - before` is the working
memory of one `__getitem__` and `after - before`, once the batch is dropped, is what the generator keeps
(a cache or a list growing per batch). A batch array that is a view keeps its whole base array alive as
long as anyone holds the batch (Keras' queue holds up to `max_queue_size` of them): harmless when the
base is the dataset's own array, costly when it is a temporary made for that batch.
"""

from __future__ import annotations

import mmap
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from seqkit.profiling.batches import leaves

BIG_VIEW_BYTES = 1 << 20  # a base this large and 4x the view is worth a warning


@dataclass
class View:
    leaf: str
    nbytes: int
    base_nbytes: int
    base_owner: str  # "dataset" (an array the dataset holds anyway), "file" (a memory map), "temporary"

    @property
    def keeps_big_array_alive(self) -> bool:
        return self.base_owner == "temporary" and self.base_nbytes >= max(BIG_VIEW_BYTES, 4 * self.nbytes)


@dataclass
class MemoryStats:
    batches: int
    peak_growth_bytes: list[int] = field(default_factory=list)
    retained_bytes: list[int] = field(default_factory=list)
    batch_bytes: int = 0
    views: list[View] = field(default_factory=list)

    @property
    def peak_growth_mean(self) -> float:
        return float(np.mean(self.peak_growth_bytes)) if self.peak_growth_bytes else 0.0

    @property
    def peak_growth_max(self) -> int:
        return max(self.peak_growth_bytes, default=0)

    @property
    def retained_per_batch(self) -> float:
        return float(np.mean(self.retained_bytes)) if self.retained_bytes else 0.0

    @property
    def keeps_big_array_alive(self) -> bool:
        return any(view.keeps_big_array_alive for view in self.views)


def _root(array):
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base


def _held_by(dataset) -> set[int]:
    """ids of the arrays (and their bases) the dataset refers to, one level into containers."""
    held: set[int] = set()
    state = getattr(dataset, "__dict__", {})
    values = list(state.values())
    for value in list(values):
        if isinstance(value, dict):
            values.extend(value.values())
        elif isinstance(value, (list, tuple)) and len(value) < 64:
            values.extend(value)
    for value in values:
        if isinstance(value, np.ndarray):
            held.add(id(value))
            held.add(id(_root(value)))
    return held


def describe_views(batch, dataset) -> list[View]:
    held = None
    views = []
    for path, leaf in leaves(batch):
        if not isinstance(leaf, np.ndarray) or leaf.base is None:
            continue
        root = _root(leaf)
        if isinstance(root, np.ndarray):
            base_nbytes = root.nbytes
        elif isinstance(root, (mmap.mmap, bytes, bytearray, memoryview)):
            base_nbytes = len(root) if not isinstance(root, memoryview) else root.nbytes
        else:
            base_nbytes = int(getattr(root, "nbytes", leaf.nbytes))
        if isinstance(leaf, np.memmap) or isinstance(root, mmap.mmap):
            owner = "file"
        else:
            if held is None:
                held = _held_by(dataset)
            owner = "dataset" if id(root) in held else "temporary"
        views.append(View(path, int(leaf.nbytes), int(base_nbytes), owner))
    return views


def measure_memory(dataset, indices, on_batch=None) -> MemoryStats:
    """Run the batches `indices` under tracemalloc (its own pass: tracing slows allocation down)."""
    from seqkit.profiling.batches import BatchShape

    indices = list(indices)
    stats = MemoryStats(batches=len(indices))
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        for n, index in enumerate(indices):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            batch = dataset[index]
            peak = tracemalloc.get_traced_memory()[1]
            stats.peak_growth_bytes.append(max(0, peak - before))
            if n == 0:
                stats.batch_bytes = BatchShape.of(batch).nbytes
                stats.views = describe_views(batch, dataset)
            del batch
            stats.retained_bytes.append(tracemalloc.get_traced_memory()[0] - before)
            if on_batch is not None:
                on_batch()
    finally:
        if started:
            tracemalloc.stop()
    return stats
