"""What `seqlint fix` buys: epoch time of each fixtures/fix pair before vs after the fix.

Both versions are built by the pair's harness on the same generated data (larger than in the tests:
`scale=SCALE`) and iterated through Keras' PyDatasetAdapter as `model.fit` would. The epoch figure is
the best of a few epochs, taken alternately before/after so that both see the same machine; the
construction time (where preprocess_once and np.load run) is shown next to it, with the speed-up of a
short training run (build + EPOCHS epochs), since a fix that hoists work pays it once there.

Targets (issue 5): median epoch speed-up >= 5x; no fix makes a generator slower (worst >= 1x).
Fixes that do not touch the data path (SEQ301/302/303/306) measure the same code twice: their ratios are
~1x up to timing noise, which is why the worst ratio is measured on the best of several epochs.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Target, keras_epoch_seconds, markdown_table, print_table, record_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "fix"))
import _pairs  # noqa: E402
import numpy as np  # noqa: E402

TARGET_EPOCH_S = 0.1  # each pair's data is scaled until its before-epoch takes about this long ...
MAX_BYTES = 48 * 2**20  # ... or until its batches hold this many bytes (page faults are not the point)
PROBE_SCALE = 8
MIN_ROUNDS, MAX_ROUNDS = 3, 25  # alternating before/after epochs; the best of each counts
MIN_TIMED_S = 0.25  # cheap pairs get more rounds, so their ~1x ratios are not timer noise
EPOCHS = 5  # length of the "short training run" column
DATA_PATH_FIXES = {"SEQ101", "SEQ102", "SEQ103", "SEQ104", "SEQ202"}


def _build(harness, module, data_dir, scale):
    start = time.perf_counter()
    dataset = harness.build(module, data_dir, scale=scale)
    return dataset, time.perf_counter() - start


def calibrate(pair: _pairs.Pair) -> int:
    """The data scale at which the before version's epoch takes about TARGET_EPOCH_S (within MAX_BYTES)."""
    harness = pair.harness()
    with tempfile.TemporaryDirectory(prefix=f"bench_fix_{pair.name}_") as tmp:
        dataset, _ = _build(harness, pair.load("before"), Path(tmp), PROBE_SCALE)
        seconds = min(keras_epoch_seconds(dataset, 2))
        nbytes = sum(_nbytes(dataset[i]) for i in range(len(dataset)))
    by_time = PROBE_SCALE * TARGET_EPOCH_S / max(seconds, 1e-6)
    by_bytes = PROBE_SCALE * MAX_BYTES / max(nbytes, 1)
    return int(max(PROBE_SCALE, min(by_time, by_bytes)))


def _nbytes(struct) -> int:
    if isinstance(struct, dict):
        return sum(_nbytes(v) for v in struct.values())
    if isinstance(struct, (tuple, list)):
        return sum(_nbytes(v) for v in struct)
    return np.asarray(struct).nbytes


def _samples(dataset) -> int:
    return _rows(dataset[0][0]) * (len(dataset) - 1) + _rows(dataset[len(dataset) - 1][0])


def _rows(x) -> int:
    while isinstance(x, (dict, tuple, list)):
        x = next(iter(x.values())) if isinstance(x, dict) else x[0]
    return len(x)


def measure(pair: _pairs.Pair, variant: str, scale: int) -> dict:
    harness = pair.harness()
    with tempfile.TemporaryDirectory(prefix=f"bench_fix_{pair.name}_") as tmp:
        before_dir, after_dir = Path(tmp, "before"), Path(tmp, "after")
        before_dir.mkdir()
        after_dir.mkdir()
        before, before_build = _build(harness, pair.load("before"), before_dir, scale)
        after, after_build = _build(harness, pair.load(variant), after_dir, scale)
        before_epochs, after_epochs = [], []
        while len(before_epochs) < MAX_ROUNDS and (
            len(before_epochs) < MIN_ROUNDS or min(sum(before_epochs), sum(after_epochs)) < MIN_TIMED_S
        ):
            before_epochs += keras_epoch_seconds(before)
            after_epochs += keras_epoch_seconds(after)
    before_epoch, after_epoch = min(before_epochs), min(after_epochs)
    # Per batch: an unsafe SEQ306 fix adds a batch to the epoch on purpose.
    speedup = (before_epoch / len(before)) / (after_epoch / len(after))
    before_run = before_build + EPOCHS * before_epoch
    after_run = after_build + EPOCHS * after_epoch
    return {
        "pair": pair.name + ("" if variant == "after" else " (unsafe)"),
        "fixes": ",".join(code.removeprefix("SEQ") for code in harness.FIXES),
        "_codes": harness.FIXES,
        "samples": _samples(before),
        "batches": len(before),
        "MB": sum(_nbytes(before[i]) for i in range(len(before))) / 2**20,
        "epoch before ms": 1000 * before_epoch,
        "epoch after ms": 1000 * after_epoch,
        "build after ms": 1000 * after_build,
        "epoch speed-up": speedup,
        f"build+{EPOCHS} ep. speed-up": before_run / after_run,
    }


def main(pairs: list[str] | None = None, scale: int | None = None) -> dict[str, Target]:
    rows = []
    for pair in _pairs.discover():
        if pairs and pair.name not in pairs:
            continue
        # The safe version when there is one: that is what `seqlint fix` writes by default.
        variant = "after" if "after" in pair.variants else "after_unsafe"
        rows.append(measure(pair, variant, scale or calibrate(pair)))
    rows.sort(key=lambda row: -row["epoch speed-up"])
    data_path = [row["epoch speed-up"] for row in rows if DATA_PATH_FIXES & set(row.pop("_codes"))]
    epoch = [row["epoch speed-up"] for row in rows]
    print_table("seqlint fix: epoch time before vs after, through Keras' PyDatasetAdapter", rows)

    run = [row[f"build+{EPOCHS} ep. speed-up"] for row in rows]
    results = {
        "fix: median epoch speed-up (all pairs)": Target(statistics.median(epoch), 5.0),
        "fix: median epoch speed-up (data-path fixes)": Target(statistics.median(data_path), 5.0),
        "fix: worst epoch speed-up": Target(min(epoch), 1.0),
        f"fix: median build+{EPOCHS} epochs speed-up": Target(statistics.median(run), 1.0),
    }
    print_table("seqlint fix: summary", [{"ratio": name, "value": target} for name, target in results.items()])
    record_section(
        "bench_fix",
        "## seqlint fix: before vs after (bench_fix)\n\n"
        + markdown_table(rows)
        + "\n\n"
        + markdown_table([{"ratio": name, "value": target} for name, target in results.items()]),
    )
    return results


if __name__ == "__main__":
    main(sys.argv[1:] or None)
