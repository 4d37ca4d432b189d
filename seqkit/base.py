"""What every seqkit dataset shares: checked inputs, batch indexing, per-sample shuffling, host shards.

Keras' own `shuffle=True` only reorders whole batches of a PyDataset, so the same samples always meet
in the same batch; seqkit shuffles samples. The order of an epoch comes from `(seed, epoch)` alone, so
it is reproducible and identical in every worker process and on every host, and the rows of a batch
are gathered in sorted order, which is what makes shuffled reads from a memory-mapped file fast.
`shard(num_shards, index)` gives one training host its part of each epoch (seqkit.partition).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import keras
import numpy as np

from seqkit.arrays import check_batch_size, check_count, common_length, leaf_names
from seqkit.mapped import MappedFile, mapped_file
from seqkit.partition import HostSplit, shard_arguments
from seqkit.seeding import epoch_rng, resolve_seed
from seqkit.sharded import ShardedArray, load_leaves
from seqkit.structure import TreeDef, unflatten


def _description(leaf: Any) -> MappedFile | ShardedArray | None:
    """How a leaf travels to a worker process instead of by value: its file, or its shards' files."""
    return leaf if isinstance(leaf, ShardedArray) else mapped_file(leaf)


def _readable(leaf: Any) -> Any:
    """What batches are cut from: a sharded array's shards mapped as one ndarray where they line up
    (read exactly as one file, at its speed), else the ShardedArray itself; other leaves as ndarrays."""
    if isinstance(leaf, ShardedArray):
        whole = leaf.whole()
        return leaf if whole is None else whole
    return np.asarray(leaf)


def check_keras_arguments(kwargs: dict) -> dict:
    """The PyDataset arguments, checked now: Keras stores them as given and fails (or ignores them)
    only inside `fit`. `workers` may be 0 (Keras then runs in the main thread, as with 1)."""
    if "workers" in kwargs:
        check_count(kwargs["workers"], "workers", minimum=0)
    if "max_queue_size" in kwargs:
        check_count(kwargs["max_queue_size"], "max_queue_size")
    if "use_multiprocessing" in kwargs and not isinstance(kwargs["use_multiprocessing"], (bool, np.bool_)):
        raise TypeError(f"use_multiprocessing must be True or False, got {kwargs['use_multiprocessing']!r}")
    return kwargs


