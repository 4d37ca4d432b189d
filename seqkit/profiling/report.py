"""The profile's result: figures, verdict and advice, as an object, as JSON (schema.json), as text or HTML."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqkit.profiling.findings import LineFinding
from seqkit.profiling.memory import MemoryStats
from seqkit.profiling.verdict import INPUT_BOUND_SHARE, ModelStats
from seqkit.profiling.workers import WorkerTrial

SCHEMA_ID = "seqkit.profile/1"
SCHEMA_PATH = Path(__file__).with_name("schema.json")
LEAK_BYTES = 64 << 10  # kept per batch beyond this (and a quarter of a batch) is a cache or a leak
WORTH_TRYING = 1.2  # a worker option this much faster than the dataset as it is gets recommended


@dataclass
class Latency:
    first_batch_seconds: float
    warmup_seconds: list[float]  # the batches after the first that are still warming up
    steady_seconds: list[float]
    samples_per_batch: int | None
    bytes_per_batch: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.steady_seconds))

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.steady_seconds, q))

    @property
    def samples_per_second(self) -> float | None:
        return self.samples_per_batch / self.mean if self.samples_per_batch and self.mean > 0 else None

    @property
    def mb_per_second(self) -> float | None:
        return self.bytes_per_batch / self.mean / 1e6 if self.mean > 0 else None


@dataclass
class HotLine:
    filename: str
    line: int
    function: str
    source: str
    share: float  # of the batch time
    seconds_per_batch: float
    hits_per_batch: float | None
    findings: list[LineFinding] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # call sites leading here, innermost first ("file:line")
    epoch_saving_seconds: float | None = None  # data time per epoch if the line cost nothing
    fit_epoch_saving_seconds: float | None = None  # fit time per epoch, with the measured model

    @property
    def location(self) -> str:
        return f"{short_path(self.filename)}:{self.line}"


@dataclass
class HotFunction:
    filename: str
    function: str
    line: int
    share: float
    seconds_per_batch: float
    calls_per_batch: float | None
    called_from: str | None


@dataclass
class LineTiming:
    method: str
    batches: int
    mean_seconds: float  # per batch with the timer on
    overhead_ratio: float  # mean_seconds / the plain pass's mean
    samples: int | None


@dataclass
class ProfileReport:
    target: str
    dataset_type: str
    batches_per_epoch: int | None
    latency: Latency
    batch_times: list[float]  # every batch of the plain pass, first included, for plots
    line_timing: LineTiming | None
    lines: list[HotLine]
    functions: list[HotFunction]
    model: ModelStats | None
    workers: list[WorkerTrial]
    memory: MemoryStats | None
    notes: list[str]
    settings: dict
    wall_seconds: float

    # -- verdict and advice ---------------------------------------------------------------------------
    @property
    def verdict(self) -> str | None:
        return self.model.verdict if self.model is not None else None

    @property
    def statement(self) -> str:
        data = self.latency.mean
        if self.model is None:
            return (
                f"The generator takes {ms(data)} per batch; pass a model (--model) to learn whether training "
                "waits for it."
            )
        m = self.model
        if m.verdict == "input-bound":
            return (
                f"Input-bound: the model waits {m.input_wait_share:.0%} of each step for data "
                f"({ms(data)} to make a batch, {ms(m.train_step_seconds)} to train on it)."
            )
        if m.input_wait_share >= INPUT_BOUND_SHARE:
            wait = f"fits with and without the generator differ by no more than the machine's noise, {ms(m.fit_ready_spread_seconds)}"
        else:
            wait = f"the model waits {m.input_wait_share:.0%} of each step for data"
        return (
            f"Compute-bound: the generator is not your bottleneck ({wait}; "
            f"{ms(data)} to make a batch, {ms(m.train_step_seconds)} to train on it)."
        )

    def best_worker_option(self) -> WorkerTrial | None:
        def step(trial):
            return trial.fit_step_seconds if self.model is not None else trial.batch_seconds

        ran = [t for t in self.workers if t.error is None and step(t)]
        return min(ran, key=step, default=None)

    def worker_speedup(self, trial: WorkerTrial) -> float | None:
        if trial.error is not None:
            return None
        if self.model is not None:
            base, value = self.model.fit_step_seconds, trial.fit_step_seconds
        else:
            base, value = self.latency.mean, trial.batch_seconds
        return base / value if base and value else None

    def advice(self) -> list[str]:
        out = []
        fixable = [line for line in self.lines if line.findings and line.share >= 0.05]
        for line in fixable[:3]:
            codes = ", ".join(sorted({f.code for f in line.findings}))
            safe = any(f.fix == "safe" for f in line.findings)
            how = f"`seqlint fix {short_path(line.filename)}` rewrites it" if safe else f"see `seqlint rule {line.findings[0].code}`"
            gain = ""
            if line.epoch_saving_seconds is not None:
                gain = f"; up to {line.epoch_saving_seconds:.2f} s of data time per epoch"
                if line.fit_epoch_saving_seconds is not None:
                    gain += f" ({line.fit_epoch_saving_seconds:.2f} s of fit time)"
            out.append(f"{line.location} takes {line.share:.0%} of each batch ({codes}): {how}{gain}.")
        best = self.best_worker_option()
        if best is not None:
            speedup = self.worker_speedup(best)
            if speedup and speedup >= WORTH_TRYING and (self.model is None or self.model.verdict == "input-bound"):
                what = "fit step" if self.model is not None else "batch rate"
                out.append(f"{best.option} measured {speedup:.1f}x the {what} of the dataset as it is.")
        if self.model is not None and self.model.verdict == "compute-bound":
            out.append("The model is the bottleneck: a faster data pipeline would not shorten training.")
        if self.memory is not None and self.memory.keeps_big_array_alive:
            big = max((v for v in self.memory.views if v.keeps_big_array_alive), key=lambda v: v.base_nbytes)
            out.append(
                f"{big.leaf} is a view of a {big.base_nbytes / 1e6:.1f} MB temporary array: every batch held "
                "(Keras queues up to max_queue_size) keeps it alive; return a copy or index the source directly."
            )
        if self.memory is not None and self.memory.retained_per_batch > max(LEAK_BYTES, 0.25 * self.memory.batch_bytes):
            out.append(
                f"The generator keeps {self.memory.retained_per_batch / 1e6:.1f} MB per batch after the batch is "
                "dropped (a cache or list growing every batch?)."
            )
        return out

    # -- output ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        lat = self.latency
        d = {
            "schema": SCHEMA_ID,
            "seqkit_version": _version(),
            "python": platform.python_version(),
            "target": self.target,
            "dataset_type": self.dataset_type,
            "batches_per_epoch": self.batches_per_epoch,
            "settings": dict(self.settings),
            "wall_seconds": self.wall_seconds,
            "latency": {
                "first_batch_seconds": lat.first_batch_seconds,
                "warmup_batches": 1 + len(lat.warmup_seconds),
                "warmup_mean_seconds": float(np.mean(lat.warmup_seconds)) if lat.warmup_seconds else None,
                "steady": {
                    "batches": len(lat.steady_seconds),
                    "mean_seconds": lat.mean,
                    "p50_seconds": lat.percentile(50),
                    "p95_seconds": lat.percentile(95),
                    "max_seconds": float(max(lat.steady_seconds)),
                },
                "samples_per_batch": lat.samples_per_batch,
                "bytes_per_batch": lat.bytes_per_batch,
                "samples_per_second": lat.samples_per_second,
                "mb_per_second": lat.mb_per_second,
                "epoch_seconds": lat.mean * self.batches_per_epoch if self.batches_per_epoch else None,
                "batch_seconds": list(self.batch_times),
            },
            "line_timing": None,
            "lines": [
                {
                    "file": line.filename,
                    "line": line.line,
                    "function": line.function,
                    "source": line.source,
                    "share": line.share,
                    "seconds_per_batch": line.seconds_per_batch,
                    "hits_per_batch": line.hits_per_batch,
                    "via": list(line.via),
                    "findings": [
                        {"code": f.code, "name": f.name, "message": f.message, "row": f.row, "fix": f.fix}
                        for f in line.findings
                    ],
                    "epoch_saving_seconds": line.epoch_saving_seconds,
                    "fit_epoch_saving_seconds": line.fit_epoch_saving_seconds,
                }
                for line in self.lines
            ],
            "functions": [
                {
                    "file": f.filename,
                    "function": f.function,
                    "line": f.line,
                    "share": f.share,
                    "seconds_per_batch": f.seconds_per_batch,
                    "calls_per_batch": f.calls_per_batch,
                    "called_from": f.called_from,
                }
                for f in self.functions
            ],
            "model": None,
            "verdict": self.verdict,
            "statement": self.statement,
            "workers": [
                {
                    "option": t.option,
                    "kind": t.kind,
                    "workers": t.workers,
                    "batches": t.batches,
                    "startup_seconds": t.startup_seconds,
                    "batch_seconds": t.batch_seconds,
                    "fit_step_seconds": t.fit_step_seconds,
                    "speedup": self.worker_speedup(t),
                    "error": t.error,
                }
                for t in self.workers
            ],
            "memory": None,
            "advice": self.advice(),
            "notes": list(self.notes),
        }
        if self.line_timing is not None:
            lt = self.line_timing
            d["line_timing"] = {
                "method": lt.method,
                "batches": lt.batches,
                "mean_seconds": lt.mean_seconds,
                "overhead_ratio": lt.overhead_ratio,
                "samples": lt.samples,
            }
        if self.model is not None:
            m = self.model
            d["model"] = {
                "name": m.name,
                "first_step_seconds": m.first_step_seconds,
                "train_step_seconds": m.train_step_seconds,
                "fit_ready_step_seconds": m.fit_ready_step_seconds,
                "fit_ready_spread_seconds": m.fit_ready_spread_seconds,
                "fit_step_seconds": m.fit_step_seconds,
                "fit_steps": m.fit_steps,
                "data_seconds": lat.mean,
                "input_wait_share": m.input_wait_share,
                "input_bound_threshold": INPUT_BOUND_SHARE,
                "verdict": m.verdict,
            }
        if self.memory is not None:
            mem = self.memory
            d["memory"] = {
                "batches": mem.batches,
                "peak_growth_mean_bytes": mem.peak_growth_mean,
                "peak_growth_max_bytes": mem.peak_growth_max,
                "retained_per_batch_bytes": mem.retained_per_batch,
                "batch_bytes": mem.batch_bytes,
                "views": [
                    {
                        "leaf": v.leaf,
                        "nbytes": v.nbytes,
                        "base_nbytes": v.base_nbytes,
                        "base_owner": v.base_owner,
                        "keeps_big_array_alive": v.keeps_big_array_alive,
                    }
                    for v in mem.views
                ],
                "keeps_big_array_alive": mem.keeps_big_array_alive,
            }
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def print(self, console=None) -> None:
        from seqkit.profiling.console import print_report

        print_report(self, console)

    def to_html(self) -> str:
        from seqkit.profiling.html import render_html

        return render_html(self)

    def to_svg(self) -> str:
        from seqkit.profiling.html import render_svg

        return render_svg(self)

    def write(self, path) -> Path:
        """Write the report to `path`: `.html`/`.htm` (self-contained page), `.svg` (the plots) or `.json`.

        Written to a temporary file in the same folder and renamed: never half a file."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            text = self.to_html()
        elif suffix == ".svg":
            text = self.to_svg()
        elif suffix == ".json":
            text = self.to_json() + "\n"
        else:
            raise ValueError(f"report path must end in .html, .svg or .json, got {str(path)!r}")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"report path: no such folder: {path.parent}")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1e3:.0f} ms"
    if seconds >= 1e-4:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def short_path(filename: str) -> str:
    """The file relative to the working directory when it is below it, else its name and folder."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        rel = filename
    if not rel.startswith(".."):
        return rel
    parts = Path(filename).parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else filename


def _version() -> str:
    from seqkit import __version__

    return __version__
