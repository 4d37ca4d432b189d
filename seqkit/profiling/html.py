"""The report as one self-contained HTML page (inline CSS and SVG plots: no script, no network) or SVG.

Each plot has its own fill colour (PLOT_COLOURS), which is also how the browser test finds it drawn.
"""

from __future__ import annotations

from html import escape

from seqkit.profiling.report import ProfileReport, ms, short_path

PLOT_COLOURS = {
    "latency": "#1f77b4",  # steady batches (warm-up ones are lighter)
    "lines": "#d62728",
    "data": "#ff7f0e",  # data time in the data-vs-model plot
    "model": "#2ca02c",  # model time in the same plot
    "workers": "#9467bd",
}
_WARMUP_COLOUR = "#aec7e8"
_WIDTH = 760
_FONT = "font-family='Helvetica, Arial, sans-serif' font-size='12'"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='{escape(title)}'><title>{escape(title)}</title>"
        f"<rect width='{width}' height='{height}' fill='white'/>" + "".join(body) + "</svg>"
    )


def latency_plot(report: ProfileReport) -> str:
    """One bar per batch of the plain pass (first and warm-up batches lighter), p50 and p95 as lines.

    Past ~250 batches, each bar is the mean of a run of consecutive batches, so bars stay whole pixels."""
    times = report.batch_times
    warm = 1 + len(report.latency.warmup_seconds)
    height, left, top, bottom = 220, 60, 28, 30
    plot_w, plot_h = _WIDTH - left - 20, height - top - bottom
    per_bar = max(1, -(-len(times) // (plot_w // 3)))
    bars = [(sum(times[i : i + per_bar]) / len(times[i : i + per_bar]), i < warm) for i in range(0, len(times), per_bar)]
    values = sorted(value for value, _ in bars)
    # A first batch 100x the rest would flatten every other bar: the axis stops at 4x the p95 bar.
    peak = min(values[-1], 4 * values[int(0.95 * (len(values) - 1))]) or 1e-9
    bar_w = plot_w // len(bars)
    shown = f"batch ({len(times)}" + (f", {per_bar} per bar)" if per_bar > 1 else ")")
    body = [f"<text x='{left}' y='16' {_FONT} font-weight='bold'>Batch latency, batch by batch (plain pass)</text>"]
    for i, (value, warming) in enumerate(bars):
        h = max(1, round(plot_h * min(value, peak) / peak))
        colour = _WARMUP_COLOUR if warming else PLOT_COLOURS["latency"]
        body.append(
            f"<rect x='{left + i * bar_w}' y='{top + plot_h - h}' width='{max(bar_w - 1, 1)}' height='{h}' "
            f"fill='{colour}' shape-rendering='crispEdges'/>"
        )
    # p50 labelled at the left end of its line, p95 at the right: close values never overlap.
    for q, dash, x, anchor in ((50, "4,3", left + 4, "start"), (95, "1,2", left + plot_w - 4, "end")):
        value = report.latency.percentile(q)
        y = top + plot_h - plot_h * min(value, peak) / peak
        body.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.2f}' y2='{y:.2f}' stroke='#333' stroke-dasharray='{dash}'/>")
        body.append(
            f"<text x='{x}' y='{y - 3:.2f}' text-anchor='{anchor}' {_FONT} stroke='white' stroke-width='3' "
            f"paint-order='stroke'>p{q} {escape(ms(value))}</text>"
        )
    body.append(f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + plot_h}' stroke='#333'/>")
    body.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{top + plot_h}' y2='{top + plot_h}' stroke='#333'/>")
    body.append(f"<text x='{left - 6}' y='{top + 10}' text-anchor='end' {_FONT}>{escape(ms(peak))}</text>")
    body.append(f"<text x='{left - 6}' y='{top + plot_h}' text-anchor='end' {_FONT}>0</text>")
    body.append(f"<text x='{left + plot_w / 2}' y='{height - 8}' text-anchor='middle' {_FONT}>{shown}</text>")
    return _svg(_WIDTH, height, body, "batch latency")


def _hbars(title: str, rows: list[tuple[str, float, str, str]], label_width: int = 300) -> str:
    """Horizontal bars: (label, value, value text, colour) per row, scaled to the largest value."""
    row_h, top = 24, 28
    height = top + row_h * len(rows) + 10
    plot_w = _WIDTH - label_width - 90
    peak = max((value for _, value, _, _ in rows), default=0.0) or 1e-9
    body = [f"<text x='4' y='16' {_FONT} font-weight='bold'>{escape(title)}</text>"]
    for i, (label, value, text, colour) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, plot_w * value / peak)
        shown = label if len(label) <= 48 else label[:47] + "…"
        body.append(f"<text x='{label_width - 6}' y='{y + 15}' text-anchor='end' {_FONT}>{escape(shown)}</text>")
        body.append(f"<rect x='{label_width}' y='{y + 3}' width='{w:.0f}' height='{row_h - 8}' fill='{colour}' shape-rendering='crispEdges'/>")
        body.append(f"<text x='{label_width + w + 6:.2f}' y='{y + 15}' {_FONT}>{escape(text)}</text>")
    return _svg(_WIDTH, height, body, title)


