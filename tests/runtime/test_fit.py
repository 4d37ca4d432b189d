"""Real `model.fit` (TensorFlow backend) on every seqkit dataset, multi-input and with validation data."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from seqkit import MemmapSequence, PreprocessedSequence
from naive import scale_rows

pytestmark = pytest.mark.slow


def images(n=96):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, (n, 6, 6, 1), dtype=np.uint8)
    return x, (x.mean(axis=(1, 2, 3)) / 255.0).astype(np.float32)


def test_fit_preprocessed_with_cache_and_validation(tiny_model, tmp_path):
    x, y = images()
    train = PreprocessedSequence(x[:64], y[:64], batch_size=16, preprocess=scale_rows, shuffle=True, seed=1, cache_dir=tmp_path)
    val = PreprocessedSequence(x[64:], y[64:], batch_size=16, preprocess=scale_rows, cache_dir=tmp_path)
    model = tiny_model((6, 6, 1))
    history = model.fit(train, validation_data=val, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["val_loss"]))
    assert len(list(tmp_path.glob("*/manifest.json"))) == 2  # train and validation rows differ: two caches


def test_fit_memmap_files_multi_input_with_validation(tiny_model, tmp_path):
    x, y = images()
    np.save(tmp_path / "x.npy", x.astype(np.float32) / 255)
    np.save(tmp_path / "extra.npy", np.arange(len(x), dtype=np.float32)[:, None] / len(x))
    np.save(tmp_path / "y.npy", y)
    inputs = {"image": str(tmp_path / "x.npy"), "extra": str(tmp_path / "extra.npy")}
    train = MemmapSequence(inputs, str(tmp_path / "y.npy"), batch_size=20, shuffle=True, seed=3)
    val = MemmapSequence({"image": x[:30].astype(np.float32) / 255, "extra": np.zeros((30, 1), np.float32)}, y[:30], batch_size=20)
    model = tiny_model({"image": (6, 6, 1), "extra": (1,)})
    history = model.fit(train, validation_data=val, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"] + history.history["val_loss"]))
    predictions = model.predict(MemmapSequence(inputs, batch_size=32), verbose=0)
    assert predictions.shape == (len(x), 1)


class Recording(MemmapSequence):
    """Notes which samples (y holds their row numbers) each epoch served."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.served = defaultdict(list)

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        self.served[self.epoch].append(batch[1])
        return batch


@pytest.mark.parametrize("workers", [1, 2])
def test_fit_shuffles_every_sample_once_per_epoch(tiny_model, workers):
    n = 90
    x = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    rows = np.arange(n, dtype=np.float32)
    seq = Recording(x, rows, batch_size=16, shuffle=True, seed=11, workers=workers)
    tiny_model((3,)).fit(seq, epochs=3, verbose=0)
    orders = []
    for epoch in sorted(seq.served)[-3:]:  # fit peeks at a batch or two before the first epoch
        seen = np.concatenate(seq.served[epoch])
        assert sorted(seen.tolist()) == list(range(n)), f"epoch {epoch}"
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
