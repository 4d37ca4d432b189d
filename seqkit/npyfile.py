"""`.npy` files read and written the way seqkit's datasets need: headers parsed and checked against
the file's size, rows streamed to disk with their checksum computed on the way.

numpy's own loader maps a file whose header was edited to fewer rows without a word, and reports a
0-byte or truncated file as a bare EOFError or "mmap length is greater than file size"; every error
here names the file and says what is wrong.
"""

from __future__ import annotations

import ast
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHECKSUM = "crc32"  # of a file's data bytes: ~6 GB/s here, cheap enough to compute while writing
_READ_BLOCK = 16 << 20
_WRITEBACK_BYTES = 8 << 20  # how much is written between two nudges of the kernel's writeback


class StoreError(ValueError):
    """A dataset directory or file that is incomplete, damaged, or not what its manifest says.

    The message starts with the file (or directory) and says what is wrong, e.g.
    `.../x.npy: 100 rows in its header, 1000 in the manifest`.
    """

    def __init__(self, path: str | os.PathLike, problem: str, *, context: str | None = None):
        self.path = Path(path)
        self.problem = problem
        self.context = context  # the argument the path came from, e.g. "x"
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}{os.fspath(path)}: {problem}")



@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` file's header says: dtype, shape, memory order, and where the data starts."""

    dtype: np.dtype
    shape: tuple
    fortran_order: bool
    offset: int

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def read_npy_header(path: str | os.PathLike) -> NpyHeader:
    """Parse the header of the `.npy` file at `path`; StoreError naming the file if it is not one.

    Raises FileNotFoundError if there is no file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        start = f.read(12)
        if not start:
            raise StoreError(path, "empty file (0 bytes), not a .npy file")
        if not start.startswith(b"\x93NUMPY"):
            raise StoreError(path, "not a .npy file (no .npy magic at the start)")
        if len(start) < 10:
            raise StoreError(path, f"truncated inside its .npy header ({len(start)} bytes)")
        major = start[6]
        if major == 1:
            length, begin, encoding = int.from_bytes(start[8:10], "little"), 10, "latin1"
        elif major in (2, 3) and len(start) == 12:
            length, begin, encoding = int.from_bytes(start[8:12], "little"), 12, "latin1" if major == 2 else "utf8"
        else:
            raise StoreError(path, f"unsupported .npy format version {major}")
        f.seek(begin)
        raw = f.read(length)
    if len(raw) < length:
        raise StoreError(path, "truncated inside its .npy header")
    try:
        meta = ast.literal_eval(raw.decode(encoding))
        dtype = np.lib.format.descr_to_dtype(meta["descr"])
        shape = tuple(int(n) for n in meta["shape"])
        fortran = bool(meta["fortran_order"])
    except Exception as exc:  # a damaged header can fail in many ways; all mean the same
        raise StoreError(path, f"damaged .npy header ({exc.__class__.__name__}: {exc})") from None
    if any(n < 0 for n in shape):
        raise StoreError(path, f"damaged .npy header (negative shape {shape})")
    return NpyHeader(dtype, shape, fortran, begin + length)


def check_npy_size(path: Path, header: NpyHeader, size: int) -> None:
    """The file must hold exactly the bytes its header declares: fewer is a truncation, more is a
    header edited to fewer rows (numpy itself would silently map the shorter array)."""
    if header.dtype.hasobject:
        raise StoreError(path, "holds Python objects (a pickled object array), which cannot be memory-mapped")
    expected = header.offset + header.data_bytes
    rows = header.shape[0] if header.shape else 1
    if size < expected:
        raise StoreError(
            path, f"truncated: {size} bytes, but its header ({rows} rows of {header.shape[1:]} {header.dtype}) needs {expected}"
        )
    if size > expected:
        raise StoreError(
            path,
            f"{size - expected} bytes more than its header declares ({rows} rows of {header.shape[1:]} {header.dtype}): "
            "the header was edited or the file is damaged",
        )


# -- writing ---------------------------------------------------------------------------------------


def checksum_text(crc: int) -> str:
    return f"{CHECKSUM}:{crc & 0xFFFFFFFF:08x}"


def file_checksum(path: str | os.PathLike, offset: int = 0) -> str:
    """The checksum of the bytes of `path` from `offset` on (a `.npy` file's data: offset = header size)."""
    crc = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            block = f.read(_READ_BLOCK)
            if not block:
                return checksum_text(crc)
            crc = zlib.crc32(block, crc)


def _sync_file_range():
    """Linux's sync_file_range(2), to start writing pages to disk without waiting; None elsewhere."""
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return function


_START_WRITEBACK = _sync_file_range() if os.name == "posix" else None
_SYNC_FILE_RANGE_WRITE = 2


class NpyFileWriter:
    """Streams chunks of rows into one `.npy` file at `path`; `close()` returns its manifest entry.

    The header is written first with room for any row count (spaces pad it, which the `.npy` format
    allows) and rewritten with the real count at the end, so rows go straight to disk and the file is
    never copied. The checksum of the data is computed here, while each chunk is in memory. A durable
    file is fsynced at the end; on Linux its writeback is started every few MB while rows keep coming,
    so the disk works during the computation and the final fsync finds little left (measured: a
    245 MB cache's fsync went from 75 ms to about 1).

    The data starts at a multiple of `align` bytes: 64 as numpy writes it, or a page (4096) for shards,
    which seqkit.sharded can then map back to back into one address range.
    """

    def __init__(self, path: str | os.PathLike, *, durable: bool = True, align: int = 64):
        self.path = Path(path)
        self.durable = durable
        self.align = align
        self.file = None
        self.dtype: np.dtype | None = None
        self.row_shape: tuple | None = None
        self.rows = 0
        self.crc = 0
        self.header_len = 0
        self._written = 0  # bytes written so far, and up to where writeback was started
        self._flushed = 0

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if chunk.dtype.hasobject:
            raise TypeError(f"{self.path.name}: cannot store object-dtype data; convert it to numbers first")
        if chunk.ndim == 0:
            raise ValueError(f"{self.path.name}: got a scalar where a chunk of rows was expected")
        if self.file is None:
            self.dtype, self.row_shape = chunk.dtype, chunk.shape[1:]
            self.file = open(self.path, "xb")
            self.header_len = len(self._header(10**18))
            self.file.write(self._header(0))
        elif chunk.shape[1:] != self.row_shape or chunk.dtype != self.dtype:
            raise ValueError(
                f"{self.path.name}: rows change shape or dtype after row {self.rows}: "
                f"{self.row_shape} {self.dtype} before, {chunk.shape[1:]} {chunk.dtype} now"
            )
        data = np.ascontiguousarray(chunk)
        view = memoryview(data).cast("B") if data.nbytes else b""
        self.file.write(view)
        self.crc = zlib.crc32(view, self.crc)
        self.rows += len(chunk)
        self._written += data.nbytes
        if self.durable and _START_WRITEBACK is not None and self._written - self._flushed >= _WRITEBACK_BYTES:
            self.file.flush()
            offset = self.header_len + self._flushed
            _START_WRITEBACK(self.file.fileno(), offset, self._written - self._flushed, _SYNC_FILE_RANGE_WRITE)  # errors: ignored
            self._flushed = self._written

    def start(self, dtype: np.dtype, row_shape: tuple) -> None:
        """Fix the dtype and row shape before any rows (a file that may stay empty)."""
        if self.file is None:
            self.append(np.empty((0, *row_shape), dtype=dtype))

    def _header(self, rows: int) -> bytes:
        meta = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows, *self.row_shape)}
        text = repr(meta)
        if self.header_len:
            body = self.header_len - 10
        else:
            body = len(text) + 1
            body += -(body + 10) % self.align  # data starts on an `align`-byte boundary (numpy: 64)
        text = text + " " * (body - len(text) - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")

    def close(self) -> dict:
        """Finish the file (final header, fsync if durable) and return its manifest file entry."""
        if self.file is None:
            raise ValueError(f"{self.path.name}: no rows were written")
        self.file.seek(0)
        self.file.write(self._header(self.rows))
        self.file.flush()
        if self.durable:
            os.fsync(self.file.fileno())
        size = os.fstat(self.file.fileno()).st_size
        self.file.close()
        self.file = None
        return {"file": self.path.name, "rows": self.rows, "offset": self.header_len, "bytes": size, "checksum": checksum_text(self.crc)}

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.path.unlink(missing_ok=True)