def lines_plot(report: ProfileReport) -> str:
    rows = [(f"{line.location}  {line.source}", line.share, f"{line.share:.0%}", PLOT_COLOURS["lines"]) for line in report.lines[:8]]
    return _hbars("Share of batch time by line (self time)", rows)


def model_plot(report: ProfileReport) -> str:
    m = report.model
    rows = [
        ("data: one batch from the generator", report.latency.mean, ms(report.latency.mean), PLOT_COLOURS["data"]),
        ("model: train step on a ready batch", m.train_step_seconds, ms(m.train_step_seconds), PLOT_COLOURS["model"]),
        ("model.fit step, data ready", m.fit_ready_step_seconds, ms(m.fit_ready_step_seconds), PLOT_COLOURS["model"]),
        ("model.fit step, your data", m.fit_step_seconds, ms(m.fit_step_seconds), PLOT_COLOURS["data"]),
    ]
    return _hbars(f"Data vs model: {report.statement.split(':')[0]}", rows)


def workers_plot(report: ProfileReport) -> str:
    use_fit = report.model is not None
    base = report.model.fit_step_seconds if use_fit else report.latency.mean
    rows = [("as it is", base, ms(base), PLOT_COLOURS["workers"])]
    for trial in report.workers:
        value = trial.fit_step_seconds if use_fit else trial.batch_seconds
        if trial.error is None and value:
            rows.append((trial.option, value, ms(value), PLOT_COLOURS["workers"]))
    what = "model.fit step" if use_fit else "time per batch as fit receives it"
    return _hbars(f"Worker options, measured: {what} (shorter is better)", rows)


def plots(report: ProfileReport) -> list[str]:
    out = [latency_plot(report)]
    if report.lines:
        out.append(lines_plot(report))
    if report.model is not None:
        out.append(model_plot(report))
    if report.workers:
        out.append(workers_plot(report))
    return out


