"""Work for the scale-out tests (test_engines_dask, test_engines_ray): functions that Dask and Ray tasks
and seqkit's worker processes unpickle by reference, so they live in a module, not in a test file.
numpy and the standard library only."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def double(chunk):
    return chunk * 2


def halve_image(image):
    """A per-sample step as generators write it: one image in, a smaller float image out."""
    return image[::2, ::2].astype(np.float32) / 255.0


def split(batch):
    """A multi-output batch function."""
    return {"scaled": batch.astype(np.float32) * 0.5, "total": batch.sum(axis=1)}


@dataclass(frozen=True)
class KillOnce:
    """Doubles a chunk; the first time it sees row value `row` (anywhere, in any process) it SIGKILLs the
    process it runs in: a worker dying in the middle of a shard, after some of its rows were written."""

    marker: str
    row: float

    def __call__(self, chunk):
        if np.any(np.asarray(chunk)[..., 0] == self.row) and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # not reached
        return chunk * 2


@dataclass(frozen=True)
class KillOnceSample:
    """The per-sample form of KillOnce (for preprocess_once(per_sample=True))."""

    marker: str
    index_value: float

    def __call__(self, sample):
        if float(np.asarray(sample).reshape(-1)[0]) == self.index_value and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        return np.asarray(sample, dtype=np.float32) + 1


@dataclass(frozen=True)
class FailAt:
    """Raises for every chunk holding row value `row`, on every attempt; counts attempts in `counter`."""

    counter: str
    row: float

    def __call__(self, chunk):
        if np.any(np.asarray(chunk)[..., 0] == self.row):
            with open(self.counter, "a") as f:
                f.write("x")
            raise RuntimeError(f"row {self.row} is bad")
        return chunk * 2


@dataclass(frozen=True)
class SlowWhile:
    """Doubles a chunk, sleeping while the file `gate` exists (at most `limit` seconds) if the chunk
    starts at row value `hold_from` or later: a task that seems to hang, until the test removes the gate.
    (The first rows pass: pack runs the transform on them in the driver, to size the shards.)"""

    gate: str
    hold_from: float = 1.0
    limit: float = 60.0

    def __call__(self, chunk):
        deadline = time.monotonic() + self.limit
        if np.asarray(chunk)[0, 0] >= self.hold_from:
            while os.path.exists(self.gate) and time.monotonic() < deadline:
                time.sleep(0.05)
        return chunk * 2


def busy_resize(image, rounds=3):
    """CPU-bound per-sample work (the benchmark's kind): a few passes of pure-numpy smoothing."""
    out = image.astype(np.float32)
    for _ in range(rounds):
        out = (out[:-1, :-1] + out[1:, 1:] + out[:-1, 1:] + out[1:, :-1]) * 0.25
    return out[::2, ::2]


def hang_on(value, at=7.0):
    """A per-sample function stuck for ever on the sample whose first value is `at`."""
    if float(np.asarray(value).reshape(-1)[0]) == at:
        time.sleep(3600)
    return np.asarray(value) * 2


def normalise_image(image):
    """Per-sample standardisation by the image's own statistics: row-wise by construction."""
    image = np.asarray(image, dtype=np.float32)
    return (image - image.mean()) / (image.std() + 1e-6)
