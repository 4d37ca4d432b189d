"""Checking what users pass as data: arrays, memmaps, `.npy` paths, or dicts/tuples of them.

Kept free of Keras so that `seqkit pack` and `preprocess_once` start fast; every error names the
argument (`x['image']`, `y[1]`) or the file and says what is wrong, before any work starts.
"""

from __future__ import annotations

import numbers
import os
import pickle
from typing import Any, Callable

import numpy as np

from seqkit import store
from seqkit.structure import TreeDef, flatten


def leaf_names(struct: Any, prefix: str) -> list[str]:
    """How to name each leaf of `struct` in an error message: `x`, `x['image']`, `y[1]`."""
    if isinstance(struct, dict):
        return [name for key in struct for name in leaf_names(struct[key], f"{prefix}[{key!r}]")]
    if isinstance(struct, (tuple, list)):
        return [name for i, item in enumerate(struct) for name in leaf_names(item, f"{prefix}[{i}]")]
    return [prefix]


def open_npy(path: str | os.PathLike, name: str) -> np.ndarray:
    """Open a `.npy` file memory-mapped (`~` expanded), checked against its size and, in a folder with
    a seqkit manifest, against the manifest; errors name the argument and the file."""
    return store.open_npy(path, name)


def as_array(leaf: Any, name: str) -> np.ndarray:
    """An array (memmaps stay memmaps; paths are opened memory-mapped), checked for what batching needs."""
    if isinstance(leaf, (str, os.PathLike)):
        array = open_npy(leaf, name)
    elif isinstance(leaf, np.ndarray):
        array = leaf
    elif leaf is None:
        raise TypeError(f"{name} is None; pass an array, a .npy path, or leave the whole argument out")
    else:
        array = np.asarray(leaf)
    if array.dtype == object:
        raise TypeError(
            f"{name} has dtype object; Keras cannot batch Python objects. Convert it to a numeric array "
            "(ragged data: pad it first)"
        )
    if array.ndim == 0:
        raise ValueError(f"{name} is a scalar; it needs a first axis of samples")
    return array


def load_structure(struct: Any, name: str) -> tuple[list[np.ndarray], TreeDef]:
    check_not_rows(struct, name)
    leaves, treedef = flatten(struct)
    names = leaf_names(struct, name)
    return [as_array(leaf, leaf_name) for leaf, leaf_name in zip(leaves, names)], treedef


def common_length(named_leaves: list[tuple[str, np.ndarray]], what: str = "x and y") -> int:
    lengths = {name: len(array) for name, array in named_leaves}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"{what} must have the same number of samples (rows): {detail}")
    return next(iter(lengths.values()))


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return int(batch_size)


def check_not_rows(struct: Any, name: str) -> None:
    """Refuse Python lists that look like lists of samples. A list is read as several inputs (a
    multi-input model), so a list of N rows of length N would silently become N inputs of N samples."""
    if isinstance(struct, dict):
        for key, value in struct.items():
            check_not_rows(value, f"{name}[{key!r}]")
        return
    if not isinstance(struct, (list, tuple)):
        return
    if isinstance(struct, list) and struct:
        if all(isinstance(item, (numbers.Number, np.generic)) for item in struct):
            raise TypeError(
                f"{name} is a Python list of {len(struct)} numbers; pass np.asarray({name}) for one array of samples"
            )
        if all(isinstance(item, list) for item in struct):
            raise TypeError(
                f"{name} is a Python list of lists; seqkit reads a list as several inputs, not as rows. Pass "
                f"np.asarray({name}) if they are samples, or a tuple of arrays for several inputs"
            )
        if all(isinstance(item, np.ndarray) for item in struct):
            shapes = {item.shape for item in struct}
            if len(shapes) == 1:
                shape = next(iter(shapes))
                if shape and shape[0] == len(struct):
                    raise ValueError(
                        f"{name} is a list of {len(struct)} arrays of shape {shape}: seqkit cannot tell {len(struct)} "
                        f"inputs of {shape[0]} samples each (a multi-input model) from {len(struct)} samples. Pass "
                        f"np.stack({name}) if they are samples, or a tuple or dict of arrays for several inputs"
                    )
    for i, item in enumerate(struct):
        check_not_rows(item, f"{name}[{i}]")


def check_count(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer argument (processes, workers, chunk_size...) of at least `minimum`; errors name it.

    Floats are refused rather than rounded, and so are bools (True is not a count).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {'a positive integer' if minimum == 1 else f'at least {minimum}'}, got {value}")
    return int(value)


def check_processes(processes: Any, fn: Callable | None, fn_name: str, caller: str) -> int:
    """`processes` (None means 1) checked up front; with more than one, `fn` must be picklable, since
    it is sent to worker processes: a lambda fails here, with the fix, rather than inside the pool."""
    if processes is None:
        return 1
    processes = check_count(processes, "processes")
    if processes > 1 and fn is not None:
        try:
            pickle.dumps(fn)
        except Exception as exc:
            raise TypeError(
                f"{caller}(processes={processes}) sends {fn_name} to worker processes, but {fn_name} cannot be "
                f"pickled ({exc}). Define it at module level (not a lambda or a function inside a function), "
                "or use processes=None"
            ) from None
    return processes
