"""ShardedArray: one array stored as several `.npy` files (shards), read as if it were one array.

A sharded dataset (seqkit.store) keeps an array as `<name>-00000.npy`, `<name>-00001.npy`, ... and lists
them, with their row counts, in its manifest. A ShardedArray serves rows across shard boundaries: an
integer, a slice, or an array of row numbers gives the values that indexing the concatenation would
give, without ever building the concatenation in memory.

How: shards written by seqkit start their data on a 4096-byte boundary and hold whole 4096-byte blocks
(store.SHARD_ALIGN), so on POSIX systems with 4 KiB pages all of them are mapped back to back into one
reserved address range (mmap with MAP_FIXED over a PROT_NONE reservation): one read-only ndarray over
every shard, indexed exactly as a single memory-mapped file is, at the same speed (a shuffled batch
touches every shard; per-shard gathers cost several microseconds each, which for small rows was most of
a batch). Shards that do not line up (other writers, skipped rows) are mapped one by one instead, and
sorted rows are gathered shard by shard straight into the result.

It pickles as the description of its files and maps them again where it arrives: a worker process, or
a Dask or Ray task on another machine that sees the same storage.

`open_array(path)` is how a path becomes an array here: a `.npy` file is memory-mapped (checked as
`seqkit.store.open_npy` checks it), and `DIR/NAME.npy` whose folder's manifest lists array NAME as
split over shard files is that array's ShardedArray; so code written for `pack(x, "out/x.npy")` keeps
working when the pack is sharded. `load_leaves` does the same for a nest of inputs (x, y of a dataset).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import mmap
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from seqkit import store
from seqkit.arrays import as_array, check_not_rows, leaf_names
from seqkit.structure import TreeDef, flatten

__all__ = ["ShardedArray", "ShardFile", "open_array", "load_leaves"]


@dataclass(frozen=True)
class ShardFile:
    """One shard: its file, rows, where its data starts, and its checksum from the manifest."""

    path: str
    rows: int
    offset: int
    checksum: str | None = None


class ShardedArray:
    """Read-only rows of one array kept in several `.npy` files, indexed as their concatenation.

    `len`, `shape`, `dtype`, `ndim`, `nbytes` are those of the whole array. Indexing with an integer or a
    slice within one shard returns a view of that shard's map (read-only, as a memmap's would be); any
    other index returns a new array. `read(start, stop)` and `take(rows)` always return new arrays (a
    batch that keeps no file open). `np.asarray(sharded)` builds the whole array in memory: only for
    arrays that fit.
    """

    def __init__(self, files: list[ShardFile], dtype: Any, row_shape: tuple, *, name: str = "array"):
        if not files:
            raise ValueError(f"{name}: a sharded array needs at least one file")
        self.files = list(files)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(n) for n in row_shape)
        self.name = name
        self._starts = np.concatenate([[0], np.cumsum([f.rows for f in self.files], dtype=np.int64)])
        self._maps: list[np.ndarray | None] = [None] * len(self.files)
        self._whole: np.ndarray | None | bool = None  # the shards back to back (None: not tried yet, False: cannot)

    @classmethod
    def from_entry(cls, directory: str | os.PathLike, name: str, entry: dict) -> "ShardedArray":
        """The array `name` of a dataset directory, from its manifest entry (see seqkit.store)."""
        directory = Path(directory)
        files = [ShardFile(os.fspath(directory / f["file"]), int(f["rows"]), int(f["offset"]), f.get("checksum")) for f in entry["files"]]
        return cls(files, store._dtype(entry["dtype"]), tuple(entry["shape"]), name=name)

    # -- what it is ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def shape(self) -> tuple:
        return (len(self), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def num_shards(self) -> int:
        return len(self.files)

    @property
    def shard_starts(self) -> list[int]:
        """The first row of each shard, and the total number of rows at the end."""
        return [int(n) for n in self._starts]

    def __repr__(self) -> str:
        return f"ShardedArray({self.name!r}, shape={self.shape}, dtype={self.dtype}, shards={self.num_shards})"

    def digest(self) -> str:
        """What identifies the data: dtype, shape and every shard's rows and checksum (from the manifest,
        computed when the shards were written), so fingerprinting it reads no data."""
        h = hashlib.sha256(f"sharded|{self.dtype.str}|{self.shape}".encode())
        for f in self.files:
            if f.checksum is None:
                raise ValueError(f"{f.path}: no checksum recorded, so the array cannot be fingerprinted without reading it")
            h.update(f"|{f.rows}:{f.checksum}".encode())
        return h.hexdigest()

    # -- the shards ----------------------------------------------------------------------------------
    def shard(self, i: int) -> np.ndarray:
        """Shard `i`, memory-mapped (a read-only plain ndarray view of the map)."""
        mapped = self._maps[i]
        if mapped is None:
            f = self.files[i]
            # A plain ndarray over the map: indexing an np.memmap builds np.memmap objects per row.
            mapped = np.asarray(store._map(Path(f.path), self.dtype, (f.rows, *self.row_shape), f.offset, "C"))
            self._maps[i] = mapped
        return mapped

    def whole(self) -> np.ndarray | None:
        """Every shard mapped back to back into one read-only ndarray, or None where the shards'
        layout (or the platform) does not allow it. Mapped on first use."""
        if self._whole is None:
            whole = _map_back_to_back(self.files, self.dtype, self.row_shape)
            self._whole = False if whole is None else whole
        return self._whole if self._whole is not False else None

    def _locate(self, row: int) -> tuple[int, int]:
        i = int(np.searchsorted(self._starts, row, side="right")) - 1
        return i, row - int(self._starts[i])

    # -- reading rows --------------------------------------------------------------------------------
    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop` (clipped to the array, as a slice is) as a new array."""
        start, stop, _ = slice(start, stop).indices(len(self))
        whole = self.whole()
        if whole is not None:
            return whole[start:max(start, stop)].copy()
        out = np.empty((max(0, stop - start), *self.row_shape), dtype=self.dtype)
        self._read_into(out, start, stop)
        return out

    def _read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        row = start
        while row < stop:
            i, local = self._locate(row)
            take = min(stop, int(self._starts[i + 1])) - row
            out[row - start : row - start + take] = self.shard(i)[local : local + take]
            row += take

    def take(self, rows: Any) -> np.ndarray:
        """The rows numbered `rows` (any order, negative from the end, any shape of index) as a new array."""
        index = np.asarray(rows)
        if index.dtype == bool:
            raise TypeError("take() wants row numbers; index with the mask instead: sharded[mask]")
        whole = self.whole()
        if whole is not None and index.dtype.kind in "iu":
            try:
                return np.take(whole, index, axis=0)
            except IndexError:
                pass  # said again below, naming the array and the row
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"{self.name}: row numbers must be integers, got dtype {index.dtype}")
        flat = index.reshape(-1).astype(np.int64, copy=False)
        n = len(self)
        if flat.size:
            low, high = int(flat.min()), int(flat.max())
            if low < -n or high >= n:
                bad = low if low < -n else high
                raise IndexError(f"{self.name}: row {bad} is out of range for {n} rows")
            if low < 0:
                flat = np.where(flat < 0, flat + n, flat)
        out = np.empty((flat.size, *self.row_shape), dtype=self.dtype)
        if flat.size > 1 and np.any(flat[1:] < flat[:-1]):
            order = np.argsort(flat, kind="stable")
            gathered = np.empty_like(out)
            self._take_sorted(gathered, flat[order])
            out[order] = gathered
        else:
            self._take_sorted(out, flat)
        return out.reshape((*index.shape, *self.row_shape))

    def _take_sorted(self, out: np.ndarray, rows: np.ndarray) -> None:
        # Each shard's rows are a contiguous run of the sorted row numbers: one take per shard,
        # straight into its part of the result.
        bounds = np.searchsorted(rows, self._starts).tolist()
        starts = self._starts.tolist()
        for i in range(self.num_shards):
            lo, hi = bounds[i], bounds[i + 1]
            if hi > lo:
                self.shard(i).take(rows[lo:hi] - starts[i], axis=0, out=out[lo:hi], mode="clip")

    def __getitem__(self, key: Any) -> Any:
        whole = self.whole()
        if whole is not None and not (isinstance(key, tuple) and key and (key[0] is Ellipsis or key[0] is None)):
            try:
                return whole[key]
            except IndexError as exc:
                raise IndexError(f"{self.name}: {exc}") from None
        if isinstance(key, tuple):
            if not key:
                return np.asarray(self)
            rows, rest = key[0], key[1:]
            if rows is Ellipsis or rows is None:
                raise IndexError(f"{self.name}: index the rows first (sharded[rows, ...])")
            picked = self[rows]
            if isinstance(rows, (int, np.integer)) and not isinstance(rows, (bool, np.bool_)):
                return picked[rest]
            return picked[(slice(None), *rest)]
        if isinstance(key, (bool, np.bool_)):
            raise IndexError(f"{self.name}: a single bool is not a row index")
        if isinstance(key, (int, np.integer)):
            row = int(key)
            n = len(self)
            if not -n <= row < n:
                raise IndexError(f"{self.name}: row {row} is out of range for {n} rows")
            i, local = self._locate(row % n)
            return self.shard(i)[local]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step))
            if stop > start:
                i, local = self._locate(start)
                if stop <= self._starts[i + 1]:
                    return self.shard(i)[local : local + stop - start]
            return self.read(start, stop)
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"{self.name}: a boolean mask must have one value per row ({len(self)}), got shape {index.shape}")
            return self.take(np.flatnonzero(index))
        return self.take(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        whole = self.whole()
        if whole is not None:
            yield from whole
            return
        for i in range(self.num_shards):
            yield from self.shard(i)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read(0, len(self))
        return out if dtype is None else out.astype(dtype, copy=False)

    # -- pickling: the files' description, mapped again on arrival ---------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = [None] * len(self.files)
        state["_whole"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


# -- one address range for all the shards -----------------------------------------------------------

_MAP_FIXED = 0x10  # the same value on Linux and macOS; Python's mmap module exports neither of these
_PROT_NONE = 0
_MAP_FAILED = ctypes.c_void_p(-1).value


def _libc():
    if os.name != "posix" or mmap.PAGESIZE != store.SHARD_ALIGN or not hasattr(mmap, "MAP_ANONYMOUS"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def _map_back_to_back(files: list[ShardFile], dtype: np.dtype, row_shape: tuple) -> np.ndarray | None:
    """Map each shard's data at its place in one reserved range, so that the range holds the whole array;
    None if a shard's data does not start on a page or (but for the last) is not whole pages."""
    row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    sizes = [f.rows * row_bytes for f in files]
    total = sum(sizes)
    page = store.SHARD_ALIGN
    if _LIBC is None or total == 0 or dtype.hasobject:
        return None
    if any(f.offset % page for f in files) or any(size % page for size in sizes[:-1]):
        return None
    span = math.ceil(total / page) * page
    base = _LIBC.mmap(None, span, _PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)  # reserved, not usable
    if base in (None, _MAP_FAILED):
        return None
    # Everything mapped into the range goes with one munmap, once no array refers to it any more.
    buffer = (ctypes.c_char * total).from_address(base)
    # Not at exit: another exit handler might still read an array over the range; the OS unmaps it then.
    weakref.finalize(buffer, _LIBC.munmap, base, span).atexit = False
    at = base
    for f, size in zip(files, sizes):
        if size:
            try:
                fd = os.open(f.path, os.O_RDONLY)
            except OSError:
                return None  # the per-shard path says what is wrong with the file
            try:
                mapped = _LIBC.mmap(at, size, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED, fd, f.offset)
            finally:
                os.close(fd)
            if mapped != at:
                return None
        at += size
    view = memoryview(buffer).cast("B").toreadonly()  # PROT_READ memory: numpy must never write to it
    return np.frombuffer(view, dtype=dtype).reshape((sum(f.rows for f in files), *row_shape))


def open_array(path: str | os.PathLike, name: str = "array", *, verify: bool = False) -> Any:
    """The array `path` names, for reading rows: a `.npy` file, memory-mapped and checked as
    `seqkit.store.open_npy` checks it, or `DIR/NAME.npy` that does not exist as a file but whose folder's
    manifest lists array NAME (a sharded pack): that array, as `Dataset.open` returns it. Errors name
    `name` (the argument the path came from) and the file."""
    path = store.expand(path)
    if not path.exists() and path.suffix == ".npy":
        try:
            manifest = store._folder_manifest(path.parent) if path.parent.is_dir() else None
            if manifest is not None and path.stem in manifest["arrays"]:
                return store.open_dataset(path.parent, verify=verify).open(path.stem)
        except store.StoreError as exc:
            raise store.StoreError(exc.path, exc.problem, context=name) from None
    return store.open_npy(path, name, verify=verify)


def load_leaves(struct: Any, name: str) -> tuple[list[Any], TreeDef]:
    """The leaves of `x` or `y` as arrays to read rows from (`seqkit.arrays.load_structure`, plus sharded
    arrays: given as ShardedArray or as the `.npy` path of one), and the structure they came in."""
    check_not_rows(struct, name)
    leaves, treedef = flatten(struct)
    return [_leaf(leaf, leaf_name) for leaf, leaf_name in zip(leaves, leaf_names(struct, name))], treedef


def _leaf(leaf: Any, name: str) -> Any:
    if isinstance(leaf, ShardedArray):
        return leaf
    if isinstance(leaf, (str, os.PathLike)):
        opened = open_array(leaf, name)
        if isinstance(opened, ShardedArray):
            return opened
        leaf = opened
    return as_array(leaf, name)
