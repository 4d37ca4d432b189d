"""Arrays that are whole `.npy` files mapped read-only: described so that another process (a worker,
a task on another machine that sees the same storage) maps the file again instead of receiving a copy."""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MappedFile:
    """Enough to map a read-only array file again in another process."""

    filename: str
    dtype: np.dtype
    shape: tuple
    offset: int
    order: str

    def open(self) -> np.memmap:
        return np.memmap(self.filename, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape, order=self.order)


def mapped_file(leaf: np.ndarray) -> MappedFile | None:
    """The file behind a whole-file read-only memmap (what np.load(mmap_mode="r") returns), else None."""
    if not isinstance(leaf, np.memmap) or getattr(leaf, "filename", None) is None or leaf.mode != "r":
        return None
    if leaf.base is None or not isinstance(leaf.base, mmap.mmap):
        return None  # a view into a map: its offset within the file is not recorded
    order = "F" if leaf.flags.f_contiguous and not leaf.flags.c_contiguous else "C"
    return MappedFile(leaf.filename, leaf.dtype, leaf.shape, leaf.offset, order)
