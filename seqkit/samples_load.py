"""The work of `pack_samples` on one chunk of keys (in a worker process, a thread, or in place), and
how it learns which files each key read.

Which files a key reads: the ones `files=` names (by default the key itself, when it is a path to a
file), plus every file the loader opens while it runs. Those are seen through a Python audit hook on
"open" events, which `open()`, `io.open`, `os.open` and whatever uses them raise: `np.load`,
`np.loadtxt`, PIL's `Image.open`, `pd.read_csv`, `keras.utils.load_img`. Libraries that open files in
C (OpenCV's `cv2.imread`, h5py, most of TensorFlow's I/O) raise no event: for those, name the files
with `files=`. Each file's state (size and modification time, or size and content hash) is taken
*before* the loader reads it, so a file changed during the build looks changed on the next run.

Audit hooks cannot be removed, so one hook is installed per process, on first use; it returns at
once unless the calling thread is recording (a thread-local), so it costs a function call per audit
event elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from seqkit import samples_c_opens
from seqkit.structure import TreeDef

# Exceptions that mean the loader's code is wrong, not that a key's file is unreadable: never skipped,
# since skipping them would quietly drop every key.
PROGRAMMING_ERRORS = (NameError, AttributeError, ImportError, SyntaxError, TypeError, AssertionError, NotImplementedError, RecursionError, MemoryError)
_HASH_BLOCK = 1 << 20
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_local = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False


def file_state(path: str, hash_contents: bool, info: os.stat_result | None = None) -> list | None:
    """What a file's state is compared by on reuse: [size, mtime_ns], or [size, "sha256:..."] with
    `hash_contents`; None if there is no such file. `info`: its stat, if already taken."""
    if info is None:
        try:
            info = os.stat(path)
        except OSError:
            return None
    if not stat.S_ISREG(info.st_mode):
        return [info.st_size, info.st_mtime_ns] if not hash_contents else [info.st_size, "not a regular file"]
    if not hash_contents:
        return [info.st_size, info.st_mtime_ns]
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        while block := os.read(fd, _HASH_BLOCK):
            digest.update(block)
    finally:
        os.close(fd)
    return [info.st_size, f"sha256:{digest.hexdigest()}"]


def _library_roots() -> tuple[str, ...]:
    """Where the interpreter and installed libraries live, as given and with symlinks resolved (the
    paths compared with them are not resolved: that would cost system calls per open)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        found = sysconfig.get_paths().get(key)
        if found:
            roots.add(found)
    forms = {form for root in roots if root for form in (os.path.abspath(root), os.path.realpath(root))}
    return tuple(os.path.join(form, "") for form in sorted(forms))


_SYSTEM = ("/proc/", "/sys/", "/dev/")


class Recording:
    """The files read while it is active (one chunk of keys), each with its state before it was first
    read. `start_key()` begins a key: `last` is then the last file that key read, and `keys_with_files`
    counts the keys that read any."""

    def __init__(self, hash_contents: bool, exclude: tuple[str, ...]):
        self.hash_contents = hash_contents
        self.exclude = exclude
        self.files: dict[str, list | None] = {}
        self.last: str | None = None
        self.keys_with_files = 0
        self.cwd = os.getcwd()  # relative paths are made absolute against it (a loader does not chdir)

    def start_key(self) -> None:
        self.last = None

    def note(self, path: str, info: os.stat_result | None = None) -> None:
        if path not in self.files:
            if self._ignored(path):
                return
            _local.busy = True  # file_state opens the file to hash it: not an open of the loader's
            try:
                self.files[path] = file_state(path, self.hash_contents, info)
            finally:
                _local.busy = False
        if self.last is None:
            self.keys_with_files += 1
        self.last = path

    def _ignored(self, path: str) -> bool:
        """Files that are not the key's data: the interpreter's and libraries' own (imports run while
        the loader does: PIL loads its plugins on the first open), modules of the project imported
        meanwhile, system files, and the cache being written. (No system calls: this runs per open.)"""
        absolute = _absolute(path, self.cwd)
        if absolute.startswith(_SYSTEM) or "/__pycache__/" in absolute:
            return True
        if absolute.startswith(_roots()) or (self.exclude and absolute.startswith(self.exclude)):
            return True
        if absolute.endswith(".py"):
            return os.path.realpath(absolute) in {os.path.realpath(f) for f in _module_files()}
        return False


def _absolute(path: str, cwd: str) -> str:
    """`os.path.abspath(path)` in `cwd`, without its work (a getcwd call, normpath) for clean paths."""
    if "/." in path or "//" in path or path.startswith("."):
        return os.path.normpath(os.path.join(cwd, path))
    return path if path.startswith("/") else f"{cwd}/{path}"


