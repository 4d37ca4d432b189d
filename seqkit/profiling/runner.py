"""`profile()`: the passes over the dataset, in order, each on its own so none skews another.

1. plain timing: `dataset[i]` alone; the first batch and the warm-up are kept apart from the steady state;
2. line timing: as many batches again under the line timer, run between the two halves of the plain
   pass; its mean against the plain mean is the profiler's overhead, reported;
3. memory: a few batches under tracemalloc;
4. the model, if any: its step on a ready batch, and real `model.fit` steps with and without data cost;
5. worker options, run for real.
The default budget (`seconds=10`) sizes the passes from the first batches' speed.
"""

from __future__ import annotations

import linecache
import os
import platform
import time
from contextlib import contextmanager

import numpy as np

from seqkit.profiling.batches import BatchShape, Cursor
from seqkit.profiling.findings import lint_files, on_line
from seqkit.profiling.lines import METHODS, CodeFilter, LineTimes, has_monitoring, make_timer
from seqkit.profiling.report import HotFunction, HotLine, Latency, LineTiming, ProfileReport, short_path
from seqkit.profiling.target import ProfileError, is_dataset
from seqkit.profiling.workers import check_workers

MIN_BATCHES = 5
MAX_BATCHES = 2500  # per half of the plain pass
MEMORY_BATCHES = 8
TOP_LINES = 10
MIN_SHARE = 0.005  # lines below half a percent of the batch are noise


class DatasetError(RuntimeError):
    """The dataset raised while making a batch (the original exception is chained)."""


class ModelError(RuntimeError):
    """The model raised while being timed on the dataset's batches (the original exception is chained)."""


def default_workers() -> list[int]:
    return [max(2, min(4, os.cpu_count() or 2))]


def _check(dataset, model, batches, seconds, workers, line_method):
    if not is_dataset(dataset):
        raise ProfileError(
            f"dataset must have __getitem__ and __len__ (a keras.utils.PyDataset or Sequence), got {type(dataset).__name__}"
        )
    if batches is not None and (isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 2):
        raise ProfileError(f"batches must be an integer >= 2 or None (about `seconds` of work), got {batches!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ProfileError(f"seconds must be a positive number, got {seconds!r}")
    if line_method not in METHODS:
        raise ProfileError(f"line_method must be one of {', '.join(METHODS)}, got {line_method!r}")
    if line_method == "monitoring" and not has_monitoring():
        raise ProfileError(f"line_method='monitoring' needs Python 3.12+ (sys.monitoring); this is {platform.python_version()}")
    if model is not None:
        from seqkit.profiling.model import check_model

        check_model(model)
    if isinstance(workers, str):
        if workers != "auto":
            raise ProfileError(f"workers must be 'auto', a list of worker counts or None, got {workers!r}")
        return default_workers()
    return check_workers(workers or [])


class _Progress:
    """A rich progress bar on stderr, one task per pass (silent when disabled)."""

    def __init__(self, enabled: bool):
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )

    def __enter__(self):
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def task(self, description: str, total: int | None = None):
        if self._progress is None:
            yield lambda n=1: None
            return
        task = self._progress.add_task(description, total=total)
        try:
            yield lambda n=1: self._progress.advance(task, n)
        finally:
            self._progress.update(task, visible=False)


def _run_batches(get, cursor: Cursor, count: int | None, budget: float, advance) -> tuple[list[float], object]:
    """Times of `get(index)` for `count` batches, or until `budget` seconds (at least MIN_BATCHES)."""
    times: list[float] = []
    first = None
    if count is not None and count < 1:
        return times, first
    start = time.perf_counter()
    while True:
        index = cursor.take()
        t = time.perf_counter()
        try:
            batch = get(index)
        except (KeyboardInterrupt, ProfileError, DatasetError):
            raise
        except Exception as error:
            raise DatasetError(f"dataset[{index}] raised {type(error).__name__}: {error}") from error
        times.append(time.perf_counter() - t)
        if first is None:
            first = batch
        del batch
        advance()
        if count is not None:
            if len(times) >= count:
                break
        elif (len(times) >= MIN_BATCHES and time.perf_counter() - start >= budget) or len(times) >= MAX_BATCHES:
            break
    return times, first


