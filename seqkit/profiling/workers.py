"""What `workers`, or `MultiprocessSequence` with N workers, would give: measured by running them.

Each option runs the dataset for a few batches the way `model.fit` consumes it (Keras' own adapter,
so its thread pool or `MultiprocessSequence`'s processes really run), and with a model, a short real
`model.fit`. Start-up (threads, processes, their imports) is reported apart from the steady rate.
Whatever an option changes on the dataset is put back, and its threads and processes are stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from seqkit.profiling.batches import dataset_length
from seqkit.profiling.target import ProfileError


@dataclass
class WorkerTrial:
    option: str
    kind: str  # "as-is", "keras-threads", "multiprocess"
    workers: int
    batches: int = 0
    startup_seconds: float | None = None
    batch_seconds: float | None = None  # steady seconds per batch as fit receives them
    fit_step_seconds: float | None = None
    error: str | None = None


def check_workers(workers) -> list[int]:
    if workers is None:
        return []
    if isinstance(workers, int) and not isinstance(workers, bool):
        workers = [workers]
    try:
        values = [w for w in workers]
    except TypeError:
        raise ProfileError(f"workers must be a list of worker counts, got {workers!r}") from None
    for w in values:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ProfileError(f"workers must be positive integers, got {w!r} in {workers!r}")
    return sorted(set(values))


def _time_batches(get, count: int, on_batch=None) -> tuple[float, float, int]:
    """(startup: the first batch, steady seconds per batch after it, batches) for `get(i)`, i = 0.."""
    start = time.perf_counter()
    get(0)
    startup = time.perf_counter() - start
    if on_batch is not None:
        on_batch()
    start = time.perf_counter()
    for i in range(1, count):
        get(i)
        if on_batch is not None:
            on_batch()
    steady = (time.perf_counter() - start) / max(1, count - 1)
    return startup, steady, count


def _fit_step(model, dataset, steps: int) -> float | None:
    """The faster of two short real fits' median steps (as the profile's own fit step is measured)."""
    if model is None:
        return None
    from seqkit.profiling.model import fit_step_seconds

    return min(fit_step_seconds(model, dataset, steps)[0] for _ in range(2))


def _keras_threads(dataset, workers: int, count: int, model, fit_steps: int, on_batch):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from seqkit.profiling.model import AsPyDataset

    wrapped = dataset if hasattr(dataset, "_workers") or hasattr(type(dataset), "workers") else AsPyDataset(dataset)
    saved = (wrapped.workers, wrapped.use_multiprocessing)
    wrapped.workers, wrapped.use_multiprocessing = workers, False
    try:
        adapter = PyDatasetAdapter(wrapped, shuffle=False)
        iterator = adapter.get_numpy_iterator()
        try:
            count = min(count, dataset_length(wrapped) or count)
            startup, steady, ran = _time_batches(lambda i: next(iterator), count, on_batch)
        finally:
            if adapter.enqueuer is not None:
                adapter.enqueuer.stop()
        fit_step = _fit_step(model, wrapped, fit_steps)
    finally:
        wrapped.workers, wrapped.use_multiprocessing = saved
    return startup, steady, ran, fit_step


def _multiprocess(dataset, workers: int, count: int, model, fit_steps: int, on_batch):
    from seqkit.multiprocess import MultiprocessSequence

    with MultiprocessSequence(dataset, workers=workers, seed=0) as sequence:
        count = min(count, dataset_length(sequence) or count)
        startup, steady, ran = _time_batches(sequence.__getitem__, count, on_batch)
        fit_step = _fit_step(model, sequence, fit_steps)
    return startup, steady, ran, fit_step


def try_workers(dataset, workers: list[int], *, count: int, model=None, fit_steps: int = 0, on_batch=None) -> list[WorkerTrial]:
    trials = []
    for n in workers:
        for kind, option, run in (
            ("keras-threads", f"Keras workers={n} (threads)", _keras_threads),
            ("multiprocess", f"MultiprocessSequence(workers={n})", _multiprocess),
        ):
            trial = WorkerTrial(option, kind, n)
            try:
                trial.startup_seconds, trial.batch_seconds, trial.batches, trial.fit_step_seconds = run(
                    dataset, n, count, model, fit_steps, on_batch
                )
            except KeyboardInterrupt:
                raise
            except Exception as error:  # noqa: BLE001 - an option that cannot run is a finding, not a crash
                trial.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
            trials.append(trial)
    return trials
