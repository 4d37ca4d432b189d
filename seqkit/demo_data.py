"""Example data and the naive per-batch generator logic for `python -m seqkit.demo`.

Numpy only (no Keras): MultiprocessSequence's workers import this module to run the naive batches, and
start fast when it does not pull in TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CLASSES = 10
SHAPE = (32, 32, 3)
MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)


def generate(folder: Path, n: int) -> tuple[Path, Path]:
    """Deterministic images whose class shows in their colour (so the model has something to learn)."""
    folder.mkdir(parents=True, exist_ok=True)
    x_path, y_path = folder / f"images-{n}.npy", folder / f"labels-{n}.npy"
    if x_path.exists() and y_path.exists():
        return x_path, y_path
    rng = np.random.default_rng(2024)
    labels = rng.integers(0, CLASSES, n)
    tint = rng.integers(0, 128, (CLASSES, 1, 1, 3))
    images = rng.integers(0, 128, (n, *SHAPE)) + tint[labels]
    tmp_x, tmp_y = folder / f".{x_path.name}.tmp.npy", folder / f".{y_path.name}.tmp.npy"
    np.save(tmp_x, images.astype(np.uint8))
    np.save(tmp_y, labels.astype(np.int64))
    tmp_x.replace(x_path)
    tmp_y.replace(y_path)
    return x_path, y_path


def normalise_image(image: np.ndarray) -> np.ndarray:
    """Per-sample preprocessing of the usual kind: scale to [0, 1], then standardise per channel."""
    return (image.astype(np.float32) / 255.0 - MEAN) / STD


def normalise(images: np.ndarray) -> np.ndarray:
    """The same, on a chunk of images at once (what preprocess_once runs, once)."""
    return (images.astype(np.float32) / 255.0 - MEAN) / STD


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(CLASSES, dtype=np.float32)[labels]


class NaiveBatches:
    """What users write in `__getitem__`: slice, then preprocess row by row, every batch of every epoch."""

    def __init__(self, x, y, batch_size: int):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        start = index * self.batch_size
        images, labels = [], []
        for i in range(start, min(start + self.batch_size, len(self.x))):
            images.append(normalise_image(self.x[i]))
            labels.append(np.eye(CLASSES, dtype=np.float32)[self.y[i]])
        return np.stack(images), np.stack(labels)
