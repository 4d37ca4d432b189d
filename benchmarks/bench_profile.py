"""seqkit profile on the demo generator: the profiler's overhead, and what `seqlint fix` buys the demo.

* overhead: batch time under the line timer (what `seqkit.profile` runs in its line-timing pass) over
  plain batch time, on the demo's example generator. Plain and timed blocks of batches alternate
  (ABBA), so that other work on the machine weighs on both alike; the figure is the median of the
  rounds. Target (issue 14): <= 1.5x.
* the demo before and after the real `seqlint fix`: data time per batch (the pipeline alone), the share
  of each step the model waits for data, and end-to-end `model.fit` time. The README headline quotes
  these two speed-ups separately.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.common import Target, console, machine_line, markdown_table, print_table, record_section

CACHE = Path(__file__).resolve().parent.parent / ".bench_cache" / "profile"
ROUNDS = 10
BLOCK = 8
EPOCHS = 5


def _block(dataset, indices, call) -> float:
    start = time.perf_counter()
    for index in indices:
        call(index)
    return (time.perf_counter() - start) / len(indices)


def overhead(dataset, method: str = "auto") -> tuple[float, float, float]:
    """(median ratio, plain seconds per batch, timed seconds per batch) of the line timer on `dataset`.

    Each round times a block of plain batches and a block of other batches under the timer, in
    alternating order; no batch is timed twice, so neither block finds the other's rows in the cache.
    """
    from seqkit.profiling.lines import CodeFilter, make_timer

    n = len(dataset)
    plain_times, timed_times, ratios = [], [], []
    timer = make_timer(method, CodeFilter(roots=[type(dataset).__getitem__.__code__]))
    for i in range(3):  # warm up the generator and the allocator
        dataset[i % n]
    with timer:
        for r in range(ROUNDS):
            blocks = {
                "plain": [(2 * r * BLOCK + i) % n for i in range(BLOCK)],
                "timed": [((2 * r + 1) * BLOCK + i) % n for i in range(BLOCK)],
            }
            got = {}
            for kind in (("plain", "timed") if r % 2 == 0 else ("timed", "plain")):
                call = dataset.__getitem__ if kind == "plain" else (lambda index: timer.call(dataset.__getitem__, index))
                got[kind] = _block(dataset, blocks[kind], call)
            plain_times.append(got["plain"])
            timed_times.append(got["timed"])
            ratios.append(got["timed"] / got["plain"])
    return statistics.median(ratios), statistics.median(plain_times), statistics.median(timed_times)


def main() -> dict:
    from seqkit.demo import fit_seconds, load, prepare
    from seqkit.profiling import profile
    from seqkit.profiling.report import ms

    before_path, after_path, lint_output = prepare(CACHE)
    changed = before_path.read_text() != after_path.read_text()
    console.print(f"demo example: {before_path}; seqlint fix {'rewrote' if changed else 'did NOT change'} {after_path.name}")

    dataset, model, _ = load(before_path)
    ratio, plain, timed = overhead(dataset)
    report_before = profile(dataset, model, seconds=8, workers=None, target=f"{before_path}:setup")
    del dataset, model
    dataset, model, _ = load(after_path)
    report_after = profile(dataset, model, seconds=8, workers=None, target=f"{after_path}:setup")
    del dataset, model
    fits = {label: fit_seconds(path, EPOCHS) for label, path in (("before", before_path), ("after", after_path))}

    pipeline = report_before.latency.mean / report_after.latency.mean
    end_to_end = fits["before"][1] / fits["after"][1]
    rows = [
        {"what": "line timing overhead (ABBA, median of rounds)", "before fix": f"{ms(timed)} / {ms(plain)}", "after fix": "", "ratio": f"{ratio:.2f}x"},
        {"what": "line timing overhead (profile's own figure)", "before fix": f"{report_before.line_timing.overhead_ratio:.2f}x",
         "after fix": f"{report_after.line_timing.overhead_ratio:.2f}x", "ratio": ""},
        {"what": "data time per batch", "before fix": ms(report_before.latency.mean), "after fix": ms(report_after.latency.mean), "ratio": f"{pipeline:.0f}x"},
        {"what": "model waits for data", "before fix": f"{report_before.model.input_wait_share:.0%}",
         "after fix": f"{report_after.model.input_wait_share:.0%}", "ratio": ""},
        {"what": f"model.fit, {EPOCHS} epochs", "before fix": f"{fits['before'][1]:.2f} s", "after fix": f"{fits['after'][1]:.2f} s", "ratio": f"{end_to_end:.1f}x"},
        {"what": "setup (load + preprocess once)", "before fix": f"{fits['before'][0]:.2f} s", "after fix": f"{fits['after'][0]:.2f} s", "ratio": ""},
    ]
    print_table("seqkit profile on the demo generator", rows)
    results = {
        "line-timing overhead (profiled / plain batch time)": Target(ratio, 1.5, higher_is_better=False),
        "demo pipeline speed-up (data per batch, before / after seqlint fix)": Target(pipeline, 10.0),
        "demo end-to-end model.fit speed-up": Target(end_to_end, 1.5),
        "demo input-bound before the fix (share of step waiting)": Target(report_before.model.input_wait_share, 0.5, unit=""),
    }
    record_section("bench_profile", f"## seqkit profile (demo generator)\n\n{machine_line()}\n\n{markdown_table(rows)}")
    return results
