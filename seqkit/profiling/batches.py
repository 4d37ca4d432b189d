"""Walking a dataset the way `model.fit` does, and what a batch is made of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqkit.profiling.target import ProfileError


def dataset_length(dataset) -> int | None:
    """Batches per epoch, or None for an endless dataset (Keras' `num_batches = None`)."""
    if hasattr(type(dataset), "__len__"):
        try:
            n = len(dataset)
        except TypeError:
            n = None
    else:
        n = getattr(dataset, "num_batches", None)
    if n is not None:
        n = int(n)
        if n < 1:
            raise ProfileError(f"the dataset has no batches (len {n})")
    return n


class Cursor:
    """Batch indices 0, 1, 2, ... wrapping at the end of an epoch, where on_epoch_end runs as in fit."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.length = dataset_length(dataset)
        self.next_index = 0

    def take(self) -> int:
        if self.length is not None and self.next_index >= self.length:
            hook = getattr(self.dataset, "on_epoch_end", None)
            if callable(hook):
                hook()
            self.next_index = 0
        index = self.next_index
        self.next_index += 1
        return index


def leaves(batch, path: str = "batch"):
    """(path, array) for every array-like leaf of a batch (tuples, lists, dicts of arrays)."""
    if isinstance(batch, dict):
        for key, value in batch.items():
            yield from leaves(value, f"{path}[{key!r}]")
    elif isinstance(batch, (tuple, list)):
        for i, value in enumerate(batch):
            yield from leaves(value, f"{path}[{i}]")
    elif batch is not None and hasattr(batch, "shape") and hasattr(batch, "dtype"):
        yield path, batch


def _nbytes(leaf) -> int:
    size = getattr(leaf, "nbytes", None)
    if size is None:
        size = int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(getattr(leaf.dtype, "as_numpy_dtype", leaf.dtype)).itemsize
    return int(size)


@dataclass(frozen=True)
class BatchShape:
    samples: int | None  # rows of the first array (the batch size), None when it has no rows
    nbytes: int  # all arrays together

    @classmethod
    def of(cls, batch) -> "BatchShape":
        found = list(leaves(batch))
        samples = None
        for _, leaf in found:
            if len(leaf.shape) >= 1:
                samples = int(leaf.shape[0])
                break
        return cls(samples, sum(_nbytes(leaf) for _, leaf in found))