def render_svg(report: ProfileReport) -> str:
    """The plots stacked in one SVG document."""
    parts, y = [], 0
    for svg in plots(report):
        height = int(svg.split("height='", 1)[1].split("'", 1)[0])
        parts.append(f"<g transform='translate(0,{y})'>{svg}</g>")
        y += height + 10
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{y}' viewBox='0 0 {_WIDTH} {y}'>"
        + "".join(parts)
        + "</svg>\n"
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:820px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
td.n{text-align:right}code{font-size:12px}
.verdict{font-size:16px;font-weight:bold;padding:8px;border-radius:4px}
.input-bound{background:#fde0dc}.compute-bound{background:#e3f4e1}.none{background:#eee}
.dim{color:#777;font-size:12px}svg{display:block;margin:8px 0}
"""


def render_html(report: ProfileReport) -> str:
    lat = report.latency
    e = escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>seqkit profile: {e(report.target)}</title><style>{_CSS}</style></head><body>",
        f"<h1>seqkit profile <code>{e(report.target)}</code></h1>",
        f"<p class='dim'>{e(report.dataset_type)}"
        + (f", {report.batches_per_epoch} batches per epoch" if report.batches_per_epoch else "")
        + f"; profiled in {report.wall_seconds:.1f} s</p>",
        f"<p class='verdict {e(report.verdict or 'none')}'>{e(report.statement)}</p>",
        "<h2>Batch latency</h2>",
        _table(
            ["first batch", "warm-up mean", "steady mean", "p50", "p95", "max", "samples/s", "MB/s"],
            [[
                e(ms(lat.first_batch_seconds)),
                e(ms(sum(lat.warmup_seconds) / len(lat.warmup_seconds))) if lat.warmup_seconds else "-",
                e(ms(lat.mean)),
                e(ms(lat.percentile(50))),
                e(ms(lat.percentile(95))),
                e(ms(max(lat.steady_seconds))),
                f"{lat.samples_per_second:,.0f}" if lat.samples_per_second else "-",
                f"{lat.mb_per_second:,.1f}" if lat.mb_per_second else "-",
            ]],
        ),
        latency_plot(report),
    ]
    if report.lines:
        rows = []
        for line in report.lines:
            findings = "<br>".join(f"<b>{e(f.code)}</b> {e(f.message)}" + (f" <i>(fix: {e(f.fix)})</i>" if f.fix else "") for f in line.findings)
            saving = f"{line.epoch_saving_seconds:.2f} s" if line.epoch_saving_seconds is not None else "-"
            if line.fit_epoch_saving_seconds is not None:
                saving += f" ({line.fit_epoch_saving_seconds:.2f} s in fit)"
            rows.append([f"{line.share:.0%}", e(ms(line.seconds_per_batch)), f"<code>{e(line.location)}</code>", f"<code>{e(line.source)}</code>", findings, e(saving)])
        parts += ["<h2>Where __getitem__'s time goes</h2>", lines_plot(report), _table(["share", "per batch", "line", "code", "seqlint", "saves per epoch"], rows)]
    if report.functions:
        rows = [
            [f"{f.share:.0%}", e(ms(f.seconds_per_batch)), f"{f.calls_per_batch:,.1f}" if f.calls_per_batch is not None else "-", f"<code>{e(f.function)}</code> {e(short_path(f.filename))}:{f.line}", e(f.called_from or "")]
            for f in report.functions
        ]
        parts += ["<h2>By function (inclusive)</h2>", _table(["share", "per batch", "calls/batch", "function", "called from"], rows)]
    if report.model is not None:
        m = report.model
        parts += [
            "<h2>Data vs model</h2>",
            model_plot(report),
            f"<p class='dim'>model {e(m.name)}: first train step {e(ms(m.first_step_seconds))} (tracing); fit measured over {m.fit_steps} steps; "
            f"the model waits {m.input_wait_share:.0%} of each step for data.</p>",
        ]
    if report.workers:
        rows = []
        for t in report.workers:
            speedup = report.worker_speedup(t)
            rows.append([
                e(t.option),
                e(ms(t.startup_seconds)),
                e(ms(t.batch_seconds)),
                e(ms(t.fit_step_seconds)),
                f"{speedup:.1f}x" if speedup else "-",
                e(t.error or ""),
            ])
        parts += ["<h2>Worker options, measured</h2>", workers_plot(report), _table(["option", "start-up", "per batch", "fit step", "speed-up", "error"], rows)]
    if report.memory is not None:
        mem = report.memory
        views = "".join(
            f"<li><code>{e(v.leaf)}</code> is a view of a {v.base_nbytes / 1e6:.1f} MB array ({e(v.base_owner)})</li>"
            for v in mem.views
            if v.base_nbytes >= 1 << 20
        )
        parts += [
            "<h2>Memory</h2>",
            f"<p>Peak growth per batch {mem.peak_growth_mean / 1e6:.2f} MB (max {mem.peak_growth_max / 1e6:.2f} MB); kept after the "
            f"batch is dropped {mem.retained_per_batch / 1e6:.2f} MB per batch; a batch is {mem.batch_bytes / 1e6:.2f} MB.</p>",
            f"<ul>{views}</ul>" if views else "<p>No batch array is a view of a large array.</p>",
        ]
    advice = report.advice()
    if advice:
        parts += ["<h2>What to do</h2><ul>", *(f"<li>{e(item)}</li>" for item in advice), "</ul>"]
    if report.line_timing is not None:
        lt = report.line_timing
        parts.append(
            f"<p class='dim'>Profiler overhead: the line-timing pass ({e(lt.method)}) ran at {lt.overhead_ratio:.2f}x the plain batch time.</p>"
        )
    parts += [f"<p class='dim'>note: {e(note)}</p>" for note in report.notes]
    parts.append("</body></html>\n")
    return "".join(parts)
