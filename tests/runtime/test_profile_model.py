"""With a real Keras model, seqkit.profile says input-bound or compute-bound, from real model.fit steps.

The two cases are far apart on purpose (a 20 ms generator with a 1-layer model; a generator that only
slices with a model of two 2048-unit layers on 256-sample batches), so that the verdict does not depend
on how busy the machine is; the shares themselves are measured, never asserted as timings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqkit.profiling import ProfileError, profile

pytestmark = pytest.mark.slow


class SlowRows:
    """A per-row Python loop: ~20 ms per batch whatever the model does."""

    def __init__(self, n=2048, batch_size=32):
        rng = np.random.default_rng(0)
        self.x = rng.random((n, 16), dtype=np.float32)
        self.y = rng.random((n, 1), dtype=np.float32)
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        out = np.empty_like(self.x[rows])
        for i, row in enumerate(self.x[rows]):
            out[i] = [sum(v * k for k in range(120)) for v in row.tolist()]
        return out / 1e4, self.y[rows]


class FastSlices:
    def __init__(self, n=4096, features=1024, batch_size=256):
        rng = np.random.default_rng(1)
        self.x = rng.random((n, features), dtype=np.float32)
        self.y = rng.random((n, 1), dtype=np.float32)
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[rows], self.y[rows]


def dense_model(features: int, hidden: list[int]):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,))
    x = inputs
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_slow_generator_with_fast_model_is_input_bound():
    model = dense_model(16, [])
    weights = [w.copy() for w in model.get_weights()]
    report = profile(SlowRows(), model, seconds=4, workers=None, memory=False)
    m = report.model
    assert m.verdict == "input-bound", report.to_dict()["model"]
    assert m.input_wait_share >= 0.5
    assert report.statement.startswith("Input-bound: the model waits")
    # Profiling trains nothing: the weights and the optimizer are as they were.
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert int(model.optimizer.iterations.numpy()) == 0
    # The hot line is the per-row loop's body; fixing it would save fit time per epoch too.
    assert "sum(v * k" in report.lines[0].source
    assert report.lines[0].fit_epoch_saving_seconds > 0


def test_fast_generator_with_slow_model_is_compute_bound():
    model = dense_model(1024, [2048, 2048])
    report = profile(FastSlices(), model, seconds=4, workers=None, memory=False)
    m = report.model
    assert m.verdict == "compute-bound", report.to_dict()["model"]
    assert m.input_wait_share < 0.2
    assert "not your bottleneck" in report.statement
    assert m.train_step_seconds > 20 * report.latency.mean
    assert any("model is the bottleneck" in item for item in report.advice())


def test_a_difference_within_the_machines_noise_is_no_wait():
    from seqkit.profiling.verdict import ModelStats

    def stats(real, spread):
        return ModelStats("m", 0.3, 0.012, fit_ready_step_seconds=0.012, fit_step_seconds=real, fit_steps=24, fit_ready_spread_seconds=spread)

    # Real fits 25% slower than the fastest ready fit, but the ready fits alone were 5 ms apart.
    assert stats(0.016, spread=0.005).verdict == "compute-bound"
    assert stats(0.016, spread=0.001).verdict == "input-bound"
    assert stats(0.013, spread=0.0).verdict == "compute-bound"


def test_an_uncompiled_model_is_refused_before_any_work():
    import keras

    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ProfileError, match="not compiled"):
        profile(SlowRows(n=64), model)


KERAS_TARGET = '''
import math

import keras
import numpy as np

MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)


class ImageSequence(keras.utils.PyDataset):
    def __init__(self, images, labels, batch_size=32, **kwargs):
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


def make():
    rng = np.random.default_rng(0)
    return ImageSequence(rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 512))
'''


def test_the_hot_line_carries_seqlints_finding_and_its_epoch_cost(tmp_path):
    from seqkit.profiling import load_target

    path = tmp_path / "keras_images_target.py"
    path.write_text(KERAS_TARGET)
    dataset, _ = load_target(f"{path}:make")
    report = profile(dataset, seconds=1.5, workers=None, memory=False)
    top = report.lines[0]
    assert top.source == "x[i] = (batch[i] / 255.0 - MEAN) / STD" and top.share >= 0.5
    # Whatever rule seqlint files this per-row normalisation under, it is on the hot line, with its row.
    assert top.findings and {f.code for f in top.findings} <= {"SEQ101", "SEQ102"}
    assert all(f.row <= top.line <= f.end_row for f in top.findings)
    assert top.epoch_saving_seconds == pytest.approx(top.seconds_per_batch * len(dataset))
    assert any(top.location in item for item in report.advice())
