"""Large arrays reach worker processes by reference, not by value.

Pickling a dataset that holds a 600 MB array into every worker costs seconds per worker and the array's
size again in each of them (the pickle, then the unpickled copy). `dumps` pickles the dataset (or a
function, or changed epoch state) with every large ndarray replaced by a reference, wherever it sits in
the object graph:
  * an array backed by a file (a np.memmap, np.load(mmap_mode=...), or a view of one; not mode "c",
    whose changes stay in the parent) is mapped again from the same file in the worker, after checking
    that the path still names the file the parent mapped (a pack rewritten since must not be served in
    its new form by the workers only);
  * any other array is copied once into a POSIX shared-memory segment that every worker maps.
Workers map these copy-on-write: each worker sees the array as it was when sent and may write to its own
copy, exactly as with a pickle, but pages nobody writes are shared, so a worker's memory and start-up time
do not grow with the array. A read-only array stays read-only in the workers.

Arrays under `SHARE_MIN_BYTES`, arrays of Python objects and ndarray subclasses other than np.memmap are
pickled as usual. When /dev/shm has no room for a copy the array is pickled too, with a warning.

This module is imported by workers (the references unpickle through `_attach`): numpy and the standard
library only.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import warnings
from multiprocessing import resource_tracker

import numpy as np

from seqkit.shm import check_room, segment_path

# Arrays from this size on are shared rather than pickled; below it a pickle is as cheap as a mapping.
SHARE_MIN_BYTES = 1 << 20
_WRITE_BLOCK_BYTES = 64 << 20


class SharedArrays:
    """The shared-memory segments one `dumps` created; the owner unlinks them once every worker has
    mapped them (or at shutdown)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.names: list[str] = []

    def create(self, array: np.ndarray) -> str | None:
        """A new segment holding a contiguous copy of `array`; None if /dev/shm has no room."""
        name = f"{self.prefix}_a{len(self.names)}"
        try:
            check_room(array.nbytes)
            fd = os.open(segment_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except (MemoryError, OSError) as exc:  # no room, or no /dev/shm on this system
            return _not_shared(array, exc)
        # Registered like multiprocessing's own segments, so that the resource tracker unlinks it if this
        # process is killed before it does.
        resource_tracker.register(f"/{name}", "shared_memory")
        self.names.append(name)
        try:
            _write_bytes(fd, array)
        except OSError as exc:  # filled up meanwhile
            self.names.pop()
            os.unlink(segment_path(name))
            resource_tracker.unregister(f"/{name}", "shared_memory")
            return _not_shared(array, exc)
        finally:
            os.close(fd)
        return name

    def unlink(self) -> None:
        for name in self.names:
            try:
                os.unlink(segment_path(name))
            except FileNotFoundError:
                pass
            resource_tracker.unregister(f"/{name}", "shared_memory")
        self.names = []


def _not_shared(array: np.ndarray, reason: Exception) -> None:
    warnings.warn(
        f"an array of {array.nbytes / 2**20:.0f} MiB ({array.dtype}{list(array.shape)}) is pickled to every "
        f"worker instead of shared: {reason}",
        RuntimeWarning,
        stacklevel=4,
    )


def _write_bytes(fd: int, array: np.ndarray) -> None:
    """The array's bytes (C order, or F order if it is F-contiguous only) written to `fd`.

    Written, not copied into a mapping: the kernel fills the tmpfs pages directly, about twice as fast
    as faulting 4 KiB pages of a fresh mapping in one by one.
    """
    if array.flags.c_contiguous:
        blocks = [array.reshape(-1).view(np.uint8)]
    elif array.flags.f_contiguous:
        blocks = [array.T.reshape(-1).view(np.uint8)]
    else:  # a strided view: C-ordered blocks of rows, so that no full-size temporary copy is made
        rows = max(1, _WRITE_BLOCK_BYTES // max(1, array[:1].nbytes))
        blocks = (np.ascontiguousarray(array[i : i + rows]).reshape(-1).view(np.uint8) for i in range(0, len(array), rows))
    position = 0
    for block in blocks:
        view = memoryview(block)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done : done + _WRITE_BLOCK_BYTES], position + done)
        position += done


def dumps(obj, shared: SharedArrays) -> bytes:
    """Pickle `obj` with its large arrays shared (see the module doc); segments go into `shared`."""
    buffer = io.BytesIO()
    _SharingPickler(buffer, shared).dump(obj)
    return buffer.getvalue()


