"""The report as rich tables, at most 100 columns wide."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from seqkit.profiling.report import ProfileReport, ms

WIDTH = 100


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", show_edge=False, pad_edge=False)


def _mb(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 1e6:.2f} MB"


def print_report(report: ProfileReport, console: Console | None = None) -> None:
    if console is None:
        console = Console(width=WIDTH) if not Console().is_terminal else Console()
    if console.width > WIDTH:
        console = Console(width=WIDTH, file=console.file, force_terminal=console.is_terminal, color_system=console.color_system)
    lat = report.latency
    epoch = f", {report.batches_per_epoch} batches per epoch" if report.batches_per_epoch else ""
    console.print(Text(f"seqkit profile {report.target}", style="bold"), Text(f"({report.dataset_type}{epoch})", style="dim"))

    table = _table("Batch latency")
    for column in ("first batch", "warm-up", "steady mean", "p50", "p95", "max", "samples/s", "MB/s"):
        table.add_column(column, justify="right")
    warm = sum(lat.warmup_seconds) / len(lat.warmup_seconds) if lat.warmup_seconds else None
    table.add_row(
        ms(lat.first_batch_seconds),
        ms(warm),
        ms(lat.mean),
        ms(lat.percentile(50)),
        ms(lat.percentile(95)),
        ms(max(lat.steady_seconds)),
        f"{lat.samples_per_second:,.0f}" if lat.samples_per_second else "-",
        (f"{lat.mb_per_second:,.0f}" if lat.mb_per_second >= 100 else f"{lat.mb_per_second:.1f}") if lat.mb_per_second else "-",
    )
    console.print(table)
    console.print(
        f"[dim]{len(lat.steady_seconds)} steady batches after {1 + len(lat.warmup_seconds)} warm-up; "
        f"{lat.samples_per_batch or '?'} samples, {_mb(lat.bytes_per_batch)} per batch[/]"
    )

    if report.lines:
        console.print()
        table = _table("Where __getitem__'s time goes: top lines (self time, through your helpers)")
        table.add_column("share", justify="right")
        table.add_column("per batch", justify="right")
        table.add_column("line", overflow="fold", max_width=24)
        table.add_column("code", overflow="ellipsis", no_wrap=True, max_width=34)
        table.add_column("seqlint", no_wrap=True)
        table.add_column("saves/epoch", justify="right")
        footnotes = []
        for line in report.lines[:8]:
            codes = []
            for finding in line.findings:
                if finding not in footnotes:
                    footnotes.append(finding)
                codes.append(f"{finding.code}[{footnotes.index(finding) + 1}]")
            saving = f"{line.epoch_saving_seconds:.2f} s" if line.epoch_saving_seconds is not None else "-"
            table.add_row(f"{line.share:.0%}", ms(line.seconds_per_batch), Text(f"{Path(line.filename).name}:{line.line}"), Text(line.source), " ".join(codes), saving)
        console.print(table)
        for i, finding in enumerate(footnotes, 1):
            fix = f" (fix: {finding.fix})" if finding.fix else ""
            console.print(Text.assemble((f"[{i}] ", "dim"), f"{finding.code} {finding.message}{fix}"))
        top = report.lines[0]
        if top.via:
            console.print(Text(f"top line reached via {' <- '.join(top.via)}", style="dim"))

    if report.functions:
        table = _table("By function (inclusive)")
        table.add_column("share", justify="right")
        table.add_column("per batch", justify="right")
        table.add_column("calls/batch", justify="right")
        table.add_column("function", overflow="fold", max_width=40)
        table.add_column("called from", overflow="fold", max_width=30)
        for f in report.functions[:6]:
            calls = f"{f.calls_per_batch:,.1f}" if f.calls_per_batch is not None else "-"
            table.add_row(f"{f.share:.0%}", ms(f.seconds_per_batch), calls, Text(f"{f.function} ({Path(f.filename).name}:{f.line})"), Text(f.called_from or ""))
        console.print()
        console.print(table)

    if report.model is not None:
        m = report.model
        table = _table(f"Data vs model ({m.name})")
        for column in ("data per batch", "train step", "fit step, data ready", "fit step, your data", "waiting for data"):
            table.add_column(column, justify="right")
        table.add_row(ms(lat.mean), ms(m.train_step_seconds), ms(m.fit_ready_step_seconds), ms(m.fit_step_seconds), f"{m.input_wait_share:.0%}")
        console.print()
        console.print(table)
        console.print(f"[dim]first train step (tracing, compiling): {ms(m.first_step_seconds)}; fit over {m.fit_steps} steps[/]")
    style = "bold red" if report.verdict == "input-bound" else "bold green" if report.verdict else "bold"
    console.print(Text(report.statement, style=style))

    if report.workers:
        table = _table("Worker options, measured")
        table.add_column("option")
        table.add_column("start-up", justify="right")
        table.add_column("per batch", justify="right")
        if report.model is not None:
            table.add_column("fit step", justify="right")
        table.add_column("speed-up", justify="right")
        base_row = ["as it is", ms(lat.first_batch_seconds), ms(lat.mean)]
        if report.model is not None:
            base_row.append(ms(report.model.fit_step_seconds))
        table.add_row(*base_row, "1.0x")
        for trial in report.workers:
            if trial.error is not None:
                row = [trial.option, "-", Text(trial.error[:60], style="red", overflow="fold")]
                if report.model is not None:
                    row.append("-")
                table.add_row(*row, "-")
                continue
            speedup = report.worker_speedup(trial)
            row = [trial.option, ms(trial.startup_seconds), ms(trial.batch_seconds)]
            if report.model is not None:
                row.append(ms(trial.fit_step_seconds))
            table.add_row(*row, f"{speedup:.1f}x" if speedup else "-")
        console.print()
        console.print(table)

    if report.memory is not None:
        mem = report.memory
        views = [v for v in mem.views if v.base_nbytes >= 1 << 20]
        view_text = "; ".join(
            f"{v.leaf} is a view of a {v.base_nbytes / 1e6:.1f} MB array ({v.base_owner})" for v in views
        ) or "no batch array is a view of a large array"
        console.print()
        console.print(
            Text.assemble(
                ("Memory", "bold"),
                f" per batch: peak growth {_mb(mem.peak_growth_mean)} (max {_mb(mem.peak_growth_max)}), "
                f"kept after the batch is dropped {_mb(mem.retained_per_batch)}; {view_text}",
            )
        )

    if report.line_timing is not None:
        lt = report.line_timing
        samples = f", {lt.samples} samples" if lt.samples is not None else ""
        console.print(
            Text(
                f"profiler overhead: line timing ({lt.method}{samples}) ran at {lt.overhead_ratio:.2f}x the plain "
                f"batch time; whole profile {report.wall_seconds:.1f} s",
                style="dim",
            )
        )
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))
    advice = report.advice()
    if advice:
        console.print()
        console.print("[bold]What to do[/]")
        for item in advice:
            console.print(Text(f" - {item}"))
