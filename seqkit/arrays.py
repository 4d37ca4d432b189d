"""Checking what users pass as data: arrays, memmaps, `.npy` paths, or dicts/tuples of them.

Kept free of Keras so that `seqkit pack` and `preprocess_once` start fast; every error names the
argument (`x['image']`, `y[1]`) or the file and says what is wrong, before any work starts.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from seqkit.structure import TreeDef, flatten


def leaf_names(struct: Any, prefix: str) -> list[str]:
    """How to name each leaf of `struct` in an error message: `x`, `x['image']`, `y[1]`."""
    if isinstance(struct, dict):
        return [name for key in struct for name in leaf_names(struct[key], f"{prefix}[{key!r}]")]
    if isinstance(struct, (tuple, list)):
        return [name for i, item in enumerate(struct) for name in leaf_names(item, f"{prefix}[{i}]")]
    return [prefix]


def open_npy(path: str | os.PathLike, name: str) -> np.ndarray:
    """Open a `.npy` file memory-mapped, with errors that name the argument and the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such .npy file: {path!r}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        # numpy reports a short file as "mmap length is greater than file size" or a bad header.
        raise ValueError(f"{name}: {path!r} is not a complete .npy file (truncated or corrupt): {exc}") from None
    except OSError as exc:
        raise OSError(f"{name}: cannot read .npy file {path!r}: {exc}") from None


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