_ROOTS: tuple[str, ...] | None = None


def _roots() -> tuple[str, ...]:
    global _ROOTS
    if _ROOTS is None:
        _ROOTS = _library_roots()
    return _ROOTS


def _module_files() -> list[str]:
    return [f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str)]


def _on_audit(event: str, args: tuple) -> None:
    if event != "open":
        return
    recording = getattr(_local, "recording", None)
    if recording is None or getattr(_local, "busy", False):
        return
    try:
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return  # a file descriptor: whoever opened it by name was seen then
        if mode is not None and any(c in mode for c in "wax+"):
            return  # the loader writing (a log, a temp file): not what the sample was read from
        if mode is None and flags & _WRITE_FLAGS:
            return
        recording.note(os.fsdecode(path))
    except Exception:
        pass  # the hook must never break the user's open


def install_hook() -> None:
    """Install the "open" audit hook in this process (once)."""
    global _hook_installed
    if _hook_installed:
        return
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_on_audit)
            _hook_installed = True


class recording:
    """`with recording(hash_contents, exclude) as seen:` notes the files this thread opens meanwhile."""

    def __init__(self, hash_contents: bool, exclude: tuple[str, ...]):
        self.seen = Recording(hash_contents, exclude)

    def __enter__(self) -> Recording:
        install_hook()
        samples_c_opens.watch()  # readers in C (cv2, h5py, soundfile) imported since the last recording
        self.outer = getattr(_local, "recording", None)
        _local.recording = self.seen
        return self.seen

    def __exit__(self, *exc) -> None:
        _local.recording = self.outer


# -- one chunk -----------------------------------------------------------------------------------


@dataclass
class Failure:
    """A key whose loader raised (or returned None): its position among the distinct keys, the file
    it was reading when it failed (if known), and what went wrong."""

    position: int
    path: str | None
    reason: str
    error: bytes | None = None  # the exception, pickled, when it pickles (to be the cause of the error raised)
    fatal: bool = False  # a programming error: raised even with on_error="skip"

    def exception(self) -> BaseException | None:
        if self.error is None:
            return None
        try:
            return pickle.loads(self.error)
        except Exception:
            return None


@dataclass
class Mismatch:
    """Sample `position` differs from the chunk's first one (`reference`) in structure, shape or dtype."""

    position: int
    reference: int
    what: str  # e.g. "output [1]: shape (3, 4) float32" vs the reference's
    this: str
    that: str


@dataclass
class ChunkResult:
    """What one chunk of keys produced: the samples kept (stacked per output), in key order."""

    positions: list[int] = field(default_factory=list)
    leaves: list[np.ndarray] | None = None
    treedef: TreeDef | None = None
    failures: list[Failure] = field(default_factory=list)
    mismatch: Mismatch | None = None
    bad_value: Failure | None = None  # a value that cannot be packed (object dtype): always an error
    files: dict[str, list | None] = field(default_factory=dict)
    keys_with_files: int = 0
    seconds: float = 0.0

    def kinds(self) -> list[tuple]:
        return [(leaf.shape[1:], leaf.dtype) for leaf in self.leaves or []]


def split(value: Any) -> tuple[list[Any], TreeDef]:
    """A loader's value as leaves plus structure. Tuples and dicts are several outputs; anything else,
    lists included, is one array-like (a list of numbers is a sample, not several outputs)."""
    leaves: list[Any] = []

    def walk(node: Any) -> TreeDef:
        if isinstance(node, dict):
            keys = tuple(node)
            return TreeDef("dict", tuple(walk(node[k]) for k in keys), keys)
        if isinstance(node, tuple):
            return TreeDef("tuple", tuple(walk(item) for item in node))
        leaves.append(node)
        return TreeDef("leaf")

    return leaves, walk(value)


def leaf_label(treedef: TreeDef, index: int) -> str:
    """How to name output `index` of a structure in a message: "" for a single array, "[1]", "['image']"."""
    labels: list[str] = []

    def walk(node: TreeDef, prefix: str) -> None:
        if node.kind == "leaf":
            labels.append(prefix)
        elif node.kind == "dict":
            for key, child in zip(node.keys, node.children):
                walk(child, f"{prefix}[{key!r}]")
        else:
            for i, child in enumerate(node.children):
                walk(child, f"{prefix}[{i}]")

    walk(treedef, "")
    return labels[index] if index < len(labels) else f"[{index}]"


def describe_structure(treedef: TreeDef) -> str:
    if treedef.kind == "leaf":
        return "one array"
    if treedef.kind == "dict":
        return f"a dict with keys {list(treedef.keys)}"
    return f"a tuple of {len(treedef.children)}"


def kind_text(array: np.ndarray) -> str:
    return f"shape {array.shape} {array.dtype}"