class _SharingPickler(pickle.Pickler):
    def __init__(self, file, shared: SharedArrays):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared = shared
        self.maps = _Mappings()
        self.copies: dict[tuple, str] = {}  # one segment per array, however many views name it

    def reducer_override(self, obj):
        if type(obj) not in (np.ndarray, np.memmap):
            return NotImplemented
        if obj.nbytes < SHARE_MIN_BYTES or obj.dtype.hasobject:
            return NotImplemented
        reference = _file_reference(obj, self.maps)
        if reference is None:
            key = (id(_owner(obj)), obj.__array_interface__["data"][0], obj.dtype, obj.shape, obj.strides)
            name = self.copies.get(key)
            if name is None:
                name = self.shared.create(obj)
                if name is None:
                    return NotImplemented
                self.copies[key] = name
            order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
            reference = ("shm", name, obj.nbytes, obj.dtype, obj.shape, order, obj.flags.writeable)
        return _attach, reference


def _byte_bounds(array: np.ndarray) -> tuple[int, int]:
    utils = getattr(np.lib, "array_utils", None)  # numpy >= 2; np.byte_bounds before
    return (utils.byte_bounds if utils is not None else np.byte_bounds)(array)


def _owner(array: np.ndarray):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


# ---- arrays backed by files ------------------------------------------------------------------------


def _file_reference(array: np.ndarray, maps: "_Mappings") -> tuple | None:
    """("file", ...) locating `array`'s bytes in the file a np.memmap in its base chain maps, or None."""
    memmap = array
    while memmap is not None and not (isinstance(memmap, np.memmap) and getattr(memmap, "_mmap", None) is not None):
        memmap = memmap.base if isinstance(memmap, np.ndarray) else None
    if memmap is None or not getattr(memmap, "filename", None):
        return None
    if memmap.mode == "c":
        return None  # copy-on-write: the parent's own changes are not in the file
    try:
        mapping_start = np.frombuffer(memmap._mmap, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError):
        return None  # closed
    # np.memmap maps the file from `offset` rounded down to the allocation granularity.
    file_start = memmap.offset - memmap.offset % mmap.ALLOCATIONGRANULARITY
    low, high = _byte_bounds(array)
    if array.size == 0:
        return None
    try:
        stat = os.stat(memmap.filename)
    except OSError:
        return None
    if not maps.maps_file(mapping_start, stat):
        return None  # the path now names another file: share the parent's bytes instead
    data = array.__array_interface__["data"][0]
    return (
        "file",
        memmap.filename,
        stat.st_ino,
        file_start + (low - mapping_start),
        high - low,
        array.dtype,
        array.shape,
        array.strides,
        data - low,
        array.flags.writeable,
    )


class _Mappings:
    """This process's file mappings (Linux /proc/self/maps), read once per `dumps` when needed."""

    def __init__(self):
        self._ranges: list[tuple[int, int, int]] | None = None

    def maps_file(self, address: int, stat: os.stat_result) -> bool:
        if self._ranges is None:
            self._ranges = _read_maps()
        if not self._ranges:
            return True  # no /proc: trust the path
        for start, end, inode in self._ranges:
            if start <= address < end:
                # The inode only: on overlayfs (containers) the maps show the underlying device.
                return inode == stat.st_ino
        return False


def _read_maps() -> list[tuple[int, int, int]]:
    ranges = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) < 5 or fields[4] == "0":
                    continue
                start, end = (int(part, 16) for part in fields[0].split("-"))
                ranges.append((start, end, int(fields[4])))
    except OSError:
        return []
    return ranges


# ---- the worker's side -----------------------------------------------------------------------------


def _attach(kind: str, *reference) -> np.ndarray:
    """Rebuild a shared array in a worker (the unpickling half of `_SharingPickler`)."""
    if kind == "shm":
        name, nbytes, dtype, shape, order, writeable = reference
        mapping = _map(segment_path(name), 0, max(nbytes, 1), f"shared array {name}")
        array = np.ndarray(shape, dtype, buffer=mapping, order=order)
    else:
        filename, inode, position, nbytes, dtype, shape, strides, offset, writeable = reference
        start = position - position % mmap.ALLOCATIONGRANULARITY
        mapping = _map(filename, start, position - start + nbytes, filename, inode)
        array = np.ndarray(shape, dtype, buffer=mapping, offset=position - start + offset, strides=strides)
    array.flags.writeable = writeable
    return array


def _map(path: str, start: int, length: int, what: str, inode: int | None = None) -> mmap.mmap:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise RuntimeError(f"a worker could not open {what} that the dataset's arrays live in: {exc}") from exc
    try:
        if inode is not None:
            # Changed in place, the file is what the parent's mapping shows too; replaced (another
            # inode) or cut short, it is not.
            stat = os.fstat(fd)
            if stat.st_ino != inode or stat.st_size < start + length:
                raise RuntimeError(
                    f"{path} was replaced or truncated after the dataset was sent to the workers; they would "
                    "read other data than the main process: open the dataset again"
                )
        # Copy-on-write: a worker writing into its dataset's arrays changes only its own pages.
        return mmap.mmap(fd, length, access=mmap.ACCESS_COPY, offset=start)
    finally:
        os.close(fd)