def _warmup_count(n: int) -> int:
    """Batches after the first still counted as warm-up: none for short runs, up to two."""
    return min(2, max(0, (n - 3) // 5))


def profile(
    dataset,
    model=None,
    *,
    batches: int | None = None,
    seconds: float = 10.0,
    workers="auto",
    lines: bool = True,
    memory: bool = True,
    line_method: str = "auto",
    progress: bool | None = None,
    target: str | None = None,
) -> ProfileReport:
    """Profile `dataset` (a Keras PyDataset/Sequence or any object with `__getitem__` and `__len__`).

    `model` (compiled): also time its train step and real `model.fit` steps, and say whether training is
    input-bound. `batches`: how many batches the timing passes run (default: sized to take about
    `seconds` in all). `workers`: worker counts to try as Keras `workers=N` threads and as
    `MultiprocessSequence(workers=N)` ("auto": one count from the cores; None or []: none). `lines`,
    `memory`: the line-timing and memory passes. `line_method`: "auto", "sampling" or "monitoring"
    (Python 3.12+; see seqkit.profiling.lines). `progress`: a progress bar on stderr (default: when
    stderr is a terminal). Returns a ProfileReport (`.print()`, `.to_dict()`, `.write("report.html")`).

    Batches are taken in order from index 0, `on_epoch_end` runs when an epoch's batches are used up,
    as in `model.fit(..., shuffle=False)`; the model's weights are restored afterwards.
    """
    import sys

    worker_counts = _check(dataset, model, batches, seconds, workers, line_method)
    wall = time.perf_counter()
    if progress is None:
        progress = sys.stderr.isatty()
    n_budget_parts = 2 + (1 if model is not None else 0) + (1 if worker_counts else 0)
    pass_budget = seconds / n_budget_parts
    notes: list[str] = []
    length = Cursor(dataset).length

    with _Progress(progress) as bars:
        # 1-2. plain timing, with the line-timing pass in the middle (plain, lines, plain) so that a
        # drift in the machine's speed (other work on the cores) does not pass for the timer's overhead.
        first_half = batches - batches // 2 if batches is not None else None
        with bars.task("timing batches and lines", 2 * batches if batches else None) as advance:
            times, first_batch = _run_batches(dataset.__getitem__, Cursor(dataset), first_half, pass_budget / 2, advance)
            n = batches if batches is not None else 2 * len(times)
            line_timing, hot, functions, line_times = None, [], [], None
            if lines:
                times_lines, line_times, method_note = _line_pass(dataset, n, line_method, advance)
                if method_note:
                    notes.append(method_note)
            later, _ = _run_batches(dataset.__getitem__, Cursor(dataset), n - len(times), 0.0, advance)
            times += later
        warm = _warmup_count(n)
        steady = times[1 + warm :] or times
        shape = BatchShape.of(first_batch)
        latency = Latency(times[0], times[1 : 1 + warm], steady, shape.samples, shape.nbytes)
        if line_times is not None:
            steady_lines = times_lines[1 + warm :] or times_lines
            overhead = float(np.mean(steady_lines)) / latency.mean if latency.mean > 0 else 1.0
            line_timing = LineTiming(line_times.method, len(times_lines), float(np.mean(steady_lines)), overhead, line_times.samples)
            hot, functions, lint_notes = _hot_spots(line_times, latency.mean, length, dataset)
            notes.extend(lint_notes)

        # 3. memory
        mem = None
        if memory:
            from seqkit.profiling.memory import measure_memory

            count = min(n, MEMORY_BATCHES)
            cursor = Cursor(dataset)
            with bars.task("measuring memory", count) as advance:
                mem = measure_memory(dataset, [cursor.take() for _ in range(count)], advance)

        # 4. model
        model_stats = None
        if model is not None:
            from seqkit.profiling.model import measure_model

            with bars.task("timing the model", None) as advance:
                try:
                    model_stats = measure_model(
                        model, dataset, first_batch, data_seconds=latency.mean, budget=pass_budget, steps=batches, on_step=advance
                    )
                except (KeyboardInterrupt, ProfileError):
                    raise
                except Exception as error:
                    raise ModelError(f"training the model on the dataset's batches raised {type(error).__name__}: {error}") from error
            for line in hot:
                if length:
                    after = max(model_stats.fit_ready_step_seconds, model_stats.fit_step_seconds - line.seconds_per_batch)
                    line.fit_epoch_saving_seconds = max(0.0, model_stats.fit_step_seconds - after) * length

        # 5. workers
        trials = []
        if worker_counts:
            from seqkit.profiling.workers import try_workers

            options = 2 * len(worker_counts)
            per_option = pass_budget / options
            count = batches or int(min(100, max(8, per_option / max(latency.mean, 1e-5))))
            fit_steps = 0
            if model_stats is not None:
                step = max(model_stats.fit_step_seconds, 1e-4)
                fit_steps = batches or int(min(100, max(8, per_option / 2 / step)))  # two fits per option
            state = None
            if model is not None:
                from seqkit.profiling.model import ModelState, split_batch

                state = ModelState(model, split_batch(first_batch)[0])
            try:
                with bars.task("trying workers", None) as advance:
                    trials = try_workers(dataset, worker_counts, count=count, model=model, fit_steps=fit_steps, on_batch=advance)
            finally:
                if state is not None:
                    state.restore()  # the trials' fits trained it

    return ProfileReport(
        target=target or f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        dataset_type=f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        batches_per_epoch=length,
        latency=latency,
        batch_times=times,
        line_timing=line_timing,
        lines=hot,
        functions=functions,
        model=model_stats,
        workers=trials,
        memory=mem,
        notes=notes,
        settings={
            "batches": batches,
            "seconds": float(seconds),
            "workers": worker_counts,
            "lines": lines,
            "memory": memory,
            "line_method": line_method,
        },
        wall_seconds=time.perf_counter() - wall,
    )


def _root_code(dataset):
    getitem = getattr(type(dataset), "__getitem__", None)
    return getattr(getitem, "__code__", None)


def _line_pass(dataset, n: int, line_method: str, advance) -> tuple[list[float], LineTimes, str | None]:
    root = _root_code(dataset)
    code_filter = CodeFilter(roots=[root] if root is not None else [])
    timer = make_timer(line_method, code_filter)
    note = None
    try:
        timer.start()
    except RuntimeError as error:
        if line_method != "auto":
            raise ProfileError(f"line_method={line_method!r}: {error}") from None
        note = f"sys.monitoring unavailable ({error}); lines sampled"
        timer = make_timer("sampling", code_filter)
        timer.start()
    try:
        cursor = Cursor(dataset)
        for _ in range(n):
            index = cursor.take()
            try:
                timer.call(dataset.__getitem__, index)
            except (KeyboardInterrupt, ProfileError):
                raise
            except Exception as error:
                raise DatasetError(f"dataset[{index}] raised {type(error).__name__}: {error}") from error
            advance()
    finally:
        result = timer.stop()
    return result.batch_seconds, result, note


def _caller_chain(line_times: LineTimes, function_key, depth: int = 4) -> list[str]:
    """The most frequent call path into `function_key`, innermost call site first ("file:line")."""
    chain = []
    seen = {function_key}
    key = function_key
    for _ in range(depth):
        callers = line_times.callers.get(key)
        if not callers:
            break
        (caller, line), _ = max(callers.items(), key=lambda item: item[1])
        chain.append(f"{short_path(caller[0])}:{line}")
        if caller in seen:
            break
        seen.add(caller)
        key = caller
    return chain


def _hot_spots(line_times: LineTimes, batch_seconds: float, length: int | None, dataset):
    pass_batches = max(1, len(line_times.batch_seconds))
    top = [(key, s) for key, s in line_times.top_lines(TOP_LINES) if line_times.share(s) >= MIN_SHARE]
    files = {key[0] for key, _ in top}
    root = _root_code(dataset)
    if root is not None:
        files.add(root.co_filename)
    files = {f for f in files if f and not f.startswith("<") and os.path.isfile(f)}
    findings, notes = lint_files(files) if files else ({}, [])
    hot = []
    for (filename, line), seconds in top:
        share = line_times.share(seconds)
        fkey = line_times.line_function.get((filename, line), (filename, "?", 0))
        hits = line_times.hits.get((filename, line)) if line_times.hits is not None else None
        hot.append(
            HotLine(
                filename=filename,
                line=line,
                function=fkey[1],
                source=linecache.getline(filename, line).strip(),
                share=share,
                seconds_per_batch=share * batch_seconds,
                hits_per_batch=hits / pass_batches if hits is not None else None,
                findings=on_line(findings.get(filename, []), line),
                via=_caller_chain(line_times, fkey),
                epoch_saving_seconds=share * batch_seconds * length if length else None,
            )
        )
    functions = []
    for fkey, seconds in line_times.top_functions(TOP_LINES):
        share = line_times.share(seconds)
        if share < MIN_SHARE:
            continue
        calls = line_times.calls.get(fkey) if line_times.calls is not None else None
        chain = _caller_chain(line_times, fkey, depth=1)
        functions.append(
            HotFunction(
                filename=fkey[0],
                function=fkey[1],
                line=fkey[2],
                share=min(1.0, share),
                seconds_per_batch=min(1.0, share) * batch_seconds,
                calls_per_batch=calls / pass_batches if calls is not None else None,
                called_from=chain[0] if chain else None,
            )
        )
    return hot, functions, notes