@dataclass
class LoadTask:
    """Calls the loader on each key of a chunk and stacks what it returns; picklable (by
    seqkit.samples_ship) so that worker processes run the same thing as threads and this process."""

    load: Callable[[Any], Any]
    files: Callable[[Any], Any] | None
    hash_contents: bool
    skip: bool
    exclude: tuple[str, ...] = ()

    def __call__(self, chunk: list[tuple[int, Any]]) -> ChunkResult:
        result = ChunkResult()
        samples: list[list[np.ndarray]] = []
        first_def: TreeDef | None = None
        start = time.perf_counter()
        with recording(self.hash_contents, self.exclude) as seen:
            for position, key in chunk:
                seen.start_key()
                try:
                    self.note_declared(key, seen)
                    value = self.load(key)
                    if value is None:
                        raise ValueError("the loader returned None (cv2.imread, for one, returns None for a file it cannot read)")
                except Exception as exc:
                    failure = _failure(position, exc, seen)
                    result.failures.append(failure)
                    if failure.fatal or not self.skip:
                        break
                    continue
                if type(value) is np.ndarray and not value.dtype.hasobject:  # the common case, quickly
                    arrays, treedef = [value], _LEAF
                else:
                    arrays, treedef, bad = _arrays(value)
                    if bad is not None:
                        result.bad_value = Failure(position, seen.last, bad)
                        break
                if first_def is None:
                    first_def = treedef
                elif treedef is not _LEAF or len(samples[0]) != 1 or arrays[0].shape != samples[0][0].shape or arrays[0].dtype != samples[0][0].dtype:
                    mismatch = _compare(samples[0], first_def, result.positions[0], arrays, treedef, position)
                    if mismatch is not None:
                        result.mismatch = mismatch
                        break
                samples.append(arrays)
                result.positions.append(position)
        result.files = seen.files
        result.keys_with_files = seen.keys_with_files
        result.seconds = time.perf_counter() - start
        if samples:
            result.treedef = first_def
            result.leaves = [np.stack([sample[i] for sample in samples]) for i in range(len(samples[0]))]
        return result

    def note_declared(self, key: Any, seen: Recording) -> None:
        """Note the files `files=` names for `key` (they must exist), or by default the key itself
        when it is the path of a file (one stat: it tells both)."""
        if self.files is None:
            if isinstance(key, (str, os.PathLike)):
                path = os.fspath(key)
                path = path if isinstance(path, str) else os.fsdecode(path)
                try:
                    info = os.stat(path)
                except (OSError, ValueError):
                    return
                if stat.S_ISREG(info.st_mode):
                    seen.note(path, info)
            return
        named = self.files(key)
        if named is None:
            return
        if isinstance(named, (str, bytes, os.PathLike)):
            named = [named]
        for item in named:
            path = os.fsdecode(os.fspath(item))
            if not os.path.exists(path):
                raise FileNotFoundError(2, f"files= names {path!r} for this key, and there is no such file", path)
            seen.note(path)


_LEAF = TreeDef("leaf")


def _arrays(value: Any) -> tuple[list[np.ndarray], TreeDef, str | None]:
    """The loader's value as arrays and structure, or (..., what is wrong) for a value that is not data."""
    leaves, treedef = split(value)
    arrays = []
    for index, leaf in enumerate(leaves):
        array = np.asarray(leaf)
        if array.dtype.hasobject:
            problem = (
                f"output{leaf_label(treedef, index)} is not numeric data ({type(leaf).__name__} of dtype object): "
                "the loader must return arrays (or a tuple or dict of arrays) of one shape and dtype"
            )
            return arrays, treedef, problem
        arrays.append(array)
    return arrays, treedef, None


def _compare(reference: list[np.ndarray], ref_def: TreeDef, ref_position: int, arrays: list[np.ndarray], treedef: TreeDef, position: int) -> Mismatch | None:
    if treedef != ref_def:
        return Mismatch(position, ref_position, "structure", describe_structure(treedef), describe_structure(ref_def))
    for index, (a, b) in enumerate(zip(arrays, reference)):
        if a.shape != b.shape or a.dtype != b.dtype:
            return Mismatch(position, ref_position, f"output{leaf_label(treedef, index)}", kind_text(a), kind_text(b))
    return None


def _failure(position: int, exc: BaseException, seen: Recording) -> Failure:
    path = getattr(exc, "filename", None) if isinstance(exc, OSError) else None
    if path is not None and not isinstance(path, str):
        path = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    path = path or seen.last
    try:
        error = pickle.dumps(exc)
        pickle.loads(error)
    except Exception:
        error = None
    return Failure(position, path, f"{type(exc).__name__}: {exc}", error, fatal=isinstance(exc, PROGRAMMING_ERRORS))
