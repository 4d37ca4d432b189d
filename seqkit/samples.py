"""pack_samples: call a generator's own per-sample loader once per key, keep the results as one
memory-mapped `.npy` cache, and gather batches from it by key.

The slow pattern it replaces reads one file per sample in every batch of every epoch
(`X[i,] = np.load('data/' + ID + '.npy')`). seqlint's SEQ201 fix moves that per-sample code into a
method and writes

    self._images = seqkit.pack_samples(self._load_image, self.list_IDs)      # end of __init__
    X[:len(list_IDs_temp)] = self._images.take(list_IDs_temp)                # __getitem__

The packed values are exactly what the loader returned: seqkit decodes and resizes nothing itself.

The cache (a seqkit.store dataset under `cache_dir`) is named by a fingerprint of the distinct keys,
in order, and of the loader: its code, constants, closure values, the globals and helpers it reaches,
and for a bound method the attributes of `self` it reads (seqkit.fingerprint). Inside, `files.json`
holds the state of every file the build read (size and mtime, or a content hash), found from
`files=`, from keys that are paths of files, and by watching what the loader opens
(seqkit.samples_load). A later call reuses the cache only if all of those are unchanged and every
checksum is right; otherwise it rebuilds it. An interrupted or failed build leaves nothing that could
be used (the store commits whole; a killed build's temp folder is swept by the next one).

Where the loader runs. The first PROBE_KEYS keys are loaded here: a broken loader fails at once,
and they time it. Then (seqkit.samples_run):
- worker processes, the default when the work is worth their start-up, with this process loading
  too while they start and whenever it has nothing else to do. The loader travels by value
  (seqkit.samples_ship), so they neither import the module of a Keras Sequence (and TensorFlow) nor
  run a training script again; they time out and die with this process (seqkit.pool);
- threads, when the loader cannot travel (it reaches a class defined in the script): np.load,
  PIL and OpenCV release the GIL for their heavy parts. A note says why;
- this process, with `processes` 0 or 1, or when the whole build is estimated to take less than
  the workers' start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seqkit import store
from seqkit.fingerprint import FingerprintError, function_digest
from seqkit.packing import PackWarning, check_on_error
from seqkit.preprocess import CacheWarning, function_name
from seqkit.samples_load import ChunkResult, Failure, LoadTask, describe_structure, file_state, leaf_label
from seqkit.samples_progress import BuildProgress
from seqkit.samples_run import Indexed, SharedWork, in_this_process, in_threads
from seqkit.samples_ship import NotShippable, Shipped, ship
from seqkit.structure import flatten, unflatten

__all__ = ["pack_samples", "PackedSamples", "BuildInfo", "SampleLoadError", "UntrackedFilesWarning", "default_cache_dir"]

_FORMAT = "seqkit-samples/1"  # part of every fingerprint: bump when the layout or the fingerprint changes
FILES = "files.json"
PROBE_KEYS = 8  # keys loaded in this process first: errors show at once, and they time the loader
CHUNK_BYTES = 8 << 20  # at most this much sample data per chunk sent back by a worker
CHUNK_SECONDS = 0.1  # enough work per chunk to amortise its trip to a worker and back (and the scheduler's delays on a busy machine)
MAX_CHUNK_KEYS = 512
INLINE_BELOW_SECONDS = 1.0  # with processes=None, a build estimated shorter than this stays in this process
DEFAULT_WORKERS = 4
# Packages whose import takes seconds: with processes=None, workers that would import one are used only
# for builds estimated longer than SLOW_IMPORT_PAYS_OFF_SECONDS (threads otherwise).
SLOW_IMPORTS = frozenset({"tensorflow", "keras", "torch", "jax", "tf_keras"})
SLOW_IMPORT_PAYS_OFF_SECONDS = 30.0
_SCRATCH_BYTES = 64 << 20  # larger gathers use a temporary instead of a buffer kept per thread
_LISTED = 50  # paths listed in a warning about skipped keys; PackedSamples.skipped has them all


class SampleLoadError(RuntimeError):
    """The loader failed for a key. `key` and `path` (the file it was reading, if known) say where;
    the loader's own exception is the cause, when it could be brought back from the worker."""

    def __init__(self, message: str, *, key: Any = None, path: str | None = None):
        super().__init__(message)
        self.key = key
        self.path = path


