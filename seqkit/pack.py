"""pack: turn data into one `.npy` file that MemmapSequence can map, writing it incrementally.

Sources: an array (or memmap), an iterable of samples, `Chunks(iterable of arrays)`, a list of `.npy`
files (one sample each), or an image folder (`ImageFolder(root, size=(H, W))`, one sub-folder per
class). The dataset is never held in memory whole: rows are appended after a header whose shape is
rewritten at the end, in a temp file that is renamed into place only when everything was written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from seqkit.arrays import as_array, open_npy
from seqkit.pool import ordered_map
from seqkit.progress import LazyProgress

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_CHUNK_BYTES = 16 << 20
IMAGE_CHUNK = 64  # images decoded per task: enough to amortise the trip to a worker process


@dataclass(frozen=True)
class Chunks:
    """Marks an iterable whose items are chunks (arrays of several samples) rather than single samples."""

    iterable: Iterable[np.ndarray]


@dataclass
class ImageFolder:
    """`root/<class name>/<image>` decoded with Pillow, converted to `mode` and resized to `size` = (H, W).

    Labels are the index of the sub-folder in sorted order, as in keras.utils.image_dataset_from_directory.
    """

    root: str | os.PathLike
    size: tuple[int, int] | None = None
    mode: str = "RGB"
    classes: list[str] = field(init=False)
    files: list[Path] = field(init=False)
    labels: list[int] = field(init=False)

    def __post_init__(self):
        root = Path(self.root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
        if self.size is not None:
            if len(self.size) != 2 or any(not isinstance(s, int) or s < 1 for s in self.size):
                raise ValueError(f"size must be (height, width) in pixels, got {self.size!r}")
            self.size = (int(self.size[0]), int(self.size[1]))
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


def pack(
    source: Any,
    path: str | os.PathLike,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk_size: int | None = None,
    processes: int | None = None,
) -> Path:
    """Write `source` to `path` as `.npy` (an image folder: to the folder `path` as x.npy, y.npy,
    classes.json) and return `path`.

    `transform` is applied to chunks of samples (arrays of rows) before writing, in `processes` worker
    processes if > 1 (then it must be picklable). Nothing is left at `path` if anything fails.
    """
    return _pack(source, path, transform=transform, chunk_size=chunk_size, processes=processes)


def _pack(source, path, *, transform=None, chunk_size=None, processes=None, progress_delay: float = 1.0) -> Path:
    path = Path(path)
    processes = 1 if processes is None else int(processes)
    if processes < 1:
        raise ValueError(f"processes must be a positive integer or None, got {processes!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        source = ImageFolder(source)
    if isinstance(source, ImageFolder):
        return _pack_images(source, path, transform, chunk_size, processes, progress_delay)

    chunks, total = _source_chunks(source, chunk_size)
    progress = LazyProgress(total or 0, f"packing {path.name}", delay=progress_delay, enabled=None if total else False)
    writer = NpyWriter(path)
    try:
        with progress:
            for chunk in _transformed(chunks, transform, processes):
                writer.append(chunk)
                progress.advance(len(chunk))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
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


def _source_chunks(source: Any, chunk_size: int | None) -> tuple[Iterator[np.ndarray], int | None]:
    if isinstance(source, Chunks):
        return (np.asarray(c) for c in source.iterable), None
    if isinstance(source, (str, os.PathLike)):
        array = open_npy(source, "source") if os.fspath(source).endswith(".npy") else None
        if array is None:
            raise FileNotFoundError(f"source {os.fspath(source)!r} is neither a folder of images nor a .npy file")
        source = array
    if isinstance(source, np.ndarray):
        array = as_array(source, "source")
        rows = chunk_size or max(1, DEFAULT_CHUNK_BYTES // max(1, array.itemsize * int(np.prod(array.shape[1:]))))
        return (np.asarray(array[i : i + rows]) for i in range(0, len(array), rows)), len(array)
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source):
        files = [Path(s) for s in source]
        return _batched((_load_sample(f) for f in files), chunk_size or 256), len(files)
    if isinstance(source, Iterable):
        total = len(source) if hasattr(source, "__len__") else None
        return _batched((np.asarray(s) for s in source), chunk_size or 256), total
    raise TypeError(
        f"pack cannot read a source of type {type(source).__name__}: pass an array, an iterable of samples, "
        "Chunks(iterable of arrays), a list of .npy files, or an image folder"
    )


def _load_sample(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"source file {str(path)!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"source file {str(path)!r} is not a complete .npy file: {exc}") from None


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


# -- images ----------------------------------------------------------------------------------------


def decode_images(task: tuple[list[str], tuple[int, int] | None, str]) -> np.ndarray:
    """Decode and resize one list of image files (runs in worker processes)."""
    from PIL import Image

    files, size, mode = task
    images = []
    for name in files:
        try:
            with Image.open(name) as image:
                image = image.convert(mode)
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                images.append(np.asarray(image))
        except Exception as exc:
            raise ValueError(f"cannot decode image {name!r}: {exc}") from None
    try:
        return np.stack(images)
    except ValueError:
        raise ValueError(
            f"images have different sizes ({sorted({i.shape for i in images}, key=str)[:3]}); give a size to resize them"
        ) from None


def _pack_images(folder: ImageFolder, out_dir: Path, transform, chunk_size, processes, progress_delay) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    step = chunk_size or IMAGE_CHUNK
    names = [str(f) for f in folder.files]
    tasks = [(names[i : i + step], folder.size, folder.mode) for i in range(0, len(names), step)]
    x_writer, y_writer = NpyWriter(out_dir / "x.npy"), NpyWriter(out_dir / "y.npy")
    classes_tmp = out_dir / ".classes.json.tmp"
    progress = LazyProgress(len(names), f"packing {len(names)} images", delay=progress_delay)
    try:
        with progress:
            chunks = (images for _task, images in ordered_map(decode_images, tasks, processes))
            for images in _transformed(chunks, transform, 1):
                x_writer.append(images)
                progress.advance(len(images))
        y_writer.append(np.asarray(folder.labels, dtype=np.int32))
        classes_tmp.write_text(json.dumps(folder.classes, indent=1) + "\n")
        x_writer.commit()
        y_writer.commit()
        os.replace(classes_tmp, out_dir / "classes.json")
    except BaseException:
        x_writer.abort()
        y_writer.abort()
        classes_tmp.unlink(missing_ok=True)
        raise
    return out_dir


# -- writing .npy incrementally ------------------------------------------------------------------


class NpyWriter:
    """Appends rows to `<path>.tmp`, then writes the real shape into the header and renames to `path`.

    The header is written first with room for any row count (spaces pad it, which the .npy format
    allows), so rows stream straight to disk and the file is never rewritten or copied.
    """

    def __init__(self, path: Path, *, durable: bool = True):
        self.path = Path(path)
        self.durable = durable  # fsync before the rename; a cache can skip it (a damaged cache is rebuilt)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.file = None
        self.dtype: np.dtype | None = None
        self.row_shape: tuple | None = None
        self.rows = 0
        self.header_len = 0

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if chunk.dtype == object:
            raise TypeError(f"{self.path.name}: cannot pack object-dtype data; convert it to numbers first")
        if chunk.ndim == 0:
            raise ValueError(f"{self.path.name}: got a scalar where a chunk of samples was expected")
        if self.file is None:
            self.dtype, self.row_shape = chunk.dtype, chunk.shape[1:]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.tmp, "wb")
            self.header_len = len(self._header(10**18))
            self.file.write(self._header(0))
        elif chunk.shape[1:] != self.row_shape or chunk.dtype != self.dtype:
            raise ValueError(
                f"{self.path.name}: samples change shape or dtype after row {self.rows}: "
                f"{self.row_shape} {self.dtype} before, {chunk.shape[1:]} {chunk.dtype} now"
            )
        self.file.write(np.ascontiguousarray(chunk).data)
        self.rows += len(chunk)

    def _header(self, rows: int) -> bytes:
        meta = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows, *self.row_shape)}
        text = repr(meta)
        if self.header_len:
            body = self.header_len - 10
            text = text + " " * (body - len(text) - 1) + "\n"
        else:
            body = len(text) + 1
            body += -(body + 10) % 64  # data starts on a 64-byte boundary, as numpy writes it
            text = text + " " * (body - len(text) - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")

    def commit(self) -> None:
        if self.file is None:
            raise ValueError(f"{self.path.name}: the source had no samples; nothing to pack")
        self.file.seek(0)
        self.file.write(self._header(self.rows))
        self.file.flush()
        if self.durable:
            os.fsync(self.file.fileno())
        self.file.close()
        self.file = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.tmp.unlink(missing_ok=True)
