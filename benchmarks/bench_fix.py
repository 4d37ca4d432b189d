"""What `seqlint fix` buys: epoch time of each fixtures/fix pair before vs after the fix.

Both versions are built by the pair's harness on the same generated data, scaled up from the tests'
tiny size until the before version's epoch takes ~TARGET_EPOCH_S or its batches hold MAX_BYTES, and
iterated through Keras' PyDatasetAdapter as `model.fit` would. The epoch figure is the best of several
epochs taken alternately before/after, so that both see the same (shared, noisy) machine; it is per batch,
because an unsafe SEQ306 fix adds the last partial batch on purpose. One-off construction costs
(preprocess_once, np.load) are not in it: the harness generates the data inside build(), so timing build
would mostly time the data generator; bench_runtime measures build + epochs of the seqkit classes.

Targets (issue 5), over "each before/after pair that runs": median epoch speed-up >= 5x; no fix makes a
generator slower (worst >= 1x, less TIMER_NOISE: two builds of identical code differ by that much).
A pair runs when its before version does: a harness with a `train` function (the pair's own training
code) is run on the before version first, and a pair whose before fails there (SEQ303's legacy
`fit_generator` calls do on Keras 3) is listed but not counted, since there is no before epoch to
compare with. The median is also given over the pairs whose fixes touch
the data path (SEQ101-104, SEQ202): SEQ301/302/306 fixes are about correctness and run the same data
code, so their ratios are 1x up to timer noise.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Target, console, keras_epoch_seconds, markdown_table, print_table, record_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "fix"))
import _pairs  # noqa: E402
import numpy as np  # noqa: E402

TARGET_EPOCH_S = 0.1  # each pair's data is scaled until its before-epoch takes about this long ...
MAX_BYTES = 48 * 2**20  # ... or until its batches hold this many bytes (page faults are not the point)
PROBE_SCALE = 8
MIN_ROUNDS, MAX_ROUNDS = 3, 40  # alternating before/after epochs per build; the best of each counts
MAX_BUILDS = 8
MIN_TIMED_S = 0.5  # cheap pairs get more rounds and builds, so their ~1x ratios are not timer noise
DATA_PATH_FIXES = {"SEQ101", "SEQ102", "SEQ103", "SEQ104", "SEQ202"}
# "No fix makes a generator slower" is judged beyond timer noise: pairs whose two versions run the same
# data code (SEQ302/306 fixes) measure 0.98x-1.03x here across runs, even with several builds each.
TIMER_NOISE = 0.02


def _build(harness, module, data_dir, scale):
    return harness.build(module, data_dir, scale=scale)


def calibrate(pair: _pairs.Pair) -> int:
    """The data scale at which the before version's epoch takes about TARGET_EPOCH_S (within MAX_BYTES).

    Grown step by step (at most 4x a step) because some befores are quadratic: a SEQ104 whole-dataset
    copy per batch costs (samples / batch) x dataset bytes per epoch.
    """
    harness = pair.harness()
    scale = PROBE_SCALE
    while True:
        with tempfile.TemporaryDirectory(prefix=f"bench_fix_{pair.name}_") as tmp:
            dataset = _build(harness, pair.load("before"), Path(tmp), scale)
            seconds = min(keras_epoch_seconds(dataset, 2))
            nbytes = sum(_nbytes(dataset[i]) for i in range(len(dataset)))
        factor = min(4.0, TARGET_EPOCH_S / max(seconds, 1e-6), MAX_BYTES / max(nbytes, 1))
        if factor < 1.25:
            return scale
        scale = int(scale * factor)


def _nbytes(struct) -> int:
    if isinstance(struct, dict):
        return sum(_nbytes(v) for v in struct.values())
    if isinstance(struct, (tuple, list)):
        return sum(_nbytes(v) for v in struct)
    return np.asarray(struct).nbytes


def measure(pair: _pairs.Pair, variant: str, scale: int) -> dict:
    """Best epoch of each version, over rounds of alternating epochs on fresh builds.

    A cheap pair is rebuilt (new data, new arrays) until MIN_TIMED_S is timed: where its arrays land in
    memory moves one build's epochs by a few percent, so with a single build two versions of equal cost
    come out 0.96x-1.04x. The best over several builds is the cost of the code, not of the placement.
    """
    harness = pair.harness()
    before_epochs, after_epochs, builds = [], [], 0
    while builds < MAX_BUILDS and (not builds or min(sum(before_epochs), sum(after_epochs)) < MIN_TIMED_S):
        builds += 1
        with tempfile.TemporaryDirectory(prefix=f"bench_fix_{pair.name}_") as tmp:
            before_dir, after_dir = Path(tmp, "before"), Path(tmp, "after")
            before_dir.mkdir()
            after_dir.mkdir()
            before = _build(harness, pair.load("before"), before_dir, scale)
            after = _build(harness, pair.load(variant), after_dir, scale)
            rounds = 0
            while rounds < MAX_ROUNDS and (
                rounds < MIN_ROUNDS or min(sum(before_epochs), sum(after_epochs)) < MIN_TIMED_S
            ):
                before_epochs += keras_epoch_seconds(before)
                after_epochs += keras_epoch_seconds(after)
                rounds += 1
            if builds == 1:  # the same data every build
                nbytes = sum(_nbytes(before[i]) for i in range(len(before)))
    before_epoch, after_epoch = min(before_epochs), min(after_epochs)
    # Per batch: an unsafe SEQ306 fix adds a batch to the epoch on purpose.
    speedup = (before_epoch / len(before)) / (after_epoch / len(after))
    return {
        "pair": pair.name + ("" if variant == "after" else " (unsafe)"),
        "fixes": ",".join(code.removeprefix("SEQ") for code in harness.FIXES),
        "_codes": harness.FIXES,
        "batches": len(before),
        "MB": nbytes / 2**20,
        "before ms": 1000 * before_epoch,
        "after ms": 1000 * after_epoch,
        "epoch x": speedup,
        "epochs timed": len(before_epochs),
        "builds": builds,
    }


def before_fails(pair: _pairs.Pair) -> str | None:
    """Why the pair's own training code cannot run its before version, or None when it runs."""
    harness = pair.harness()
    if not hasattr(harness, "train"):
        return None
    with tempfile.TemporaryDirectory(prefix=f"bench_fix_{pair.name}_") as tmp:
        try:
            harness.train(pair.load("before"), Path(tmp))
        except Exception as exc:  # the point: legacy code that no longer runs
            return f"{type(exc).__name__}: {exc}"
    return None


