"""seqkit's on-disk format: memory-mappable `.npy` files plus a `manifest.json` written last.

Preprocess caches, packs (`seqkit.pack`, image folders) and sharded datasets all use it. A dataset is
a directory:

    manifest.json        what the directory holds; written last, atomically (temp file, fsync, rename)
    <array>.npy          one file per array ...
    <array>-00000.npy    ... or several (shards), in order: the array is their concatenation
    <attachment>         small files committed with the arrays (an image pack's classes.json)

The manifest (JSON; `VERSION` 1):

    format        "seqkit-store"
    version       1
    fingerprint   what the data was built from (inputs and code), or null
    structure     the nesting of a multi-output result (seqkit.structure.to_json), or null
    leaves        array names in the structure's leaf order, or null
    meta          free JSON for the writer (an image pack: its classes, the images skipped)
    arrays        {name: {"dtype": numpy descr, "shape": row shape (list), "rows": total rows,
                          "files": [{"file": name, "rows": rows, "offset": data offset (header bytes),
                                     "bytes": file size, "checksum": "crc32:<8 hex digits>"}, ...],
                          "meta": optional JSON of this array (a packed file list: the files skipped)}}
    attachments   {file name: {"bytes": size, "checksum": "crc32:..."}}
    writing       present only while an in-place commit renames files: {"pid", "host", "arrays",
                  "attachments", "files"}; what it names is refused until written again
    writer        {"pid", "host", "seqkit", "time"} of the commit

Promises, and how they are kept:
- No manifest, no dataset: `open_dataset` refuses a directory without a complete, valid manifest,
  and a `.npy` file listed in a manifest (`open_npy`) is read only if its entry is complete.
- Cheap facts are checked on every open (each file's size, its `.npy` header against the manifest's
  rows, dtype and row shape); the checksums (CRC-32 of the data bytes, computed while writing, when the
  data is in memory) on demand: `open_dataset(..., verify=True)` or `verify(path)`.
- Committed whole: a `DatasetWriter` stages everything in a temp folder. A new dataset directory is
  that folder renamed into place; concurrent writers of the same directory both succeed (the second
  adopts the first's result if all its checksums are right, or replaces it). In-place commits into a
  folder that may hold other files (packs) write the manifest's `writing` marker first, then rename
  the files, then the final manifest: a crash in between leaves the marker, never old and new mixed.
- Temp files and folders are named `.<base>.<token>.seqkit-<pid>@<host>.tmp`; `sweep` removes those
  of dead processes on this host (and only those), and every writer sweeps where it writes.

The API is small and free of Keras: `DatasetWriter` (chunks in), `open_dataset` / `Dataset` (a
directory out), `verify`, `open_npy` (one file, checked against its folder's manifest), `sweep`, plus
`write_npy` and `DatasetWriter.add_files` for shards written by other processes into `writer.stage`.

Sharded arrays: shards are sized by a target in MB (`rows_per_shard`, default `DEFAULT_SHARD_MB`), and
`Dataset.open(name)` serves a sharded array as one `seqkit.sharded.ShardedArray` (a single file as a
memmap), so readers never care how an array was split.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import time
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from seqkit.npyfile import CHECKSUM, NpyFileWriter, StoreError, check_npy_size, checksum_text, file_checksum, read_npy_header
from seqkit.structure import TreeDef, from_json, to_json, unflatten
from seqkit.tempfiles import HOST, sweep, temp_name

try:
    import fcntl
except ImportError:  # not POSIX: in-place commits are then not serialised between processes
    fcntl = None

FORMAT = "seqkit-store"
VERSION = 1
MANIFEST = "manifest.json"
# Big enough that a shard is a sizeable task (per-task overheads of Dask/Ray are milliseconds) and few
# files per array; small enough that a worker holds a few in flight and a retry redoes little.
DEFAULT_SHARD_MB = 256
# Shard files start their data on a 4096-byte boundary, and every shard but the last holds a multiple of
# 4096 bytes of rows whenever the shard size allows it: then seqkit.sharded maps all the shards of an
# array back to back into one address range, and reads them as fast as one file. A constant, not the
# machine's page size, so that every machine and engine writes the same bytes.
SHARD_ALIGN = 4096
_NAME = re.compile(r"^[^./\\\x00][^/\\\x00]{0,254}$")


def expand(path: str | os.PathLike) -> Path:
    """`path` with `~` expanded: every path seqkit takes goes through here."""
    return Path(os.path.expanduser(os.fspath(path)))


def shard_file(name: str, index: int) -> str:
    """The file name of shard `index` of array `name`."""
    return f"{name}-{index:05d}.npy"


def check_shard_mb(shard_mb: Any, name: str = "shard_mb") -> float | None:
    """A shard size target in MB (a positive number), or None (one file per array)."""
    if shard_mb is None:
        return None
    if isinstance(shard_mb, bool) or not isinstance(shard_mb, (int, float, np.integer, np.floating)) or not shard_mb > 0:
        raise ValueError(f"{name} must be a size in MB > 0 (e.g. {DEFAULT_SHARD_MB}) or None, got {shard_mb!r}")
    if shard_mb == float("inf"):
        raise ValueError(f"{name} must be a finite size in MB; use None for one file per array")
    return float(shard_mb)


def rows_per_shard(row_bytes: int, shard_mb: float) -> int:
    """How many rows of `row_bytes` bytes make a shard of about `shard_mb` MB (at least one row), rounded
    down to a whole number of SHARD_ALIGN-byte blocks when a shard holds at least one such block."""
    row_bytes = max(1, int(row_bytes))
    rows = max(1, int(shard_mb * (1 << 20)) // row_bytes)
    unit = SHARD_ALIGN // math.gcd(row_bytes, SHARD_ALIGN)  # rows that fill whole blocks
    return rows - rows % unit if rows >= unit else rows


def write_npy(path: str | os.PathLike, chunks: Iterable[np.ndarray], *, durable: bool = True, align: int = SHARD_ALIGN) -> dict:
    """Write `chunks` (arrays of rows) as one `.npy` file and return its manifest file entry, plus the
    array's "dtype" and "shape" (row shape). For shards written by other processes or machines into
    `DatasetWriter.stage`; the driver then passes the entries to `DatasetWriter.add_files`."""
    writer = NpyFileWriter(path, durable=durable, align=align)
    try:
        for chunk in chunks:
            writer.append(chunk)
        entry = writer.close()
    except BaseException:
        writer.abort()
        raise
    return {**entry, "dtype": _descr(writer.dtype), "shape": list(writer.row_shape)}


class ArrayWriter:
    """The chunks of one array, written as `<name>.npy` (or `file`), or as shards of at most
    `rows_per_file` rows each (`<name>-00000.npy`, ...)."""

    def __init__(self, directory: Path, name: str, *, file: str | None = None, rows_per_file: int | None = None, durable: bool = True):
        self.directory = directory
        self.name = name
        self.file = file or f"{name}.npy"
        self.rows_per_file = rows_per_file
        self.durable = durable
        self.done: list[dict] = []
        self.current: NpyFileWriter | None = None
        self.dtype: np.dtype | None = None
        self.row_shape: tuple | None = None

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if self.rows_per_file is None:
            self._writer().append(chunk)
            self._remember(self.current)
            return
        start = 0
        while True:
            writer = self._writer()
            take = min(len(chunk) - start, self.rows_per_file - writer.rows)
            writer.append(chunk[start : start + take])
            self._remember(writer)
            start += take
            if writer.rows >= self.rows_per_file:
                self.done.append(writer.close())
                self.current = None
            if start >= len(chunk):
                return

    def _remember(self, writer: NpyFileWriter) -> None:
        self.dtype, self.row_shape = writer.dtype, writer.row_shape

    def _writer(self) -> NpyFileWriter:
        if self.current is None:
            if self.rows_per_file is None:
                self.current = NpyFileWriter(self.directory / self.file, durable=self.durable)
            else:
                self.current = NpyFileWriter(self.directory / shard_file(self.name, len(self.done)), durable=self.durable, align=SHARD_ALIGN)
            if self.dtype is not None:
                self.current.start(self.dtype, self.row_shape)
        return self.current

    @property
    def rows(self) -> int:
        return sum(entry["rows"] for entry in self.done) + (self.current.rows if self.current else 0)

    def close(self) -> dict:
        if self.dtype is None:
            raise ValueError(f"array {self.name!r}: no rows were written")
        if self.current is not None and (self.current.rows or not self.done):
            self.done.append(self.current.close())
        elif self.current is not None:
            self.current.abort()  # an empty shard opened after a full one
        self.current = None
        return {"dtype": _descr(self.dtype), "shape": list(self.row_shape), "rows": self.rows, "files": self.done}

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None


class DatasetWriter:
    """Write a dataset directory: arrays from chunks, attachments, metadata; `commit()` makes it whole.

    in_place=False: `path` is the dataset and nothing else. Everything is staged in a sibling temp
    folder that `commit` renames to `path` (atomic). If a dataset is in the way (a concurrent writer
    of the same cache, or a damaged one being rebuilt), it is adopted when its fingerprint is the
    same and every checksum is right, and replaced otherwise.
    in_place=True: `path` is a folder that may hold other files (a pack's output folder). The arrays
    and attachments written here are added to its manifest, replacing those of the same name; the
    manifest's `writing` marker covers the renames, so a crash never mixes old and new files.

    Use it as a context manager, or call `abort()` on failure: nothing is left behind either way.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        in_place: bool = False,
        fingerprint: str | None = None,
        structure: TreeDef | None = None,
        meta: dict | None = None,
        rows_per_file: int | None = None,
        durable: bool = True,
    ):
        if rows_per_file is not None and (isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int) or rows_per_file < 1):
            raise ValueError(f"rows_per_file must be a positive number of rows or None, got {rows_per_file!r}")
        self.path = expand(path)
        self.in_place = in_place
        self.fingerprint = fingerprint
        self.structure = structure
        self.meta = dict(meta or {})
        self.rows_per_file = rows_per_file
        self.durable = durable
        self._structure_json = to_json(structure) if structure is not None else None  # bad keys fail now
        if in_place and self.path.exists():
            _foreign_manifest_check(self.path)
        self._stage: Path | None = None
        self._created: list[Path] = []  # folders this writer created (deepest first), removed on abort
        self.writers: dict[str, ArrayWriter] = {}
        self.array_meta: dict[str, dict] = {}  # optional per-array JSON, stored as the array entry's "meta"
        self.entries: dict[str, dict] = {}
        self.attachments: dict[str, dict] = {}

    # -- staging -----------------------------------------------------------------------------------
    @property
    def stage(self) -> Path:
        """The private temp folder everything is written into before the commit (created on first use)."""
        if self._stage is None:
            parent = self.path if self.in_place else self.path.parent
            self._created = [p for p in (parent, *parent.parents) if not p.exists()]
            parent.mkdir(parents=True, exist_ok=True)
            stage = parent / temp_name("stage" if self.in_place else self.path.name)
            sweep(parent)
            stage.mkdir()
            self._stage = stage
        return self._stage

    def array(self, name: str, *, file: str | None = None) -> ArrayWriter:
        """The writer of array `name` (created on first use; `file` overrides the file name `<name>.npy`)."""
        if name not in self.writers:
            _check_name(name, "array name")
            if file is not None:
                _check_name(file, "file name")
            if name in self.entries:
                raise ValueError(f"array {name!r} was already added")
            self.writers[name] = ArrayWriter(self.stage, name, file=file, rows_per_file=self.rows_per_file, durable=self.durable)
        return self.writers[name]

    def append(self, name: str, chunk: np.ndarray) -> None:
        self.array(name).append(chunk)

    def attach(self, name: str, data: bytes) -> None:
        """Commit the small file `name` (e.g. classes.json) with the arrays."""
        _check_name(name, "attachment name")
        if name == MANIFEST:
            raise ValueError(f"{MANIFEST} is written by the commit itself")
        path = self.stage / name
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
        self.attachments[name] = {"bytes": len(data), "checksum": checksum_text(zlib.crc32(data))}

    def add_files(self, name: str, files: list[dict]) -> None:
        """Add array `name` made of files already written into `stage` (by `write_npy`, e.g. one shard per
        task of a distributed engine), in order. Each entry is what `write_npy` returned."""
        _check_name(name, "array name")
        if not files:
            raise ValueError(f"array {name!r}: no files")
        kinds = {(json.dumps(f["dtype"]), tuple(f["shape"])) for f in files}
        if len(kinds) > 1:
            raise ValueError(f"array {name!r}: its files differ in dtype or row shape: {sorted(kinds)}")
        for f in files:
            if not (self.stage / f["file"]).is_file():
                raise FileNotFoundError(f"array {name!r}: {f['file']} is not in the stage folder {self.stage}")
        entries = [{k: f[k] for k in ("file", "rows", "offset", "bytes", "checksum")} for f in files]
        self.entries[name] = {"dtype": files[0]["dtype"], "shape": list(files[0]["shape"]), "rows": sum(f["rows"] for f in files), "files": entries}

    # -- committing ------------------------------------------------------------------------------
    def _manifest(self, arrays: dict, attachments: dict, old: dict | None = None) -> dict:
        """The manifest for `arrays`; an in-place commit keeps the folder's fingerprint, structure and
        meta (`old`) unless this writer sets its own."""
        old = old or {}
        own_structure = self.structure is not None
        return {
            "format": FORMAT,
            "version": VERSION,
            "fingerprint": self.fingerprint if self.fingerprint is not None else old.get("fingerprint"),
            "structure": self._structure_json if own_structure else old.get("structure"),
            "leaves": list(self.entries) if own_structure else old.get("leaves"),
            "meta": self.meta if self.meta else old.get("meta", {}),
            "arrays": arrays,
            "attachments": attachments,
            "writer": {"pid": os.getpid(), "host": HOST, "seqkit": _version(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        }

    def commit(self) -> "Dataset":
        """Close every array, write the manifest last, and make the dataset visible; return it opened."""
        try:
            for name, writer in self.writers.items():
                self.entries[name] = writer.close()
            self.writers = {}
            for name, meta in self.array_meta.items():
                self.entries[name]["meta"] = meta
            if self.structure is not None and len(self.entries) != self.structure.num_leaves:
                raise ValueError(f"the structure has {self.structure.num_leaves} leaves but {len(self.entries)} arrays were written")
            stage = self.stage
            if self.in_place:
                return self._commit_in_place(stage)
            return self._commit_whole(stage)
        except BaseException:
            self.abort()
            raise

    def _commit_whole(self, stage: Path) -> "Dataset":
        _write_json(stage / MANIFEST, self._manifest(self.entries, self.attachments), durable=self.durable, atomic=False)
        if self.durable:
            _fsync_dir(stage)
        for _attempt in range(20):
            try:
                os.rename(stage, self.path)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            else:
                self._stage = None
                self._created = []
                if self.durable:
                    _fsync_dir(self.path.parent)
                return open_dataset(self.path)
            # Someone else's dataset is there: a concurrent writer's, or the damaged one being rebuilt.
            # Adopted only if every checksum is right (the cheap checks pass on flipped bytes).
            try:
                existing = open_dataset(self.path, fingerprint=self.fingerprint, verify=True)
            except FileNotFoundError:
                continue  # moved away meanwhile: try again
            except StoreError:
                aside = self.path.parent / temp_name(f"{self.path.name}.old")
                try:
                    os.rename(self.path, aside)
                except FileNotFoundError:
                    continue
                shutil.rmtree(aside, ignore_errors=True)
                continue
            self.abort()
            return existing
        raise OSError(f"{self.path}: could not commit the dataset (other writers keep replacing it)")

    def _commit_in_place(self, stage: Path) -> "Dataset":
        new_files = {f["file"] for entry in self.entries.values() for f in entry["files"]} | set(self.attachments)
        with _locked(self.path):
            old = _read_own_manifest(self.path) or {}
            arrays, attachments = dict(old.get("arrays", {})), dict(old.get("attachments", {}))
            # What an earlier commit left half-renamed stays refused until this one rewrites it.
            unfinished = old.get("writing") or {}
            left = {
                "arrays": [n for n in unfinished.get("arrays", []) if n not in self.entries],
                "attachments": [n for n in unfinished.get("attachments", []) if n not in self.attachments],
                "files": [n for n in unfinished.get("files", []) if n not in new_files],
            }
            for name in unfinished.get("arrays", []):
                arrays.pop(name, None)
            for name in unfinished.get("attachments", []):
                attachments.pop(name, None)
            others = {f["file"] for name, entry in arrays.items() if name not in self.entries for f in entry["files"]}
            others |= {name for name in attachments if name not in self.attachments}
            if new_files & others:
                raise ValueError(f"{self.path}: {', '.join(sorted(new_files & others))} already belong to another array of its {MANIFEST}")
            stale = [f["file"] for name, entry in arrays.items() if name in self.entries for f in entry["files"] if f["file"] not in new_files]

            marker = self._manifest(arrays, attachments, old)
            marker["writing"] = {
                "pid": os.getpid(),
                "host": HOST,
                "arrays": sorted(set(self.entries) | set(left["arrays"])),
                "attachments": sorted(set(self.attachments) | set(left["attachments"])),
                "files": sorted(new_files | set(left["files"])),
            }
            _write_json(self.path / MANIFEST, marker, durable=self.durable)
            for name in stale:
                (self.path / name).unlink(missing_ok=True)
            for name in sorted(new_files):
                os.replace(stage / name, self.path / name)
            if self.durable:
                _fsync_dir(self.path)
            arrays.update(self.entries)
            attachments.update(self.attachments)
            final = self._manifest(arrays, attachments, old)
            if any(left.values()):
                final["writing"] = {"pid": unfinished.get("pid"), "host": unfinished.get("host"), **left}
            _write_json(self.path / MANIFEST, final, durable=self.durable)
        shutil.rmtree(stage, ignore_errors=True)
        self._stage = None
        self._created = []
        if "writing" in final:
            return Dataset(self.path, final)
        return open_dataset(self.path)

    def abort(self) -> None:
        """Remove everything written so far (also the output folder, if this writer created it)."""
        for writer in self.writers.values():
            writer.abort()
        self.writers = {}
        if self._stage is not None:
            _remove_tree(self._stage)
            self._stage = None
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        self._created = []

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:
            self.abort()


# -- reading ---------------------------------------------------------------------------------------


class Dataset:
    """An opened dataset directory whose manifest and cheap facts checked out (see `open_dataset`)."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest

    @property
    def fingerprint(self) -> str | None:
        return self.manifest.get("fingerprint")

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta") or {}

    @property
    def names(self) -> list[str]:
        """The array names, in manifest order."""
        return list(self.manifest["arrays"])

    @property
    def structure(self) -> TreeDef | None:
        data = self.manifest.get("structure")
        return from_json(data) if data is not None else None

    def rows(self, name: str) -> int:
        return self._entry(name)["rows"]

    def files(self, name: str) -> list[Path]:
        """The files of array `name`, in order (several for a sharded array)."""
        return [self.path / f["file"] for f in self._entry(name)["files"]]

    def shards(self, name: str) -> list[np.ndarray]:
        """Array `name` as one read-only memory-mapped array per file."""
        entry = self._entry(name)
        dtype, row_shape = _dtype(entry["dtype"]), tuple(entry["shape"])
        return [_map(self.path / f["file"], dtype, (f["rows"], *row_shape), f["offset"], "C") for f in entry["files"]]

    def array(self, name: str) -> np.ndarray:
        """Array `name`, read-only and memory-mapped. A sharded array: use `open` or `shards`."""
        shards = self.shards(name)
        if len(shards) != 1:
            raise ValueError(f"{self.path}: array {name!r} is split over {len(shards)} files; read it with shards() or open()")
        return shards[0]

    def open(self, name: str) -> Any:
        """Array `name` for reading rows: its memory-mapped file, or, split over several files, one
        `seqkit.sharded.ShardedArray` that serves them as if they were one array."""
        entry = self._entry(name)
        if len(entry["files"]) == 1:
            return self.array(name)
        from seqkit.sharded import ShardedArray  # it builds on this module

        return ShardedArray.from_entry(self.path, name, entry)

    def tree(self) -> Any:
        """The arrays in the stored structure (a multi-output result), or the single array; each one
        as `open` returns it."""
        structure = self.structure
        leaves = self.manifest.get("leaves") or self.names
        if structure is None:
            if len(leaves) != 1:
                raise ValueError(f"{self.path}: {len(leaves)} arrays and no structure")
            return self.open(leaves[0])
        return unflatten(structure, [self.open(name) for name in leaves])

    def attachment(self, name: str) -> Path:
        if name not in (self.manifest.get("attachments") or {}):
            raise KeyError(f"{self.path}: no attachment {name!r}")
        return self.path / name

    def verify(self) -> None:
        """Recompute every file's checksum and compare it with the manifest; StoreError naming the file."""
        for name in self.names:
            for f in self._entry(name)["files"]:
                _compare_checksum(self.path / f["file"], f["offset"], f["checksum"])
        for name, entry in (self.manifest.get("attachments") or {}).items():
            _compare_checksum(self.path / name, 0, entry["checksum"])

    def _entry(self, name: str) -> dict:
        try:
            return self.manifest["arrays"][name]
        except KeyError:
            raise KeyError(f"{self.path}: no array {name!r} (it has {', '.join(self.names) or 'none'})") from None


def open_dataset(path: str | os.PathLike, *, verify: bool = False, fingerprint: str | None = None) -> Dataset:
    """Open the dataset directory `path`: its manifest must be complete and valid, and every file's
    size and header must match it. `verify=True` also compares every checksum (reads everything).
    `fingerprint`, if given, must equal the manifest's. Raises FileNotFoundError if there is no such
    directory, StoreError (naming the file and the problem) for anything else."""
    path = expand(path)
    if not path.is_dir():
        if path.exists():
            raise StoreError(path, "not a directory, so not a seqkit dataset")
        raise FileNotFoundError(f"no dataset directory {os.fspath(path)!r}")
    manifest = _read_own_manifest(path)
    if manifest is None:
        raise StoreError(path, f"no {MANIFEST}: not a complete seqkit dataset (never finished, or not written by seqkit)")
    _check_manifest(path, manifest)
    writing = manifest.get("writing")
    if writing is not None:
        what = ", ".join(writing.get("arrays", []) + writing.get("attachments", []))
        raise StoreError(
            path / MANIFEST,
            f"an update of {what} by process {writing.get('pid')} on {writing.get('host')} did not finish; write it again",
        )
    if fingerprint is not None and manifest.get("fingerprint") != fingerprint:
        raise StoreError(path / MANIFEST, "built from different inputs or code (fingerprint differs)")
    for name, entry in manifest["arrays"].items():
        _check_array(path, name, entry)
    for name, entry in (manifest.get("attachments") or {}).items():
        _check_size(path / name, entry["bytes"])
    dataset = Dataset(path, manifest)
    if verify:
        dataset.verify()
    return dataset


def verify(path: str | os.PathLike) -> Dataset:
    """`open_dataset(path, verify=True)`: every checksum compared; StoreError naming the first bad file."""
    return open_dataset(path, verify=True)


def open_npy(path: str | os.PathLike, name: str = "file", *, verify: bool = False) -> np.ndarray:
    """The `.npy` file at `path`, read-only and memory-mapped, with every error naming `name` (the
    argument it came from) and the file.

    Any `.npy` file is checked for a header that matches its size (truncated files and edited headers
    are refused). If the file's folder has a seqkit manifest listing it, the file must also match its
    entry (rows, dtype, row shape, size), the entry must be complete, and with `verify` its checksum.
    """
    path = expand(path)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such .npy file: {os.fspath(path)!r}")
    try:
        manifest = _folder_manifest(path.parent)
        listed = None
        if manifest is not None:
            writing = manifest.get("writing")
            if writing is not None and path.name in writing.get("files", []):
                raise StoreError(
                    path,
                    f"its folder's {MANIFEST} says an update by process {writing.get('pid')} on {writing.get('host')} "
                    "did not finish; write it again",
                )
            listed = _find_file(manifest, path.name)
        if listed is not None:  # compared with its manifest entry first: the most telling message
            entry, file_entry = listed
            _check_file(path, entry, file_entry)
            if verify:
                _compare_checksum(path, file_entry["offset"], file_entry["checksum"])
        header = read_npy_header(path)
        check_npy_size(path, header, path.stat().st_size)
    except StoreError as exc:
        raise StoreError(exc.path, exc.problem, context=name) from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{name}: {os.fspath(path)!r} is a folder, not a .npy file") from None
    except OSError as exc:
        raise OSError(f"{name}: cannot read .npy file {os.fspath(path)!r}: {exc}") from None
    order = "F" if header.fortran_order and len(header.shape) > 1 else "C"
    return _map(path, header.dtype, header.shape, header.offset, order)


# -- checks ------------------------------------------------------------------------------------------


def _map(path: Path, dtype: np.dtype, shape: tuple, offset: int, order: str) -> np.ndarray:
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize == 0:
        empty = np.empty(shape, dtype=dtype)  # nothing to map (mmap refuses empty ranges)
        empty.flags.writeable = False
        return empty
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def _check_size(path: Path, expected: int) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise StoreError(path, f"missing (listed in {MANIFEST})") from None
    if size != expected:
        raise StoreError(path, f"{size} bytes, {expected} in the manifest (truncated, replaced or damaged)")
    return size


def _check_file(path: Path, entry: dict, file_entry: dict) -> None:
    size = _check_size(path, file_entry["bytes"])
    if size == 0:
        raise StoreError(path, "empty file (0 bytes)")
    header = read_npy_header(path)
    rows = header.shape[0] if header.shape else None
    if rows != file_entry["rows"]:
        raise StoreError(path, f"{rows} rows in its header, {file_entry['rows']} in the manifest")
    dtype, row_shape = _dtype(entry["dtype"]), tuple(entry["shape"])
    if header.dtype != dtype:
        raise StoreError(path, f"dtype {header.dtype} in its header, {dtype} in the manifest")
    if header.shape[1:] != row_shape:
        raise StoreError(path, f"row shape {header.shape[1:]} in its header, {row_shape} in the manifest")
    if header.fortran_order:
        raise StoreError(path, "Fortran order in its header; seqkit writes C order")
    if header.offset != file_entry["offset"]:
        raise StoreError(path, f"data starts at byte {header.offset}, at {file_entry['offset']} in the manifest")
    check_npy_size(path, header, size)


def _check_array(directory: Path, name: str, entry: dict) -> None:
    for file_entry in entry["files"]:
        _check_file(directory / file_entry["file"], entry, file_entry)
    total = sum(f["rows"] for f in entry["files"])
    if total != entry["rows"]:
        raise StoreError(directory / MANIFEST, f"array {name!r} has {entry['rows']} rows but its files hold {total}")


def _compare_checksum(path: Path, offset: int, expected: str) -> None:
    algorithm = expected.split(":", 1)[0]
    if algorithm != CHECKSUM:
        raise StoreError(path, f"checksum algorithm {algorithm!r} is not known to this seqkit")
    try:
        actual = file_checksum(path, offset)
    except FileNotFoundError:
        raise StoreError(path, f"missing (listed in {MANIFEST})") from None
    if actual != expected:
        raise StoreError(path, f"checksum {actual} does not match {expected} in the manifest: the data is damaged")


def _check_manifest(directory: Path, manifest: dict) -> None:
    """The manifest's own shape: a malformed one is refused here rather than failing with a KeyError later."""
    where = directory / MANIFEST
    version = manifest.get("version")
    if version != VERSION:
        raise StoreError(where, f"format version {version!r}; this seqkit reads version {VERSION}")
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict):
        raise StoreError(where, "malformed: no arrays")
    try:
        for name, entry in arrays.items():
            _dtype(entry["dtype"])
            if not isinstance(entry["rows"], int) or not isinstance(entry["shape"], list) or not entry["files"]:
                raise ValueError(name)
            for f in entry["files"]:
                _check_name(f["file"], "file")
                if not all(isinstance(f[k], int) for k in ("rows", "offset", "bytes")) or not isinstance(f["checksum"], str):
                    raise ValueError(f["file"])
        for name, entry in (manifest.get("attachments") or {}).items():
            _check_name(name, "attachment")
            if not isinstance(entry["bytes"], int) or not isinstance(entry["checksum"], str):
                raise ValueError(name)
        if manifest.get("structure") is not None:
            structure = from_json(manifest["structure"])
            leaves = manifest.get("leaves")
            if not isinstance(leaves, list) or len(leaves) != structure.num_leaves or not set(leaves) <= set(arrays):
                raise ValueError("leaves")
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(where, f"malformed entry ({exc})") from None


def _read_own_manifest(directory: Path) -> dict | None:
    """The seqkit manifest of `directory`, None if there is none; StoreError if it is damaged or foreign."""
    path = directory / MANIFEST
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    if not text:
        raise StoreError(path, "empty file (0 bytes)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StoreError(path, f"damaged: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreError(path, "not a seqkit manifest (another tool's file?)")
    return data


def _foreign_manifest_check(directory: Path) -> None:
    """Refuse up front to write into a folder whose manifest.json belongs to something else."""
    try:
        _read_own_manifest(directory)
    except StoreError as exc:
        if "not a seqkit manifest" in exc.problem:
            raise StoreError(exc.path, "exists and is not a seqkit manifest; write into another folder") from None


def _folder_manifest(directory: Path) -> dict | None:
    """The seqkit manifest of the folder a `.npy` file is in; None if there is none or it is another tool's."""
    try:
        manifest = _read_own_manifest(directory)
    except StoreError as exc:
        if "not a seqkit manifest" in exc.problem:
            return None
        raise
    if manifest is not None:
        _check_manifest(directory, manifest)
    return manifest


def _find_file(manifest: dict, file: str) -> tuple[dict, dict] | None:
    """(array entry, file entry) of `file` in `manifest`, or None if it does not list it."""
    for entry in manifest["arrays"].values():
        for file_entry in entry["files"]:
            if file_entry["file"] == file:
                return entry, file_entry
    return None


# -- small helpers ---------------------------------------------------------------------------------


def _check_name(name: str, what: str) -> None:
    """A name that is a file directly in the dataset folder: no path separators, not hidden (temp names
    start with a dot), not the manifest."""
    if not isinstance(name, str) or not _NAME.match(name) or name == MANIFEST:
        raise ValueError(f"{what} {name!r} must be a plain file name: no '/', not starting with '.', not {MANIFEST}")


def _descr(dtype: np.dtype) -> Any:
    return np.lib.format.dtype_to_descr(dtype)


def _dtype(descr: Any) -> np.dtype:
    def tuples(value):
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    if isinstance(descr, list):
        return np.lib.format.descr_to_dtype([tuples(field) for field in descr])
    return np.lib.format.descr_to_dtype(descr)


def _version() -> str:
    from seqkit import __version__

    return __version__


def _write_json(path: Path, data: dict, *, durable: bool = True, atomic: bool = True) -> None:
    """Write `data` to `path`; atomically: a temp file (fsynced if durable) renamed over `path`."""
    text = (json.dumps(data, indent=1) + "\n").encode()
    target = path.parent / temp_name(path.name) if atomic else path
    try:
        with open(target, "wb") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if atomic:
            os.replace(target, path)
            if durable:
                _fsync_dir(path.parent)
    except BaseException:
        if atomic:
            target.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is then as durable as they make it
    finally:
        os.close(fd)


def _remove_tree(path: Path, *, attempts: int = 40) -> None:
    """Remove the folder `path` even while late writers add to it: a failed distributed run stops
    waiting for its tasks, and one still running elsewhere may create a file in the stage while it is
    being removed (rmtree's last rmdir then fails). Once the folder is gone nothing can be added."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return
        time.sleep(0.05)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on `directory` between processes (flock of the folder itself: no lock file)."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
