"""What every benchmark shares: timing the way `model.fit` iterates, a memcpy yardstick, tables, results.

Convention: each `benchmarks/bench_*.py` has `main() -> dict[str, Target]`. It prints its own table of
figures, and returns its ratios against the issue's targets; `python -m benchmarks` collects them into one
summary. With `--write-results`, a bench may also replace its own section of RESULTS.md with
`record_section(name, markdown)`; without the flag that call only prints where it would write.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console()

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
WRITE_RESULTS = False  # set by `python -m benchmarks --write-results`


@dataclass(frozen=True)
class Target:
    """A measured ratio and the figure the issue asks for; `higher_is_better=False` for ceilings."""

    value: float
    target: float
    higher_is_better: bool = True
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def describe_target(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {self.target:g}{self.unit}"


def keras_epoch_seconds(dataset, epochs: int = 1, *, warmup: int = 0) -> list[float]:
    """Wall time of full epochs, consumed as `model.fit` consumes a PyDataset (minus the model).

    Goes through Keras' own PyDatasetAdapter and its numpy iterator, so workers / multiprocessing
    settings of the dataset take effect, and calls on_epoch_begin/on_epoch_end around each epoch as fit
    does (their cost, e.g. reshuffling, is part of the epoch). `warmup` epochs run first, untimed.
    """
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(dataset, shuffle=False)
    times = []
    for epoch in range(warmup + epochs):
        start = time.perf_counter()
        adapter.on_epoch_begin()
        for _batch in adapter.get_numpy_iterator():
            pass
        adapter.on_epoch_end()
        if epoch >= warmup:
            times.append(time.perf_counter() - start)
    return times


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Fastest wall time of `repeat` calls: the least disturbed by the rest of the machine."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def memcpy_rate(nbytes: int, repeat: int = 5) -> float:
    """Bytes per second of `np.copy` on this machine for a buffer of `nbytes` (best of a few)."""
    src = np.ones(max(int(nbytes), 1), dtype=np.uint8)
    np.copy(src)  # fault the pages of the allocator's first use in
    return src.nbytes / best_of(lambda: np.copy(src), repeat)


def print_table(title: str, rows: Iterable[dict]) -> None:
    """One rich table; the keys of the first row are the columns, floats shown with 3 significant digits."""
    rows = list(rows)
    table = Table(title=title, title_justify="left")
    if not rows:
        console.print(table)
        return
    columns = list(rows[0])
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(column, "")) for column in columns))
    console.print(table)


def _cell(value) -> str:
    if isinstance(value, Target):
        mark = "[green]yes[/]" if value.met else "[red]NO[/]"
        return f"{value.value:.3g}{value.unit} ({value.describe_target()}: {mark})"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: Iterable[dict]) -> str:
    """The same rows as a GitHub markdown table, for RESULTS.md."""
    rows = list(rows)
    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            if isinstance(value, Target):
                value = f"{value.value:.3g}{value.unit} ({value.describe_target()}, {'met' if value.met else 'MISSED'})"
            elif isinstance(value, float):
                value = f"{value:.3g}"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    import platform

    return f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"


def record_section(name: str, markdown: str) -> None:
    """Replace the part of RESULTS.md between `<!-- begin NAME -->` and `<!-- end NAME -->` (appended if absent).

    Written to a temp file and renamed, so concurrent benches or a crash never leave a half file; only
    with `--write-results`, because figures belong to the machine that measured them.
    """
    if not WRITE_RESULTS:
        console.print(f"[dim](results for {name!r} not written; pass --write-results to update {RESULTS_PATH.name})[/]")
        return
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(dir=RESULTS_PATH.parent, prefix=".RESULTS.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, RESULTS_PATH)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
