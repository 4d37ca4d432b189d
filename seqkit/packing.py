"""pack: turn data into `.npy` files that MemmapSequence maps, written incrementally and committed whole.

Sources: an array (or memmap, or sharded array), an iterable of samples, `Chunks(iterable of arrays)`,
a list of `.npy` files (one sample each), or an image folder (`ImageFolder(root, size=(H, W))`, one
sub-folder per class). The dataset is never held in memory whole: rows stream to disk under temp names,
and the folder's seqkit manifest (seqkit.store) makes them visible only when everything was written,
so a crash never leaves new images next to old labels.

Sharded packs (`shard_mb`, or `engine="dask"`/`"ray"`): each array is written as shard files of about
`shard_mb` MB, one task per shard (seqkit.shardwriter), on this machine's processes or on a cluster
(seqkit.engines); every engine writes the same bytes.

(This module is `seqkit.packing`, not `seqkit.pack`: a submodule named like the function would
replace `seqkit.pack` on the package once imported.)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from seqkit import store
from seqkit.arrays import as_array, check_count, check_processes
from seqkit.engines import check_engine, open_engine
from seqkit.fingerprint import FingerprintError, array_digest, function_digest
from seqkit.lifeline import check_timeout
from seqkit.mapped import mapped_file
from seqkit.pool import ITEM_TIMEOUT, ordered_map
from seqkit.progress import LazyProgress
from seqkit.sharded import ShardedArray, open_array
from seqkit.shardwriter import InlineRows, Output, add_results, row_source, run_shards, tasks_for

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_CHUNK_BYTES = 16 << 20
IMAGE_CHUNK = 64  # images decoded per task: enough to amortise the trip to a worker process
ON_ERROR = ("raise", "skip")


class PackWarning(UserWarning):
    """Files were skipped (`on_error="skip"`); the message and the manifest's meta say which and why."""


