"""PreprocessedSequence: a PyDataset that preprocesses once, then serves slices of the result."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from seqkit.base import BatchSequence
from seqkit.preprocess import preprocess_once
from seqkit.structure import TreeDef, flatten, unflatten


class PreprocessedSequence(BatchSequence):
    """Batches of `preprocess(x)` and `preprocess_y(y)`, each computed once (see `preprocess_once`).

    Unshuffled, it yields exactly the batches of a generator that slices `x[i*b:(i+1)*b]` and applies
    `preprocess` in `__getitem__`, last partial batch included unless `drop_remainder`; the difference
    is that the work is done once, vectorised, and with `cache_dir` reused across runs. `preprocess`
    receives (chunks of) `x` with the structure `x` has, e.g. a dict for a multi-input model.
    `**kwargs` (workers, use_multiprocessing, max_queue_size) go to Keras.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int = 32,
        preprocess: Callable | None = None,
        preprocess_y: Callable | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        drop_remainder: bool = False,
        cache_dir: str | os.PathLike | None = None,
        **kwargs,
    ):
        for arg, fn in (("preprocess", preprocess), ("preprocess_y", preprocess_y)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{arg} must be a function of a batch of samples, got {fn!r}")
        if preprocess_y is not None and y is None:
            raise ValueError("preprocess_y was given but y is None")
        self._functions = {"x": preprocess, "y": preprocess_y}
        self.cache_dir = cache_dir
        super().__init__(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder, **kwargs)

    def _prepare(self, leaves: list[np.ndarray], treedef: TreeDef, name: str) -> tuple[list[np.ndarray], TreeDef]:
        fn = self._functions[name]
        if fn is None:
            return leaves, treedef
        return flatten(preprocess_once(fn, unflatten(treedef, leaves), cache_dir=self.cache_dir))