class UntrackedFilesWarning(UserWarning):
    """No file is known for any key: the cache cannot notice when the data behind the keys changes."""


@dataclass(frozen=True)
class BuildInfo:
    """How a cache was built: `where` is "processes", "threads" or "this process"; `loaded_here` is
    how many keys this process loaded itself (the first few, and with processes, what it loaded while
    it waited for the workers)."""

    where: str
    workers: int
    seconds: float
    loaded_here: int
    note: str | None = None


def default_cache_dir() -> Path:
    """$SEQKIT_CACHE_DIR, else $XDG_CACHE_HOME/seqkit, else ~/.cache/seqkit (`~` expanded)."""
    explicit = os.environ.get("SEQKIT_CACHE_DIR")
    if explicit:
        return store.expand(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(os.path.expanduser(xdg)):  # the XDG spec: a relative value is ignored
        return store.expand(xdg) / "seqkit"
    return store.expand("~/.cache") / "seqkit"


# -- the packed samples --------------------------------------------------------------------------


class PackedSamples:
    """The samples of `keys`, one row per distinct key, memory-mapped read-only.

    `data` is the packed array (a read-only np.memmap), or a tuple or dict of them when the loader
    returned several values. `keys` are the keys kept, first-seen order, without repeats; row i holds
    `keys[i]`. `skipped` lists (key, reason) for keys left out by `on_error="skip"`. `path` is the
    cache folder; `reused` says whether this call found it ready; `build` (BuildInfo) says how it was
    built when it was not. Pickling a PackedSamples (Keras' multiprocessing, seqkit's workers) sends the
    folder's path, and the other process maps the same files.
    """

    def __init__(self, path: Path, data: Any, keys: list, skipped: list[tuple[Any, str]], *, fingerprint: str | None, reused: bool, build: BuildInfo | None, files: list[str]):
        self.path = path
        self.data = data
        self.keys = keys
        self.skipped = skipped
        self.reused = reused
        self.build = build
        self.files = files
        self._fingerprint = fingerprint
        leaves, self._treedef = flatten(data)
        self._leaves = [np.asarray(leaf) for leaf in leaves]  # plain ndarrays over the map: faster to index
        self._index = {key: row for row, key in enumerate(keys)}
        self._why_skipped = {key: reason for key, reason in skipped}
        self._scratch = threading.local()
        if len(self._index) != len(keys):
            raise ValueError("PackedSamples: keys must be distinct")

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{leaf.shape[1:]} {leaf.dtype}" for leaf in self._leaves)
        how = "reused" if self.reused else f"built in {self.build.where}" if self.build else "opened"
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return f"<PackedSamples {len(self)} keys of {kinds}{skipped}, {how}, at {os.fspath(self.path)!r}>"

    def rows(self, keys: Iterable[Any]) -> np.ndarray:
        """The row of each key, in the order given (int64). KeyError names the first unknown key."""
        if type(keys) not in (list, tuple):  # (a batch's list of ids: no conversion, no checks to pay)
            keys = _as_key_list(keys, "keys")
        try:
            return np.fromiter(map(self._index.__getitem__, keys), dtype=np.int64, count=len(keys))
        except KeyError:
            pass
        except TypeError as exc:
            raise TypeError(f"keys: every key must be hashable ({exc})") from None
        for key in keys:
            if key not in self._index:
                raise KeyError(self._unknown(key))
        raise AssertionError("unreachable")  # pragma: no cover

    def _unknown(self, key: Any) -> str:
        if key in self._why_skipped:
            return f"key {key!r} was skipped when the samples were packed ({self._why_skipped[key]})"
        return f"key {key!r} is not among the {len(self)} packed keys"

    def take(self, keys: Iterable[Any]) -> Any:
        """The samples of `keys`, in the order given, as ordinary arrays (a tuple or dict of them for a
        loader with several outputs): one row per key, repeats allowed. Rows are read from the map in
        ascending order (sequential reads, for the disk and the page cache), then put back in order."""
        rows = self.rows(keys)
        if len(rows) > 1 and (rows[1:] < rows[:-1]).any():
            order = rows.argsort(kind="stable")
            ascending = rows[order]
            out = [self._gather_in_order(i, leaf, ascending, order) for i, leaf in enumerate(self._leaves)]
        else:
            out = [leaf[rows] for leaf in self._leaves]
        if self._treedef.kind == "leaf":
            return out[0]
        return unflatten(self._treedef, out)

    def _gather_in_order(self, index: int, leaf: np.ndarray, ascending: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Rows `ascending` of `leaf`, read in that order, returned in the batch's order (`order`).

        The rows are read into a scratch buffer kept per thread (Keras may call __getitem__ from
        several) and copied from there into place: two fresh batch-sized temporaries per call would make
        the allocator grow and trim the heap each time, and the page faults cost several times the copy.
        """
        shape = (len(ascending), *leaf.shape[1:])
        out = np.empty(shape, dtype=leaf.dtype)
        if out.nbytes > _SCRATCH_BYTES:
            out[order] = leaf[ascending]
            return out
        buffers = getattr(self._scratch, "buffers", None)
        if buffers is None:
            buffers = self._scratch.buffers = {}
        scratch = buffers.get(index)
        if scratch is None or len(scratch) < len(ascending):
            scratch = buffers[index] = np.empty((max(len(ascending), 2 * len(scratch) if scratch is not None else 0), *leaf.shape[1:]), leaf.dtype)
        np.take(leaf, ascending, axis=0, out=scratch[: len(ascending)], mode="clip")  # (mode="raise" would buffer)
        out[order] = scratch[: len(ascending)]
        return out

    def __reduce__(self):
        return (_reopen, (os.fspath(self.path), self.keys, self.skipped, self._fingerprint))


def _reopen(path: str, keys: list, skipped: list, fingerprint: str | None) -> PackedSamples:
    """A PackedSamples unpickled in another process: the same folder mapped again, checked to be the
    same cache."""
    dataset = store.open_dataset(path, fingerprint=fingerprint)
    return PackedSamples(Path(path), dataset.tree(), keys, skipped, fingerprint=fingerprint, reused=True, build=None, files=[])


# -- the entry point -----------------------------------------------------------------------------


def pack_samples(
    load: Callable[[Any], Any],
    keys: Iterable[Any],
    *,
    files: Callable[[Any], Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    processes: int | None = None,
    on_error: str = "raise",
    hash_contents: bool = False,
    progress: bool | None = None,
    verify_cache: bool = True,
) -> PackedSamples:
    """Call `load(key)` once per distinct key and pack the results into a memory-mapped cache.

    load: the per-sample loader, key -> an array-like, or a tuple or dict of them. Every key must give
        the same structure, shapes and dtypes (ValueError naming the first key that differs).
    keys: the keys (paths, ids), in any order, repeats allowed; rows follow the first-seen order.
    files: key -> the path (or list of paths) that key reads. By default the key itself when it is the
        path of a file, and in any case every file the loader opens through Python or through the C
        readers seqkit.samples_c_opens knows (OpenCV, h5py, soundfile, tifffile). Their sizes and
        modification times are checked on reuse.
    cache_dir: where the cache folder goes; default `default_cache_dir()`.
    processes: worker processes; None picks up to 4 when the build is long enough to pay for them;
        0 or 1 load in this process.
    on_error: "raise" (SampleLoadError naming the key and the file) or "skip" (such keys are left
        out, with a warning naming each file; `take` of one raises KeyError saying why).
    hash_contents: compare file contents (SHA-256) instead of size and modification time.
    progress: None (a bar on a terminal, a plain line every 10 s otherwise), True, or False (quiet).
    verify_cache: on reuse, compare every checksum (reads the cache once, as the first epoch would);
        False checks only sizes and headers.
    """
    if not callable(load):
        raise TypeError(f"pack_samples: load must be a function of one key, got {load!r}")
    if files is not None and not callable(files):
        raise TypeError(f"pack_samples: files must be a function key -> path(s), or None; got {files!r}")
    distinct = _distinct(_as_key_list(keys, "keys"))
    if not distinct:
        raise ValueError("pack_samples: keys is empty; there is nothing to pack")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"pack_samples: cache_dir must be a path or None, got {cache_dir!r}")
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 0):
        raise ValueError(f"pack_samples: processes must be a number >= 0 or None, got {processes!r}")
    on_error = check_on_error(on_error)
    for name, value in (("hash_contents", hash_contents), ("verify_cache", verify_cache)):
        if not isinstance(value, bool):
            raise TypeError(f"pack_samples: {name} must be True or False, got {value!r}")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"pack_samples: progress must be None, True or False, got {progress!r}")

    name = function_name(load)
    root = Path(os.path.abspath(store.expand(cache_dir) if cache_dir is not None else default_cache_dir()))
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"pack_samples: cache_dir {os.fspath(root)!r} is a file, not a folder")
    root.mkdir(parents=True, exist_ok=True)
    store.sweep(root)  # temp folders of builds killed before they could clean up
    try:
        key = _cache_key(load, files, hash_contents, distinct)
    except FingerprintError as exc:
        raise FingerprintError(
            f"pack_samples: {exc}. A cache keyed without it could be reused after it changes, so nothing is "
            "cached: make the loader reach only plain values, arrays, functions and objects with attributes"
        ) from None
    path = root / f"{_safe(name)}-{key[:32]}"

    reporter = BuildProgress(len(distinct), f"pack_samples {name}", progress)
    cached, reason = _open_cached(path, key, distinct, on_error, hash_contents, verify_cache)
    if cached is not None:
        packed = cached
    else:
        if reason:
            reporter.note(f"pack_samples {name}: rebuilding {os.fspath(path)}: {reason}")
        exclude = tuple({os.path.join(form, "") for form in (os.fspath(root), os.path.realpath(root))})  # the cache itself
        task = LoadTask(load, files, hash_contents, on_error == "skip", exclude=exclude)
        packed = _build(task, name, distinct, path, key, processes, reporter)
    _warn(packed, name, len(distinct))
    return packed


def _as_key_list(keys: Any, what: str) -> list:
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of keys, got the single string {keys!r}; wrap it in a list")
    if isinstance(keys, np.ndarray):
        if keys.ndim != 1:
            raise ValueError(f"{what} must be one-dimensional, got an array of shape {keys.shape}")
        return keys.tolist()  # numpy scalars become the Python values they equal
    if not isinstance(keys, Iterable):
        raise TypeError(f"{what} must be a sequence of keys (paths, ids), got {type(keys).__name__}")
    return list(keys)


def _distinct(keys: list) -> list:
    seen: dict = {}
    for position, key in enumerate(keys):
        try:
            seen.setdefault(key, None)
        except TypeError:
            raise TypeError(f"keys[{position}] is {key!r}, which is not hashable; keys must be hashable (str, int, Path, tuple)") from None
    return list(seen)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip(".")[:60] or "loader"


# -- fingerprints ---------------------------------------------------------------------------------


def _cache_key(load: Callable, files: Callable | None, hash_contents: bool, distinct: list) -> str:
    h = hashlib.sha256()
    for part in (_FORMAT, function_digest(load), function_digest(files) if files is not None else "files=default", f"hash_contents={hash_contents}", _keys_digest(distinct)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _keys_digest(keys: list) -> str:
    """A digest of the keys in order that is the same in every run: keys equal in Python (1 and 1.0,
    a str and a numpy str) give the same digest, as they are the same key of the index."""
    if all(type(k) is str for k in keys):
        return hashlib.sha256(b"str:" + json.dumps(keys).encode()).hexdigest()
    h = hashlib.sha256()
    for key in keys:
        h.update(_key_token(key).encode())
        h.update(b"\0")
    return h.hexdigest()


def _key_token(key: Any) -> str:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, str):
        return "s" + json.dumps(key)
    if isinstance(key, (bool, int)) or (isinstance(key, float) and key.is_integer()):
        return f"i{int(key)}"
    if isinstance(key, float):
        return f"f{key!r}"
    if isinstance(key, bytes):
        return "b" + key.hex()
    if key is None:
        return "none"
    if isinstance(key, os.PathLike):
        path = os.fspath(key)
        return f"p{type(key).__name__}" + (json.dumps(path) if isinstance(path, str) else path.hex())
    if isinstance(key, tuple):
        return "t(" + ",".join(_key_token(k) for k in key) + ")"
    if isinstance(key, frozenset):
        return "F(" + ",".join(sorted(_key_token(k) for k in key)) + ")"
    return "o" + function_digest(key)  # any other object: by its class and state


def _content_fingerprint(key: str, files_blob: bytes, meta: dict) -> str:
    """The manifest's fingerprint: the cache key, plus what the build found (files read, keys
    skipped), so that a rebuilt cache is never mistaken for the one it replaces."""
    h = hashlib.sha256(key.encode())
    h.update(hashlib.sha256(files_blob).digest())
    h.update(json.dumps({k: meta.get(k) for k in ("keys", "kept", "skipped")}, sort_keys=True).encode())
    return h.hexdigest()


# -- reuse -----------------------------------------------------------------------------------------


def _open_cached(path: Path, key: str, distinct: list, on_error: str, hash_contents: bool, verify: bool) -> tuple[PackedSamples | None, str | None]:
    """The cache at `path` if it is complete, undamaged and up to date; else (None, why not)."""
    try:
        dataset = store.open_dataset(path, verify=verify)
        meta = dataset.meta
        blob = dataset.attachment(FILES).read_bytes()
        if dataset.fingerprint != _content_fingerprint(key, blob, meta):
            raise store.StoreError(path / store.MANIFEST, "its fingerprint does not match its contents")
        doc = json.loads(blob)
        skipped = [(distinct[s["position"]], _skip_reason(s["path"], s["reason"])) for s in meta["skipped"]]
        kept_positions = sorted(set(range(len(distinct))) - {s["position"] for s in meta["skipped"]})
        data = dataset.tree()
        rows = {len(leaf) for leaf in flatten(data)[0]}
        if meta["keys"] != len(distinct) or rows != {len(kept_positions)} or meta["kept"] != len(kept_positions):
            raise store.StoreError(path / store.MANIFEST, "its row counts do not match its keys")
    except FileNotFoundError:
        return None, None
    except (store.StoreError, ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        warnings.warn(CacheWarning(f"packed samples {os.fspath(path)} are damaged ({exc}); rebuilding them"), stacklevel=3)
        return None, None
    stale = _stale(doc, hash_contents)
    if stale:
        return None, stale
    if skipped and on_error == "raise":
        return None, f"it was built with on_error='skip' and left out {len(skipped)} keys"
    keys = [distinct[p] for p in kept_positions]
    files = sorted(doc["files"])
    return PackedSamples(path, data, keys, skipped, fingerprint=dataset.fingerprint, reused=True, build=None, files=files), None


def _stale(doc: dict, hash_contents: bool) -> str | None:
    """Why the files a cache was built from are not what they were (None if they are)."""
    cwd = doc.get("cwd")
    here = os.getcwd()
    for path, state in doc["files"].items():
        if not os.path.isabs(path) and cwd != here:
            return f"the loader opened relative paths ({path!r}) and the working directory changed from {cwd!r} to {here!r}"
        if state == "changed":
            return f"{path} changed while the cache was being built"
        now = file_state(path if os.path.isabs(path) else os.path.join(cwd, path), hash_contents)
        if now != state:
            if now is None:
                return f"{path} is gone"
            if state is None:
                return f"{path} exists now"
            return f"{path} changed ({'contents' if hash_contents else 'size or modification time'})"
    return None


# -- building ---------------------------------------------------------------------------------------


class _Sink:
    """Receives chunk results in key order: checks them against the first sample, writes the rows,
    collects skips and file states; `commit` makes the cache whole."""

    def __init__(self, path: Path, key: str, name: str, distinct: list, skip: bool):
        self.path = path
        self.key = key
        self.name = name
        self.distinct = distinct
        self.skip = skip
        self.writer: store.DatasetWriter | None = None  # made with the first sample, which fixes the structure
        self.reference: tuple[int, Any, list[tuple]] | None = None  # (position, structure, output kinds)
        self.kept: list[int] = []
        self.skipped: list[Failure] = []
        self.files: dict[str, Any] = {}
        self.keys_with_files = 0

    def add(self, result: ChunkResult) -> None:
        for path, state in result.files.items():
            known = self.files.setdefault(path, state)
            if known != state:
                self.files[path] = "changed"
        self.keys_with_files += result.keys_with_files
        if result.leaves is not None:
            self._check_kinds(result)
            if self.writer is None:
                self.writer = store.DatasetWriter(self.path, structure=result.treedef)
            for i, leaf in enumerate(result.leaves):
                self.writer.append(str(i), leaf)
            self.kept.extend(result.positions)
        for failure in result.failures:
            if failure.fatal or not self.skip:
                raise self._load_error(failure)
            self.skipped.append(failure)
        if result.bad_value is not None:
            key = self.distinct[result.bad_value.position]
            raise ValueError(f"pack_samples: the loader's value for key {key!r} cannot be packed: {result.bad_value.reason}")
        if result.mismatch is not None:
            m = result.mismatch
            raise self._mismatch(m.position, m.what, m.this, m.that)

    def _check_kinds(self, result: ChunkResult) -> None:
        position, kinds = result.positions[0], result.kinds()
        if self.reference is None:
            self.reference = (position, result.treedef, kinds)
            return
        _, treedef, reference = self.reference
        if result.treedef != treedef:
            raise self._mismatch(position, "structure", describe_structure(result.treedef), describe_structure(treedef))
        for index, ((shape, dtype), (ref_shape, ref_dtype)) in enumerate(zip(kinds, reference)):
            if shape != ref_shape or dtype != ref_dtype:
                this, that = _kind_text(shape, dtype), _kind_text(ref_shape, ref_dtype)
                raise self._mismatch(position, f"output{leaf_label(treedef, index)}", this, that)

    def _mismatch(self, position: int, what: str, this: str, that: str) -> ValueError:
        """`what` is "structure", "output" (the single array) or "output[1]", "output['image']"."""
        first = self.distinct[self.reference[0]] if self.reference else self.distinct[0]
        key = self.distinct[position]
        if what == "structure":
            differs = f"key {key!r} returned {this}, but the first key {first!r} returned {that}"
        else:
            part = f" for {what}" if what != "output" else ""
            differs = f"key {key!r} gave {this}{part}, but the first key {first!r} gave {that}"
        return ValueError(
            f"pack_samples: samples differ, so they cannot be packed into one array: {differs}. Make the loader "
            "return one shape and dtype for every key (resize or pad in the loader), or leave such keys out"
        )

    def _load_error(self, failure: Failure) -> SampleLoadError:
        key = self.distinct[failure.position]
        where = f" ({failure.path})" if failure.path else ""
        if failure.fatal:
            hint = " This looks like a bug in the loader rather than an unreadable file, so it is raised even with on_error='skip'."
        else:
            hint = " Pass on_error='skip' to leave out keys that cannot be read."
        error = SampleLoadError(f"pack_samples: cannot load key {key!r}{where} with {self.name}: {failure.reason}.{hint}", key=key, path=failure.path)
        error.__cause__ = failure.exception()
        return error

    def commit(self) -> tuple[store.Dataset, dict]:
        if not self.kept:
            first = self.skipped[0] if self.skipped else None
            detail = f" (the first, key {self.distinct[first.position]!r}: {first.reason})" if first else ""
            raise SampleLoadError(f"pack_samples: none of the {len(self.distinct)} keys could be loaded{detail}")
        meta = {
            "kind": "packed samples",
            "loader": self.name,
            "keys": len(self.distinct),
            "kept": len(self.kept),
            "skipped": [{"position": f.position, "path": f.path, "reason": f.reason} for f in self.skipped],
        }
        doc = {"cwd": os.getcwd(), "files": self.files}
        blob = (json.dumps(doc, sort_keys=True) + "\n").encode()  # (indent would use the slow pure-Python encoder)
        self.writer.attach(FILES, blob)
        self.writer.meta = meta
        self.writer.fingerprint = _content_fingerprint(self.key, blob, meta)
        return self.writer.commit(), doc

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def _kind_text(shape: tuple, dtype: Any) -> str:
    return f"shape {shape} {np.dtype(dtype)}"


def _build(task: LoadTask, name: str, distinct: list, path: Path, key: str, processes: int | None, reporter: BuildProgress) -> PackedSamples:
    start = time.perf_counter()
    sink = _Sink(path, key, name, distinct, task.skip)
    positions = list(enumerate(distinct))
    where, workers, note, shared = "this process", 1, None, None
    try:
        probe = positions[:PROBE_KEYS]
        result = task(probe)
        sink.add(result)
        reporter.advance(len(probe))
        rest = positions[len(probe) :]
        if rest:
            where, workers, note, shipped = _plan(task, processes, result, len(probe), len(rest), distinct)
            if note:
                reporter.note(f"pack_samples {name}: {note}")
            size = _chunk_keys(result, len(probe), len(rest), workers)
            chunks = [rest[i : i + size] for i in range(0, len(rest), size)]
            if where == "processes":
                shared = SharedWork(task, shipped, chunks, workers, on_fallback=lambda why: reporter.note(f"pack_samples {name}: loading in {workers} threads: {why}"))
                results = iter(shared)
            elif where == "threads":
                results = in_threads(task, chunks, workers)
            else:
                results = in_this_process(task, chunks)
            with contextlib.closing(results):  # on any error: workers stopped now, not when the traceback goes
                for result in results:
                    sink.add(result)
                    reporter.advance(len(result.positions) + len(result.failures))
            if shared is not None and shared.fell_back:
                where, note = "threads", f"loading in {workers} threads: {shared.fell_back}"
        dataset, doc = sink.commit()
    except BaseException:
        sink.abort()  # also on KeyboardInterrupt: nothing half-built stays behind
        reporter.close()
        raise
    seconds = time.perf_counter() - start
    reporter.close(f"pack_samples {name}: packed {len(sink.kept)} keys in {seconds:.1f} s ({_where_text(where, workers)})")
    here = len(distinct) if where == "this process" else min(len(distinct), PROBE_KEYS) + (shared.keys_here if shared else 0)
    build = BuildInfo(where, workers if where != "this process" else 1, seconds, here, note)
    skipped = [(distinct[f.position], _skip_reason(f.path, f.reason)) for f in sink.skipped]
    keys = [distinct[p] for p in sink.kept]
    return PackedSamples(path, dataset.tree(), keys, skipped, fingerprint=dataset.fingerprint, reused=False, build=build, files=sorted(doc["files"]))


def _skip_reason(path: str | None, reason: str) -> str:
    return f"reading {path}: {reason}" if path else reason


def _where_text(where: str, workers: int) -> str:
    return "in this process" if where == "this process" else f"{workers} {where}"


def _plan(task: LoadTask, processes: int | None, probe: ChunkResult, probed: int, remaining: int, distinct: list) -> tuple[str, int, str | None, Shipped | None]:
    """Where the keys after the probe are loaded: ("processes" | "threads" | "this process", workers,
    a note saying why not processes, the task as it travels to worker processes)."""
    if processes is not None and processes <= 1:
        return "this process", 1, None, None
    if processes is None:
        workers = min(DEFAULT_WORKERS, os.cpu_count() or 1)
        if workers <= 1 or probe.seconds / probed * remaining < INLINE_BELOW_SECONDS:
            return "this process", 1, None, None
    else:
        workers = int(processes)
    if multiprocessing.current_process().daemon:
        return "threads", workers, f"loading in {workers} threads: this is a daemon process, which cannot start worker processes", None
    try:
        shipped = ship(Indexed(task))
        ship(distinct)  # the keys go to the workers too
    except NotShippable as exc:
        return "threads", workers, (
            f"loading in {workers} threads, not processes: the loader cannot be sent to a worker process, since {exc}. "
            "Define it (and what it uses) in a module rather than in the script to load in processes"
        ), None
    heavy = sorted(shipped.imports & SLOW_IMPORTS)
    if processes is None and heavy and probe.seconds / probed * remaining < SLOW_IMPORT_PAYS_OFF_SECONDS:
        # each worker would import the framework (seconds) to run a build that takes less in threads
        return "threads", workers, (
            f"loading in {workers} threads, not processes: the loader uses {', '.join(heavy)}, which every worker "
            "process would import first (seconds each) for a build shorter than that"
        ), None
    return "processes", workers, None, shipped


def _chunk_keys(probe: ChunkResult, probed: int, remaining: int, workers: int) -> int:
    """Keys per chunk: enough work to amortise a chunk's trip to a worker, at most CHUNK_BYTES of samples,
    and at least 4 chunks per worker so that they finish together."""
    per_key = max(probe.seconds / probed, 1e-6)
    row_bytes = sum(leaf[:1].nbytes for leaf in probe.leaves) if probe.leaves else 1
    size = min(MAX_CHUNK_KEYS, max(1, CHUNK_BYTES // max(row_bytes, 1)), max(1, math.ceil(CHUNK_SECONDS / per_key)))
    return max(1, min(size, math.ceil(remaining / (4 * workers))))


# -- warnings that hold on every call ----------------------------------------------------------------


def _warn(packed: PackedSamples, name: str, total: int) -> None:
    if packed.skipped:
        listed = "; ".join(f"{key!r}: {reason}" for key, reason in packed.skipped[:_LISTED])
        more = f"; and {len(packed.skipped) - _LISTED} more (PackedSamples.skipped lists them all)" if len(packed.skipped) > _LISTED else ""
        warnings.warn(PackWarning(f"pack_samples {name}: left out {len(packed.skipped)} of {total} keys that could not be loaded: {listed}{more}"), stacklevel=3)
    if not packed.files:
        warnings.warn(
            UntrackedFilesWarning(
                f"pack_samples {name}: no file is known for any of the {total} keys: files= was not given, the keys are "
                "not paths of files, and the loader opened no file seqkit could see (through Python, OpenCV, h5py, "
                f"soundfile or tifffile; other C libraries open files out of its sight). The cache {os.fspath(packed.path)} is reused for as long as the keys and "
                "the loader's code stay the same, even if the data behind the keys changes: pass files=, a function "
                "key -> the path(s) it reads, or delete the folder to rebuild it."
            ),
            stacklevel=3,
        )