def require_pillow() -> Any:
    """PIL.Image, or an ImportError that says how to install it (checked before anything is written)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("packing images needs Pillow, which is not installed: pip install pillow (or seqkit[images])") from None
    return Image


def check_mode(mode: Any, name: str = "mode") -> str:
    """A Pillow colour mode that images can be converted to, or a ValueError naming the argument."""
    Image = require_pillow()
    modes = list(getattr(Image, "MODES", ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16"]))
    if not isinstance(mode, str) or mode not in modes:
        raise ValueError(f"{name} {mode!r} is not a Pillow colour mode; use one of {', '.join(modes)}")
    return mode


def resample_names() -> list[str]:
    """The resampling filters of the installed Pillow, lower-case ("nearest", "bilinear", "bicubic", ...)."""
    return [member.name.lower() for member in require_pillow().Resampling]


def check_resample(resample: Any, name: str = "resample") -> Any:
    """None (Pillow's own default: what `Image.resize(size)` does without a filter), a filter name, or a
    `PIL.Image.Resampling` member; returns None or the Resampling member."""
    if resample is None:
        return None
    Image = require_pillow()
    if isinstance(resample, str):
        try:
            return Image.Resampling[resample.upper()]
        except KeyError:
            pass
    elif not isinstance(resample, bool) and isinstance(resample, (int, np.integer)):
        try:
            return Image.Resampling(int(resample))
        except ValueError:
            pass
    raise ValueError(f"{name} {resample!r} is not a Pillow resampling filter; use one of {', '.join(resample_names())} (or None for Pillow's default)")


def check_on_error(on_error: Any, name: str = "on_error") -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"{name} must be 'raise' or 'skip', got {on_error!r}")
    return on_error


@dataclass(frozen=True)
class Chunks:
    """Marks an iterable whose items are chunks (arrays of several samples) rather than single samples."""

    iterable: Iterable[np.ndarray]


@dataclass
class ImageFolder:
    """`root/<class name>/<image>` decoded with Pillow, converted to `mode` and resized to `size` = (H, W).

    Labels are the index of the sub-folder in sorted order, as in keras.utils.image_dataset_from_directory.
    `resample` is Pillow's resampling filter; None (the default) is what Pillow's own `Image.resize`
    uses when given none, so a packed image equals `Image.open(p).convert(mode).resize((W, H))`.
    """

    root: str | os.PathLike
    size: tuple[int, int] | None = None
    mode: str = "RGB"
    resample: Any = None
    classes: list[str] = field(init=False)
    files: list[Path] = field(init=False)
    labels: list[int] = field(init=False)

    def __post_init__(self):
        root = store.expand(self.root)
        self.root = root
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
        if self.size is not None:
            if (
                not isinstance(self.size, (tuple, list))
                or len(self.size) != 2
                or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in self.size)
            ):
                raise ValueError(f"size must be (height, width) in pixels, got {self.size!r}")
            self.size = (int(self.size[0]), int(self.size[1]))
        self.mode = check_mode(self.mode)
        self.resample = check_resample(self.resample)
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.files, self.labels = [], []
        for label, name in enumerate(self.classes):
            for path in sorted((root / name).rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    self.files.append(path)
                    self.labels.append(label)
        if not self.files:
            raise ValueError(
                f"image folder {str(root)!r} has no images in class sub-folders (expected {root}/<class>/<image>)"
            )

    def fingerprint(self) -> str:
        """What the pack is built from: each file's path, size and mtime, and the decoding options."""
        import PIL

        h = hashlib.sha256()
        h.update(repr((self.size, self.mode, self.resample and self.resample.name, PIL.__version__)).encode())
        for path, label in zip(self.files, self.labels):
            stat = path.stat()
            h.update(f"{path.relative_to(self.root)}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return h.hexdigest()


def pack(
    source: Any,
    path: str | os.PathLike,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk_size: int | None = None,
    processes: int | None = None,
    engine: str = "local",
    scheduler: Any = None,
    shard_mb: float | None = None,
    on_error: str = "raise",
    timeout: float | None = ITEM_TIMEOUT,
) -> Path:
    """Write `source` to `path` as `.npy` (an image folder: to the folder `path` as x.npy, y.npy,
    classes.json) and return `path`.

    `transform` is applied to chunks of samples (arrays of rows) before writing, in `processes` worker
    processes if > 1 (then it must be picklable). The files are committed with the folder's
    `manifest.json` (row counts, dtypes, shapes, checksums; see seqkit.store); nothing is left at
    `path` if anything fails. `on_error="skip"` drops images (or `.npy` files) that cannot be read,
    with a PackWarning, and records them in the manifest's meta ("skipped"); labels stay aligned.

    `shard_mb` splits each array into shard files of about that many MB (`x-00000.npy`, ...; the path
    `.../x.npy` still names the array for MemmapSequence and `seqkit.open_array`), one task per shard.
    `engine` is where the tasks run: "local" (this machine: `processes`), "dask" or "ray" (then
    `shard_mb` defaults to 256; `scheduler` is a Dask scheduler address or `distributed.Client`, or a
    Ray address; None starts a local cluster of `processes` workers). The output folder must be on
    storage every worker sees. With the same `shard_mb`, every engine writes the same bytes. A task
    (a chunk, or a shard) may take `timeout` seconds; on a cluster, that long without any task
    finishing stops the run. Failed tasks are retried by Dask and Ray; a failed run leaves no manifest.
    """
    check_engine(engine, scheduler)
    check_timeout(timeout)
    shard_mb = store.check_shard_mb(shard_mb)
    return _pack(
        source, path, transform=transform, chunk_size=chunk_size, processes=processes, engine=engine, scheduler=scheduler,
        shard_mb=shard_mb, on_error=on_error, timeout=timeout,
    )


def _pack(
    source, path, *, transform=None, chunk_size=None, processes=None, engine="local", scheduler=None, shard_mb=None,
    on_error="raise", timeout=ITEM_TIMEOUT, progress_delay: float = 1.0,
) -> Path:
    path = store.expand(path)
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be a function of a chunk of samples, got {transform!r}")
    processes = check_processes(processes, None, "transform", "pack") if processes is not None else None
    if chunk_size is not None:
        chunk_size = check_count(chunk_size, "chunk_size")
    on_error = check_on_error(on_error)
    run = _Run(engine, scheduler, processes, timeout, progress_delay)
    if engine != "local" and shard_mb is None:
        shard_mb = store.DEFAULT_SHARD_MB  # one task per shard: a cluster engine always writes shards
    if isinstance(source, (str, os.PathLike)) and store.expand(source).is_dir():
        source = ImageFolder(source)
    if isinstance(source, ImageFolder):
        if shard_mb is not None:
            return _pack_images_sharded(source, path, transform, chunk_size, on_error, shard_mb, run)
        return _pack_images(source, path, transform, chunk_size, processes or 1, on_error, progress_delay)
    if engine == "local":
        check_processes(processes, transform, "transform", "pack")  # chunks and transform go to the workers
    if path.is_dir():
        raise IsADirectoryError(f"path {str(path)!r} is a folder; give the file to write, e.g. {str(path / 'x.npy')!r}")
    if shard_mb is not None:
        indexed = _indexed_source(source)
        if indexed is not None:
            return _pack_rows_sharded(*indexed, path, transform, chunk_size, on_error, shard_mb, run)
        if engine != "local":
            raise TypeError(
                f"engine={engine!r} runs one task per shard, so each task must be able to read its own rows: pass an "
                "array, a .npy path, a list of .npy files or an image folder. An iterable can only be read here, in "
                "order: use engine='local'"
            )

    skipped: list[dict] = []
    chunks, total = _source_chunks(source, chunk_size, on_error, skipped)
    progress = LazyProgress(total or 0, f"packing {path.name}", delay=progress_delay, enabled=None if total else False)
    name = path.stem if path.suffix == ".npy" else path.name
    writer = store.DatasetWriter(path.parent, in_place=True)
    try:
        array = None
        with progress:
            for chunk in _transformed(chunks, transform, processes or 1):
                if array is None:
                    if shard_mb is not None:  # shards sized by the rows' bytes, known from the first chunk
                        writer.rows_per_file = store.rows_per_shard(chunk[:1].nbytes, shard_mb)
                    array = writer.array(name, file=path.name)
                array.append(chunk)
                progress.advance(len(chunk))
        if array is None or array.rows == 0:
            raise ValueError(f"{path.name}: the source had no samples; nothing to pack")
        if skipped:
            writer.array_meta[name] = {"skipped": skipped}
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    _warn_skipped(skipped, "files")
    return path


def _transformed(chunks: Iterator[np.ndarray], transform, processes: int) -> Iterator[np.ndarray]:
    if transform is None:
        yield from chunks
        return
    for chunk, result in ordered_map(_Apply(transform), chunks, processes):
        out = np.asarray(result)
        if out.ndim == 0 or len(out) != len(chunk):
            raise ValueError(f"transform must return one row per input row: got {out.shape} for {len(chunk)} rows")
        yield out


@dataclass(frozen=True)
class _Apply:
    """A picklable `transform(chunk)` for the worker processes."""

    fn: Callable

    def __call__(self, chunk):
        return self.fn(chunk)


def _source_chunks(source: Any, chunk_size: int | None, on_error: str, skipped: list) -> tuple[Iterator[np.ndarray], int | None]:
    if isinstance(source, Chunks):
        return (np.asarray(c) for c in source.iterable), None
    if isinstance(source, (str, os.PathLike)):
        if not os.fspath(source).endswith(".npy"):
            raise FileNotFoundError(f"source {os.fspath(source)!r} is neither a folder of images nor a .npy file")
        opened = open_array(source, "source")  # a .npy file, or the path of a sharded pack's array
        source = opened if isinstance(opened, ShardedArray) else as_array(opened, "source")
    if isinstance(source, ShardedArray):
        rows = chunk_size or max(1, DEFAULT_CHUNK_BYTES // max(1, source.itemsize * int(np.prod(source.shape[1:]))))
        return (source.read(i, i + rows) for i in range(0, len(source), rows)), len(source)
    if isinstance(source, np.ndarray):
        array = as_array(source, "source")
        rows = chunk_size or max(1, DEFAULT_CHUNK_BYTES // max(1, array.itemsize * int(np.prod(array.shape[1:]))))
        return (np.asarray(array[i : i + rows]) for i in range(0, len(array), rows)), len(array)
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        files = [store.expand(s) for s in source]
        return _batched(_load_samples(files, on_error, skipped), chunk_size or 256), len(files)
    if isinstance(source, Iterable):
        total = len(source) if hasattr(source, "__len__") else None
        return _batched((np.asarray(s) for s in source), chunk_size or 256), total
    raise TypeError(
        f"pack cannot read a source of type {type(source).__name__}: pass an array, an iterable of samples, "
        "Chunks(iterable of arrays), a list of .npy files, or an image folder"
    )


def _load_samples(files: list[Path], on_error: str, skipped: list) -> Iterator[np.ndarray]:
    for path in files:
        try:
            if not path.exists():
                raise FileNotFoundError(f"source file {str(path)!r} does not exist")
            yield np.asarray(store.open_npy(path, "source file"))
        except (OSError, ValueError) as exc:
            if on_error == "raise":
                raise
            skipped.append({"file": str(path), "error": str(exc)})


def _batched(samples: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield _stack(batch)
            batch = []
    if batch:
        yield _stack(batch)


def _stack(samples: list[np.ndarray]) -> np.ndarray:
    try:
        return np.stack(samples)
    except ValueError:
        shapes = sorted({s.shape for s in samples}, key=str)
        raise ValueError(f"samples must all have the same shape to be packed; found shapes {shapes[:5]}") from None


def _warn_skipped(skipped: list[dict], what: str) -> None:
    if skipped:
        listed = "; ".join(f"{s['file']} ({s['error']})" for s in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(PackWarning(f"skipped {len(skipped)} {what} that could not be read: {listed}{more}"), stacklevel=3)


# -- images ----------------------------------------------------------------------------------------


def decode_images(task: tuple) -> tuple[np.ndarray | None, list[tuple[int, str]]]:
    """Decode and resize one list of image files (runs in worker processes): (images, failures).

    With `skip`, a file that cannot be decoded is left out and reported as (its index in the list, the
    reason); otherwise the first one raises a ValueError naming it.
    """
    files, size, mode, resample, skip = task
    from PIL import Image

    images, failures = [], []
    for i, name in enumerate(files):
        try:
            with Image.open(name) as image:
                image = image.convert(mode)
                if size is not None:
                    # Exactly Pillow's own call: no filter argument means Pillow's default for the mode.
                    image = image.resize((size[1], size[0])) if resample is None else image.resize((size[1], size[0]), resample)
                images.append(np.asarray(image))
        except Exception as exc:
            if not skip:
                raise ValueError(f"cannot decode image {name!r}: {exc}") from None
            failures.append((i, f"{exc.__class__.__name__}: {exc}"))
    if not images:
        return None, failures
    try:
        return np.stack(images), failures
    except ValueError:
        raise ValueError(
            f"images have different sizes ({sorted({i.shape for i in images}, key=str)[:3]}); give a size to resize them"
        ) from None


def _pack_images(folder: ImageFolder, out_dir: Path, transform, chunk_size, processes, on_error, progress_delay) -> Path:
    require_pillow()
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"output {str(out_dir)!r} is a file; an image pack is a folder (x.npy, y.npy, classes.json)")
    step = chunk_size or IMAGE_CHUNK
    names = [str(f) for f in folder.files]
    skip = on_error == "skip"
    tasks = [(names[i : i + step], folder.size, folder.mode, folder.resample, skip) for i in range(0, len(names), step)]
    meta = {
        "kind": "image folder",
        "classes": folder.classes,
        "size": list(folder.size) if folder.size else None,
        "mode": folder.mode,
        "resample": folder.resample.name.lower() if folder.resample is not None else "pillow default",
    }
    writer = store.DatasetWriter(out_dir, in_place=True, fingerprint=folder.fingerprint(), meta=meta)
    progress = LazyProgress(len(names), f"packing {len(names)} images", delay=progress_delay)
    labels: list[int] = []
    skipped: list[dict] = []
    try:
        with progress:
            decoded = ordered_map(decode_images, tasks, processes)
            for images in _transformed(_kept(decoded, folder, labels, skipped), transform, 1):
                writer.append("x", images)
                progress.advance(len(images))
        if not labels:
            raise ValueError(f"none of the {len(names)} images in {str(folder.root)!r} could be decoded (first: {skipped[0]['error']})")
        writer.append("y", np.asarray(labels, dtype=np.int32))
        writer.attach("classes.json", (json.dumps(folder.classes, indent=1) + "\n").encode())
        writer.meta["skipped"] = skipped
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    _warn_skipped(skipped, "images")
    return out_dir


def _kept(decoded, folder: ImageFolder, labels: list[int], skipped: list[dict]) -> Iterator[np.ndarray]:
    """The decoded chunks, noting the labels of the images kept and the files skipped."""
    index = {str(f): i for i, f in enumerate(folder.files)}
    for task, (images, failures) in decoded:
        files = task[0]
        failed = {i for i, _reason in failures}
        for i, reason in failures:
            skipped.append({"file": files[i], "error": reason})
        labels.extend(folder.labels[index[name]] for i, name in enumerate(files) if i not in failed)
        if images is not None:
            yield images


# -- sharded packs: one task per shard, on any engine ---------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """Where a sharded pack's tasks run, and how it reports progress."""

    engine: str
    scheduler: Any
    processes: int | None
    timeout: float | None
    progress_delay: float

    def shards(self, tasks, total: int, description: str):
        with open_engine(self.engine, scheduler=self.scheduler, processes=self.processes, timeout=self.timeout) as engine:
            return run_shards(engine, tasks, total=total, description=description, progress_delay=self.progress_delay)


def _indexed_source(source: Any) -> tuple[str, Any] | None:
    """("rows", array) or ("files", [paths]) for a source whose parts tasks can read on their own; None
    for an iterable, which can only be read in order, here."""
    if isinstance(source, ShardedArray):
        return "rows", source
    if isinstance(source, (str, os.PathLike)):
        if not os.fspath(source).endswith(".npy"):
            raise FileNotFoundError(f"source {os.fspath(source)!r} is neither a folder of images nor a .npy file")
        opened = open_array(source, "source")
        return "rows", opened if isinstance(opened, ShardedArray) else as_array(opened, "source")
    if isinstance(source, np.ndarray):
        return "rows", as_array(source, "source")
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return "files", [os.fspath(store.expand(s)) for s in source]
    if isinstance(source, Chunks) or isinstance(source, Iterable):
        return None
    raise TypeError(
        f"pack cannot read a source of type {type(source).__name__}: pass an array, an iterable of samples, "
        "Chunks(iterable of arrays), a list of .npy files, or an image folder"
    )


def _checked_rows(transform: Callable | None, chunk: np.ndarray) -> np.ndarray:
    if transform is None:
        return np.asarray(chunk)
    out = np.asarray(transform(chunk))
    if out.ndim == 0 or len(out) != len(chunk):
        raise ValueError(f"transform must return one row per input row: got {out.shape} for {len(chunk)} rows")
    return out


@dataclass(frozen=True)
class TransformRows:
    """A shard task's work for array sources: the rows, through `transform` if there is one."""

    transform: Callable | None

    def __call__(self, chunk, start: int, stop: int) -> Output:
        return Output([_checked_rows(self.transform, chunk)])


@dataclass(frozen=True)
class LoadFiles:
    """A shard task's work for a list of `.npy` files: load each (one sample), stack, transform."""

    transform: Callable | None
    skip: bool

    def __call__(self, files, start: int, stop: int) -> Output:
        samples, skipped = [], []
        for name in files:
            try:
                samples.append(np.asarray(store.open_npy(name, "source file")))
            except (OSError, ValueError) as exc:
                if not self.skip:
                    raise
                skipped.append({"file": name, "error": str(exc)})
        if not samples:
            return Output([], skipped=skipped)
        return Output([_checked_rows(self.transform, _stack(samples))], skipped=skipped)


@dataclass(frozen=True)
class DecodeImages:
    """A shard task's work for an image folder: decode and resize (decode_images), then transform."""

    size: tuple | None
    mode: str
    resample: Any
    skip: bool
    transform: Callable | None

    def __call__(self, files, start: int, stop: int) -> Output:
        images, failures = decode_images((list(files), self.size, self.mode, self.resample, self.skip))
        skipped = [{"file": files[i], "error": reason} for i, reason in failures]
        if images is None:
            return Output([], skipped=skipped)
        return Output([_checked_rows(self.transform, images)], skipped=skipped)


def _probe_row_bytes(work: Callable, read: Callable[[int, int], Any], n: int, what: str, step: int = 8) -> int:
    """Bytes of one output row, from the work run here on the first input(s) that give a row (files may
    be skipped: `step` at a time): shards are planned from it before any task starts."""
    skipped: list[dict] = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        out = work(read(start, stop), start, stop)
        if out.leaves and len(out.leaves[0]):
            return max(1, out.leaves[0][:1].nbytes)
        skipped.extend(out.skipped)
    first = f" (first: {skipped[0]['file']}: {skipped[0]['error']})" if skipped else ""
    raise ValueError(f"none of the {n} {what} could be read{first}; nothing to pack")


def _pack_rows_sharded(kind: str, data: Any, path: Path, transform, chunk_size, on_error, shard_mb, run: _Run) -> Path:
    name = path.stem if path.suffix == ".npy" else path.name
    if kind == "rows":
        array, n = data, len(data)
        if n == 0:
            raise ValueError(f"{path.name}: the source had no samples; nothing to pack")
        work = TransformRows(transform)
        in_row = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
        row_bytes = max(1, in_row) if transform is None else _probe_row_bytes(work, lambda a, b: array[a:b], n, "rows", step=1)
        chunk_rows = chunk_size or max(1, DEFAULT_CHUNK_BYTES // max(1, in_row))
        source_for = lambda start, stop: row_source(array, start, stop)  # noqa: E731
        meta = {"fingerprint": _rows_fingerprint(array, transform)}
    else:
        files, n = data, len(data)
        work = LoadFiles(transform, on_error == "skip")
        row_bytes = _probe_row_bytes(work, lambda a, b: files[a:b], n, ".npy files")
        chunk_rows = chunk_size or 256
        source_for = lambda start, stop: InlineRows(start, files[start:stop])  # noqa: E731
        meta = {"fingerprint": _files_fingerprint(files, transform)}
    meta["shard_mb"] = shard_mb
    writer = store.DatasetWriter(path.parent, in_place=True)
    try:
        tasks = tasks_for(n, store.rows_per_shard(row_bytes, shard_mb), source_for, work, writer.stage, (name,), chunk_rows)
        results = run.shards(tasks, n, f"packing {path.name}")
        if not add_results(writer, results):
            raise ValueError(f"{path.name}: the source had no samples; nothing to pack")
        skipped = [s for r in results for s in r.skipped]
        if kind == "files":
            meta["skipped"] = skipped
        writer.array_meta[name] = meta
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if kind == "files":
        _warn_skipped(skipped, "files")
    return path


def _pack_images_sharded(folder: ImageFolder, out_dir: Path, transform, chunk_size, on_error, shard_mb, run: _Run) -> Path:
    require_pillow()
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"output {str(out_dir)!r} is a file; an image pack is a folder (x.npy, y.npy, classes.json)")
    names = [str(f) for f in folder.files]
    work = DecodeImages(folder.size, folder.mode, folder.resample, on_error == "skip", transform)
    row_bytes = _probe_row_bytes(work, lambda a, b: names[a:b], len(names), f"images in {str(folder.root)!r}")
    meta = {
        "kind": "image folder",
        "classes": folder.classes,
        "size": list(folder.size) if folder.size else None,
        "mode": folder.mode,
        "resample": folder.resample.name.lower() if folder.resample is not None else "pillow default",
        "shard_mb": shard_mb,
    }
    writer = store.DatasetWriter(out_dir, in_place=True, fingerprint=folder.fingerprint(), meta=meta)
    try:
        tasks = tasks_for(
            len(names), store.rows_per_shard(row_bytes, shard_mb), lambda a, b: InlineRows(a, names[a:b]), work,
            writer.stage, ("x",), chunk_size or IMAGE_CHUNK,
        )
        results = run.shards(tasks, len(names), f"packing {len(names)} images")
        skipped = [s for r in results for s in r.skipped]
        if not add_results(writer, results):
            raise ValueError(f"none of the {len(names)} images in {str(folder.root)!r} could be decoded (first: {skipped[0]['error']})")
        failed = {s["file"] for s in skipped}
        labels = [label for name, label in zip(names, folder.labels) if name not in failed]
        writer.rows_per_file = store.rows_per_shard(4, shard_mb)
        writer.append("y", np.asarray(labels, dtype=np.int32))
        writer.attach("classes.json", (json.dumps(folder.classes, indent=1) + "\n").encode())
        writer.meta["skipped"] = skipped
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    _warn_skipped(skipped, "images")
    return out_dir


def _code_digest(transform: Callable | None) -> str | None:
    if transform is None:
        return "none"
    try:
        return function_digest(transform)
    except FingerprintError:
        return None  # recorded as unknown: a pack is not reused by seqkit, so this only informs


def _rows_fingerprint(array: Any, transform: Callable | None) -> str | None:
    """What a sharded pack of rows was built from: the data (a sharded input's checksums, a file's path,
    size and time, an in-memory array's bytes) and the transform's code; None if the code has none."""
    code = _code_digest(transform)
    if code is None:
        return None
    mapped = mapped_file(array) if isinstance(array, np.ndarray) else None
    if isinstance(array, ShardedArray):
        data = array.digest()
    elif mapped is not None:
        stat = os.stat(mapped.filename)
        data = f"file:{os.path.abspath(mapped.filename)}|{stat.st_size}|{stat.st_mtime_ns}|{mapped.offset}|{mapped.dtype.str}|{mapped.shape}"
    else:
        data = array_digest(np.asarray(array))
    return hashlib.sha256(f"pack-rows|{data}|{code}".encode()).hexdigest()


def _files_fingerprint(files: list[str], transform: Callable | None) -> str | None:
    code = _code_digest(transform)
    if code is None:
        return None
    h = hashlib.sha256(f"pack-files|{code}".encode())
    for name in files:
        try:
            stat = os.stat(name)
            h.update(f"|{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:
            h.update(f"|{name}|missing".encode())
    return h.hexdigest()