class BatchSequence(keras.utils.PyDataset):
    """A PyDataset over arrays (or nests of them) that all have the same number of rows.

    Subclasses decide where the arrays come from (`_prepare`); batching, shuffling and validation are
    here. `**kwargs` (workers, use_multiprocessing, max_queue_size) go to Keras unchanged.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int | None = None,
        drop_remainder: bool = False,
        **kwargs,
    ):
        super().__init__(**check_keras_arguments(kwargs))
        self.batch_size = check_batch_size(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_remainder = bool(drop_remainder)
        self.seed = resolve_seed(seed)
        self._seed_given = seed is not None  # hosts can agree on an order only through a seed they share
        x_leaves, x_def = load_leaves(x, "x")
        self._has_y = y is not None
        y_leaves, y_def = load_leaves(y, "y") if self._has_y else ([], None)
        named = list(zip(leaf_names(x, "x"), x_leaves)) + list(zip(leaf_names(y, "y") if self._has_y else [], y_leaves))
        # Lengths are checked on the raw inputs, before any (possibly long) preprocessing.
        self.num_samples = common_length(named)
        if self.drop_remainder and self.num_samples < self.batch_size:
            raise ValueError(
                f"drop_remainder=True with {self.num_samples} samples and batch_size={self.batch_size} "
                "leaves no batch at all"
            )
        x_leaves, self._x_def = self._prepare(x_leaves, x_def, "x")
        y_leaves, self._y_def = self._prepare(y_leaves, y_def, "y") if self._has_y else ([], None)
        self._x_leaves = self._finish_leaves(x_leaves)
        self._y_leaves = self._finish_leaves(y_leaves)
        self._x_maps = [_description(leaf) for leaf in x_leaves]
        self._y_maps = [_description(leaf) for leaf in y_leaves]
        self.epoch = 0
        self._order: np.ndarray | None = None
        self._split: HostSplit | None = None  # set by shard()
        self._reorder()

    # -- what subclasses change ----------------------------------------------------------------
    def _prepare(self, leaves: list[np.ndarray], treedef: TreeDef, name: str) -> tuple[list[np.ndarray], TreeDef]:
        """Turn the checked input arrays of `x` or `y` into the arrays batches are cut from."""
        return leaves, treedef

    def _finish_leaves(self, leaves: list[np.ndarray]) -> list[np.ndarray]:
        # Plain ndarray views over the maps: indexing an np.memmap returns np.memmap objects that keep
        # the file open in every batch handed to Keras; views of the ndarray type give plain copies.
        return [_readable(leaf) for leaf in leaves]

    def _take(self, array: np.ndarray, rows: slice | np.ndarray) -> np.ndarray:
        """One leaf's rows for a batch: a slice (contiguous) or sorted row numbers (shuffled)."""
        if isinstance(array, ShardedArray):
            return array.read(rows.start, rows.stop) if isinstance(rows, slice) else array.take(rows)
        if isinstance(rows, slice):
            return array[rows]
        return np.take(array, rows, axis=0)

    # -- pickling (spawn/forkserver workers) ---------------------------------------------------
    def __getstate__(self) -> dict:
        # A memory-mapped leaf travels as its file's description (a sharded one as its ShardedArray)
        # and is mapped again on arrival, not copied byte by byte into every worker.
        state = self.__dict__.copy()
        for key in ("_x", "_y"):
            maps = state[f"{key}_maps"]
            state[f"{key}_leaves"] = [m if m is not None else leaf for m, leaf in zip(maps, state[f"{key}_leaves"])]
        return state

    def __setstate__(self, state: dict) -> None:
        for key in ("_x", "_y"):
            state[f"{key}_leaves"] = [
                np.asarray(leaf.open()) if isinstance(leaf, MappedFile) else _readable(leaf) for leaf in state[f"{key}_leaves"]
            ]
        self.__dict__.update(state)

    # -- Keras protocol ------------------------------------------------------------------------
    def __len__(self) -> int:
        if self._split is not None:
            return self._split.num_batches
        if self.drop_remainder:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.batch_rows(index)
        x = unflatten(self._x_def, [self._take(leaf, rows) for leaf in self._x_leaves])
        if not self._has_y:
            return (x,)
        y = unflatten(self._y_def, [self._take(leaf, rows) for leaf in self._y_leaves])
        return x, y

    def on_epoch_end(self) -> None:
        # The next order is fixed here, not in on_epoch_begin: Keras starts its worker processes
        # before calling on_epoch_begin, but after on_epoch_end, so only this reaches them.
        self.epoch += 1
        self._reorder()

    # -- indexing --------------------------------------------------------------------------------
    def batch_rows(self, index: int) -> slice | np.ndarray:
        """The rows of batch `index` of the current epoch: a slice, or sorted row numbers if shuffled."""
        length = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"batch index must be an integer, got {index!r}")
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"batch index {index} out of range for {length} batches")
        if self._split is not None:
            start, stop = self._split.span(int(index))
        else:
            start = int(index) * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
        if self._order is None:
            return slice(start, stop)
        return np.sort(self._order[start:stop])

    def _reorder(self) -> None:
        if self.shuffle:
            self._order = epoch_rng(self.seed, self.epoch).permutation(self.num_samples)
        else:
            self._order = None

    def set_epoch(self, epoch: int) -> None:
        """Jump to the order of `epoch` (resuming a run, or a worker catching up with the main process)."""
        self.epoch = int(epoch)
        self._reorder()

    # -- several training hosts ------------------------------------------------------------------
    def shard(self, num_shards: Any, index: int | None = None) -> "BatchSequence":
        """This dataset as host `index` of `num_shards` reads it: a new dataset serving only its part of
        every epoch (see seqkit.partition). The parts of all hosts are disjoint and together hold every
        sample once per epoch (with `drop_remainder`, every sample of the full batches); they differ by at
        most one sample, and every host gets the same number of batches.

        `num_shards` may also be what a distribution framework hands the host: a
        `tf.distribute.InputContext`, or a `keras.distribution.Distribution` (set its
        `auto_shard_dataset = False`: Keras shards only tf.data pipelines itself). With `shuffle=True`,
        every host must pass the same `seed`, since each computes the same epoch order and takes its part.
        """
        num_shards, index = shard_arguments(num_shards, index)
        if self._split is not None and self._split.num_shards > 1:
            raise ValueError(f"this dataset is already shard {self._split.index} of {self._split.num_shards}; shard the whole dataset")
        if self.shuffle and not self._seed_given and num_shards > 1:
            raise ValueError(
                "shard() with shuffle=True needs an explicit seed, the same on every host: each host computes the "
                "epoch's order from it and takes its own part (with a different random seed per host the parts "
                "would overlap)"
            )
        split = HostSplit(self.num_samples, self.batch_size, num_shards, index, self.drop_remainder)
        part = copy.copy(self)  # arrays are mapped again (__getstate__), nothing is copied
        part._split = split
        return part

    @property
    def num_shards(self) -> int:
        return 1 if self._split is None else self._split.num_shards

    @property
    def shard_index(self) -> int:
        return 0 if self._split is None else self._split.index
