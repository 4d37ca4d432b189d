"""Which rows each training host reads: `dataset.shard(num_shards, index)`.

Every host computes the same epoch order (the per-sample shuffle from `(seed, epoch)`, or the rows in
order) and takes its own part of it, batch by batch. The parts are disjoint and together hold every
row of the epoch once. They are balanced: host row counts differ by at most one, and every host has
the same number of batches, which synchronous multi-host training needs (a host with one batch more
waits for ever in its last all-reduce).

The order is cut into groups of `num_shards * batch_size` positions, and host `i` takes the `i`-th
`batch_size` positions of each group: what Keras does to a tf.data pipeline (one global batch split
across the processes). What is left after the full groups is split evenly between the hosts as their
last batch. When fewer positions than hosts are left, the last full group and the rest are split
evenly instead, as two batches per host (each at most `batch_size`); only with `batch_size=1` and a
row count that is not a multiple of `num_shards` can the batch counts then differ by one. With
`drop_remainder`, what is left after the full groups is not read, as in one process.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from seqkit.arrays import check_count


@dataclass(frozen=True)
class HostSplit:
    """Host `index` of `num_shards`: its batches as spans of positions in the epoch order."""

    num_samples: int
    batch_size: int
    num_shards: int = 1
    index: int = 0
    drop_remainder: bool = False

    def __post_init__(self):
        n, b, s = self.num_samples, self.batch_size, self.num_shards
        if not 0 <= self.index < s:
            raise ValueError(f"index must be in 0..{s - 1} for num_shards={s}, got {self.index}")
        group = s * b
        full, rest = divmod(n, group)
        if self.drop_remainder:
            tail_start, tail_size, tail_batches = full * group, 0, 0
            if full == 0:
                raise ValueError(
                    f"drop_remainder=True with {n} samples, batch_size={b} and {s} shards leaves no full batch for "
                    f"every shard (that needs {group} samples)"
                )
        elif rest == 0:
            tail_start, tail_size, tail_batches = full * group, 0, 0
        elif rest >= s:
            tail_start, tail_size, tail_batches = full * group, rest, 1  # every host gets a piece of the rest
        elif full == 0:
            raise ValueError(f"{n} samples cannot be split into {s} non-empty shards")
        elif b == 1:
            # Nothing can be split finer than a row: the first `rest` hosts get one batch more.
            tail_start, tail_size, tail_batches = full * group, rest, 1
        else:
            tail_start, tail_size, tail_batches = (full - 1) * group, group + rest, 2
        object.__setattr__(self, "_regular", tail_start // group)
        object.__setattr__(self, "_tail", (tail_start, tail_size, tail_batches))

    @property
    def num_batches(self) -> int:
        tail_start, tail_size, tail_batches = self._tail
        if tail_batches == 1:
            lo, hi = self._host_part(tail_start, tail_size)
            return self._regular + (1 if hi > lo else 0)
        return self._regular + tail_batches

    def _host_part(self, start: int, size: int) -> tuple[int, int]:
        return start + size * self.index // self.num_shards, start + size * (self.index + 1) // self.num_shards

    def span(self, batch: int) -> tuple[int, int]:
        """Positions `start:stop` of batch `batch` (0 <= batch < num_batches) in the epoch's order."""
        b = self.batch_size
        if batch < self._regular:
            start = batch * self.num_shards * b + self.index * b
            return start, start + b
        tail_start, tail_size, tail_batches = self._tail
        lo, hi = self._host_part(tail_start, tail_size)
        piece = batch - self._regular
        size = hi - lo
        return lo + size * piece // tail_batches, lo + size * (piece + 1) // tail_batches

    def rows(self) -> int:
        """How many rows this host reads per epoch."""
        return sum(stop - start for start, stop in map(self.span, range(self.num_batches)))


def shard_arguments(num_shards: Any, index: Any) -> tuple[int, int]:
    """(num_shards, index) from two integers, or from what a distribution framework hands a host:
    a `tf.distribute.InputContext` (`num_input_pipelines`, `input_pipeline_id`: what
    `strategy.distribute_datasets_from_function` passes) or a `keras.distribution.Distribution`
    (its data shards: one per model replica, or per process if there are fewer processes)."""
    context = num_shards
    if hasattr(context, "num_input_pipelines") and hasattr(context, "input_pipeline_id"):
        if index is not None:
            raise TypeError("shard(input_context) takes no index: the context says which pipeline this is")
        return _counts(context.num_input_pipelines, context.input_pipeline_id)
    if hasattr(context, "data_shard_id") and hasattr(context, "num_processes"):
        if index is not None:
            raise TypeError("shard(distribution) takes no index: the distribution says which data shard this host reads")
        shards = min(int(context.num_processes), int(context.num_model_replicas))
        return _counts(shards, context.data_shard_id)
    if index is None:
        raise TypeError(
            "shard() needs num_shards and index (integers), or a tf.distribute.InputContext or keras.distribution "
            f"Distribution; got {num_shards!r} alone"
        )
    return _counts(num_shards, index)


def _counts(num_shards: Any, index: Any) -> tuple[int, int]:
    num_shards = check_count(num_shards, "num_shards")
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"index must be an integer, got {index!r}")
    if not 0 <= index < num_shards:
        raise ValueError(f"index must be in 0..{num_shards - 1} for num_shards={num_shards}, got {index}")
    return num_shards, int(index)
