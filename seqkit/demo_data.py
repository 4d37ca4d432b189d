"""The demo's data and its example training script (`python -m seqkit.demo`, `make demo`).

Data: 5,000 generated 64x64 RGB images (uint8) and their labels, 61 MB in `demo_data/`, made once
(deterministically) and reused. Each class has its own tint, so the model has something to learn.

The example script (`EXAMPLE_SOURCE`, written to `demo_data/example/train.py`) is a generator the way
tutorials write one: slice the batch, then normalise it image by image in Python, every batch of every
epoch. Its model is small on purpose, as a model on a GPU is fast next to Python code: training then
waits for the generator, which is the case `seqlint fix` and the profiler are for. The script is text
here, not a module of the package, because it is meant to be slow: seqlint checks this package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = 10
SIDE = 64
SAMPLES = 5_000
IMAGES_FILE = "images.npy"
LABELS_FILE = "labels.npy"


def data_bytes(samples: int = SAMPLES, side: int = SIDE) -> int:
    """Bytes the generated data takes on disk (images plus int64 labels, headers aside)."""
    return samples * side * side * 3 + samples * 8


def generate(folder: Path, samples: int = SAMPLES, side: int = SIDE) -> tuple[Path, Path]:
    """Write `images.npy` and `labels.npy` to `folder` unless they are there with this shape already."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x_path, y_path = folder / IMAGES_FILE, folder / LABELS_FILE
    if x_path.exists() and y_path.exists():
        try:
            x = np.load(x_path, mmap_mode="r")
            y = np.load(y_path, mmap_mode="r")
            if x.shape == (samples, side, side, 3) and x.dtype == np.uint8 and y.shape == (samples,):
                return x_path, y_path
        except (OSError, ValueError):
            pass  # unreadable or partial: write it again
    rng = np.random.default_rng(2024)
    labels = rng.integers(0, CLASSES, samples)
    tint = rng.integers(0, 128, (CLASSES, 1, 1, 3))
    images = (rng.integers(0, 128, (samples, side, side, 3)) + tint[labels]).astype(np.uint8)
    # Labels last: a folder with images but no labels is never taken for a finished one.
    for path, array in ((x_path, images), (y_path, labels.astype(np.int64))):
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)
    return x_path, y_path


EXAMPLE_SOURCE = '''\
"""Train a small image classifier on demo_data/ (written by `python -m seqkit.demo`).

Profile it:  seqkit profile demo_data/example/train.py:setup
Train it:    python demo_data/example/train.py
"""
import math
from pathlib import Path

import keras
import numpy as np

DATA = Path(__file__).resolve().parent.parent
MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)


class ImageSequence(keras.utils.PyDataset):
    """Feeds (images, labels) to model.fit: uint8 images, standardised per channel."""

    def __init__(self, images, labels, batch_size=64, **kwargs):
        super().__init__(**kwargs)
        self.images = images
        self.labels = labels
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, idx):
        batch = self.images[idx * self.batch_size:(idx + 1) * self.batch_size]
        labels = self.labels[idx * self.batch_size:(idx + 1) * self.batch_size]
        x = np.empty(batch.shape, dtype=np.float32)
        for i in range(batch.shape[0]):
            x[i] = (batch[i] / 255.0 - MEAN) / STD
        return x, labels


def build_model(input_shape):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    features = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def setup():
    images = np.load(DATA / "images.npy")
    labels = np.load(DATA / "labels.npy")
    return ImageSequence(images, labels, batch_size=64), build_model(images.shape[1:])


if __name__ == "__main__":
    train, model = setup()
    model.fit(train, epochs=3)
'''


def write_example(folder: Path, name: str = "train.py") -> Path:
    """Write the example script afresh (a copy edited by an earlier run must not be profiled)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(EXAMPLE_SOURCE, encoding="utf-8")
    return path