def main(pairs: list[str] | None = None, scale: int | None = None) -> dict[str, Target]:
    rows, not_running = [], []
    for pair in _pairs.discover():
        if pairs and pair.name not in pairs:
            continue
        if (reason := before_fails(pair)) is not None:
            not_running.append({"pair": pair.name, "before fails in its own training code": reason[:90]})
            continue
        # The safe version when there is one: that is what `seqlint fix` writes by default.
        variant = "after" if "after" in pair.variants else "after_unsafe"
        try:
            rows.append(measure(pair, variant, scale or calibrate(pair)))
        except Exception as exc:  # "each pair that runs": a broken pair is reported, not fatal
            console.print(f"[red]{pair.name}: {type(exc).__name__}: {exc}[/]")
    if not rows:
        raise RuntimeError("no fix pair could be measured")
    rows.sort(key=lambda row: -row["epoch x"])
    touches_data = [bool(DATA_PATH_FIXES & set(row.pop("_codes"))) for row in rows]
    epoch = [row["epoch x"] for row in rows]
    data_path = [x for x, touches in zip(epoch, touches_data) if touches]
    same_code = [x for x, touches in zip(epoch, touches_data) if not touches]
    print_table("seqlint fix: epoch time before vs after, through Keras' PyDatasetAdapter", rows)
    if not_running:
        print_table("seqlint fix: pairs whose before does not run (not counted)", not_running)

    results = {
        "fix: median epoch speed-up (all pairs)": Target(statistics.median(epoch), 5.0),
        "fix: median epoch speed-up (data-path fixes)": Target(statistics.median(data_path), 5.0),
        # 1x less timer noise: a ratio of 0.99x between identical code is not a slower generator.
        "fix: worst epoch speed-up (all pairs)": Target(min(epoch), 1.0 - TIMER_NOISE),
        "fix: worst epoch speed-up (data-path fixes)": Target(min(data_path), 1.0 - TIMER_NOISE),
    }
    print_table("seqlint fix: summary", [{"ratio": name, "value": target} for name, target in results.items()])
    if same_code:
        console.print(
            f"timer noise: the {len(same_code)} pairs whose fixes leave the data code alone measured "
            f"{min(same_code):.2f}x .. {max(same_code):.2f}x"
        )
    record_section(
        "bench_fix",
        "## seqlint fix: before vs after (bench_fix)\n\n"
        + markdown_table(rows)
        + "\n\n"
        + (markdown_table(not_running) + "\n\n" if not_running else "")
        + markdown_table([{"ratio": name, "value": target} for name, target in results.items()]),
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:] or None)
