"""With a model: its train step on a ready batch next to the data time, and whether training waits for data.

Three measurements, all real:
* `train_on_batch` on a batch already in memory: the model's own step (its first call, which traces and
  compiles, is reported apart);
* `model.fit` over a dataset whose batches are ready (the same batch again): the step as fit runs it
  when data costs nothing, with Keras' own per-step machinery (tf.data, callbacks) included;
* `model.fit` over the dataset as it is, with Keras' prefetching.
The two kinds of fit alternate, three of each; a fit is summarised by its median step and a kind by
its fastest fit. The share of each real step spent waiting for data is `1 - ready / real`. It is
measured, not derived from data and model times, because Keras' prefetch thread overlaps the two by
an amount that depends on the GIL, the cores and the backend.

The model's weights, optimizer state and metrics are restored afterwards: profiling does not train it.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from seqkit.profiling.batches import dataset_length
from seqkit.profiling.target import ProfileError
from seqkit.profiling.verdict import ModelStats

MIN_FIT_STEPS = 8  # per fit
_SKIP_STEPS = 2  # the first steps of a fit fill the pipeline: not timed


def check_model(model) -> None:
    if not (hasattr(model, "train_on_batch") and hasattr(model, "fit")):
        raise ProfileError(f"model must be a Keras model, got {type(model).__name__}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        raise ProfileError("model is not compiled: call model.compile(optimizer=..., loss=...) before profiling it")


class ModelState:
    """The values of the model's and its optimizer's variables, to put back after profiling."""

    def __init__(self, model, x):
        if not getattr(model, "built", True):
            model(x)  # a subclassed model creates its weights on the first call
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.model = model
        self.variables = list(model.variables) + list(optimizer.variables)
        self.values = [np.array(v.numpy(), copy=True) for v in self.variables]

    def restore(self) -> None:
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)
        self.model.reset_metrics()


class StepClock(keras.callbacks.Callback):
    """The time at the end of each training step; the steady steps are the gaps after the first few."""

    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def steady_steps(self) -> list[float]:
        ends = self.ends[_SKIP_STEPS:] if len(self.ends) > _SKIP_STEPS + 1 else self.ends
        if len(ends) < 2:
            raise ProfileError("model.fit ran fewer than two steps; cannot time it")
        return [b - a for a, b in zip(ends, ends[1:])]


class ReadyBatches(keras.utils.PyDataset):
    """The same batch, `steps` times: data that costs nothing."""

    def __init__(self, batch, steps: int, **kwargs):
        super().__init__(**kwargs)
        self.batch = batch
        self.steps = steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.batch


class AsPyDataset(keras.utils.PyDataset):
    """A plain `__getitem__`/`__len__` object presented to Keras, which fits only PyDatasets."""

    def __init__(self, dataset, **kwargs):
        super().__init__(**kwargs)
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def on_epoch_end(self):
        hook = getattr(self.dataset, "on_epoch_end", None)
        if callable(hook):
            hook()


def as_pydataset(dataset):
    return dataset if isinstance(dataset, keras.utils.PyDataset) else AsPyDataset(dataset)


def fit_steps(model, dataset, steps: int) -> list[float]:
    """The steady step times of a real `model.fit` over `steps` batches of `dataset` (several epochs if short)."""
    dataset = as_pydataset(dataset)
    length = dataset_length(dataset)  # None: an endless dataset, one "epoch" of `steps`
    per_epoch = max(1, min(steps, length or steps))
    epochs = max(1, math.ceil(steps / per_epoch))
    clock = StepClock()
    model.fit(dataset, epochs=epochs, steps_per_epoch=per_epoch, verbose=0, shuffle=False, callbacks=[clock])
    return clock.steady_steps()


def fit_step_seconds(model, dataset, steps: int) -> tuple[float, int]:
    """(median steady step, steps timed) of a real `model.fit` over `steps` batches of `dataset`.

    The median, because a burst of other work on the machine during a few steps says nothing about
    the pipeline."""
    times = fit_steps(model, dataset, steps)
    return float(np.median(times)), len(times)


def split_batch(batch):
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        batch = (batch,)
    return keras.utils.unpack_x_y_sample_weight(batch)


def measure_model(model, dataset, batch, *, data_seconds: float, budget: float, steps: int | None, on_step=None) -> ModelStats:
    """Time the model on `batch` (one of the dataset's) and in fit over the dataset; restore it after."""
    check_model(model)
    x, y, sample_weight = split_batch(batch)
    state = ModelState(model, x)
    try:
        start = time.perf_counter()
        model.train_on_batch(x, y, sample_weight)
        first = time.perf_counter() - start
        model.train_on_batch(x, y, sample_weight)
        times = []
        deadline = time.perf_counter() + budget * 0.2
        while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
            start = time.perf_counter()
            model.train_on_batch(x, y, sample_weight)
            times.append(time.perf_counter() - start)
            if on_step is not None:
                on_step()
        train_step = float(np.median(times))
        # Ready and real fits alternate (ABBA, three of each), each summarised by its median step, and
        # each kind by its fastest fit: other work on the machine only ever slows a fit down, so the
        # least disturbed fit of each kind is the one to compare.
        if steps is None:
            # The six fits share ~70% of the budget; a real step can take data + model time when the
            # generator holds the GIL, so that is the estimate.
            per_fit = int(budget * 0.7 / 6 / max(train_step + data_seconds, 1e-4))
            per_fit = min(per_fit, 100)
        else:
            per_fit = steps // 3
        per_fit = max(MIN_FIT_STEPS, per_fit)
        medians: dict[str, list[float]] = {"ready": [], "real": []}
        ran = 0
        for kind in ("ready", "real", "real", "ready", "ready", "real"):
            source = ReadyBatches(batch, per_fit) if kind == "ready" else dataset
            times = fit_steps(model, source, per_fit)
            medians[kind].append(float(np.median(times)))
            ran += len(times) if kind == "real" else 0
            if on_step is not None:
                on_step()
        ready, real = min(medians["ready"]), min(medians["real"])
    finally:
        state.restore()
    return ModelStats(
        name=getattr(model, "name", type(model).__name__),
        first_step_seconds=first,
        train_step_seconds=train_step,
        fit_ready_step_seconds=ready,
        fit_step_seconds=real,
        fit_steps=ran,
        fit_ready_spread_seconds=max(medians["ready"]) - ready,
    )
