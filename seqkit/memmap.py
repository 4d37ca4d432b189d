"""MemmapSequence: batches read from `.npy` files mapped into memory, so datasets larger than RAM train.

The operating system's page cache does the caching: after the first epoch a dataset that fits in RAM is
served at memory speed, and one that does not is streamed. Each batch is an ordinary array copied out
of the map (never a view), so nothing handed to Keras keeps a file open or changes if the file does.
An array split over shard files (a sharded pack or cache) is read as one (seqkit.sharded): batches
cross shard boundaries, and the per-sample shuffle is the same as for one file.
"""

from __future__ import annotations

import numpy as np

from seqkit.base import BatchSequence
from seqkit.sharded import ShardedArray


class MemmapSequence(BatchSequence):
    """A Keras PyDataset over `.npy` files (paths), memmaps or arrays, or dicts/tuples of them.

    `shuffle=True` draws a new per-sample order each epoch from `(seed, epoch)`; the rows of a batch are
    read in ascending file order. `**kwargs` (workers, use_multiprocessing, max_queue_size) go to Keras;
    in worker processes started by spawn or forkserver the files are mapped again, not copied.
    A path is checked when opened: its header against its size, and, in a folder with a seqkit
    manifest (a pack), against the manifest; a damaged or unfinished pack is refused (seqkit.store).
    `DIR/NAME.npy` of a sharded pack (the file does not exist; the manifest lists NAME's shards), or a
    `seqkit.ShardedArray`, is read across its shards. `shard(num_shards, index)` gives one training
    host its part of every epoch.
    """

    def _take(self, array: np.ndarray, rows: slice | np.ndarray) -> np.ndarray:
        if isinstance(array, ShardedArray):  # shards that do not line up: read shard by shard, new arrays
            return super()._take(array, rows)
        if isinstance(rows, slice):
            return array[rows].copy()
        return np.take(array, rows, axis=0)
