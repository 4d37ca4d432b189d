"""MultiprocessSequence vs the same dataset in-process and with Keras' `workers=2, use_multiprocessing=True`.

Two workloads, each consumed the way `model.fit` consumes a PyDataset (benchmarks.common):
- transfer-bound: 32x224x224x3 float32 batches sliced from arrays in memory: no work at all (in-process
  a batch is a view), so the figure is the cost of moving ~19 MB out of a worker;
- GIL-bound: pure-Python work per batch with a small result.

And the start of a pool over a dataset holding one large array (issue 13: 614 MB took 9.1 s to the first
batch, 1.0-1.2 GB per worker): time to the first batch and each worker's memory, with the array shared
(seqkit.sharing, now) and pickled into every worker (before), at 6 MB and 600 MB.

The datasets are plain numpy classes at module level, so MultiprocessSequence's workers unpickle them
without importing Keras; Keras gets the same class mixed into a PyDataset.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np

from benchmarks.common import Target, best_of, keras_epoch_seconds, markdown_table, memcpy_rate, print_table, record_section

WORKERS = 2
EPOCHS = 3  # timed epochs per variant; the best is reported, the least disturbed by other processes
TRANSFER_SHAPE = (32, 224, 224, 3)
TRANSFER_BATCHES = 24
GIL_BATCHES = 24
GIL_LOOPS = 400_000  # Python iterations per batch (~20 ms on this machine)


class TransferBound:
    """Hands out batches of images already in memory: no work at all, the whole cost is moving 19 MB."""

    def __init__(self, batches=TRANSFER_BATCHES, pool_batches=3, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches
        n = TRANSFER_SHAPE[0]
        rng = np.random.default_rng(0)
        self.images = rng.random((pool_batches * n, *TRANSFER_SHAPE[1:]), dtype=np.float32)
        self.labels = rng.integers(0, 10, pool_batches * n)

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        start = (index * TRANSFER_SHAPE[0]) % len(self.images)
        rows = slice(start, start + TRANSFER_SHAPE[0])
        return self.images[rows], self.labels[rows]


class CopiedTransfer(TransferBound):
    """The yardstick: the same batches with one np.copy each, in-process."""

    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return np.copy(x), np.copy(y)


class GilBound:
    """Per-sample Python work (a tokenizer-like loop) that holds the GIL; the result is tiny."""

    def __init__(self, batches=GIL_BATCHES, loops=GIL_LOOPS, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches
        self.loops = loops

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        acc = index
        for i in range(self.loops):
            acc = (acc * 31 + i) % 1_000_003
        return np.full((32, 8), acc % 97, np.float32), np.arange(32) % 2


LARGE_MB = 600
SMALL_MB = 6
LARGE_ROW = 1024  # float32 values per row: 4 KiB


class HoldsArray:
    """A dataset holding one big in-memory array (decoded images, a feature matrix) and slicing it."""

    def __init__(self, megabytes):
        self.rows = np.ones((megabytes * 2**20 // (4 * LARGE_ROW), LARGE_ROW), dtype=np.float32)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return self.rows[index * 32 : (index + 1) * 32].copy()


def _worker_memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process, split as /proc reports it: private (anon) and shared-memory pages."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssShmem", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    return fields


def _first_batch(megabytes: int, shared: bool) -> dict:
    """Seconds from a new MultiprocessSequence to its first batch, and its workers' largest memory."""
    from seqkit import sharing
    from seqkit.multiprocess import MultiprocessSequence

    dataset = HoldsArray(megabytes)
    saved = sharing.SHARE_MIN_BYTES
    sharing.SHARE_MIN_BYTES = saved if shared else float("inf")  # inf: pickled, as before issue 13
    try:
        start = time.perf_counter()
        seq = MultiprocessSequence(dataset, workers=WORKERS, seed=0)
        seq[0]
        first = time.perf_counter() - start
        for index in range(1, len(seq)):  # every worker has loaded the dataset and computed batches
            seq[index]
        memory = [_worker_memory_mb(pid) for pid in seq.worker_pids]
        seq.close()
    finally:
        sharing.SHARE_MIN_BYTES = saved
    worst = max(memory, key=lambda m: m["VmRSS"])
    return {"first batch s": first, "worker RSS MB": worst["VmRSS"], "private MB": worst["RssAnon"], "shm MB": worst["RssShmem"]}


def _write_to_shared_memory(array: np.ndarray) -> None:
    from seqkit import sharing

    shared = sharing.SharedArrays(f"seqkit_{os.getpid()}_bench")
    try:
        shared.create(array)
    finally:
        shared.unlink()


def _measure_sharing() -> tuple[list[dict], dict[str, Target]]:
    rows = []
    figures = {}
    _first_batch(SMALL_MB, shared=True)  # warm-up: fork server and imports
    for megabytes in (SMALL_MB, LARGE_MB):
        for shared, label in ((False, "pickled (before)"), (True, "shared (now)")):
            # Best of two starts: the one least disturbed by the rest of the machine.
            figures[megabytes, shared] = min((_first_batch(megabytes, shared) for _ in range(2)), key=lambda f: f["first batch s"])
            rows.append({"array MB": megabytes, "dataset sent": label, **figures[megabytes, shared]})
    # The one cost that must still grow with the array: writing it once into shared memory.
    big = HoldsArray(LARGE_MB).rows
    write_seconds = best_of(lambda: _write_to_shared_memory(big), 2)
    del big
    rows.append({"array MB": LARGE_MB, "dataset sent": "one write of the array to /dev/shm (yardstick)",
                 "first batch s": write_seconds, "worker RSS MB": "", "private MB": "", "shm MB": ""})
    large, small = figures[LARGE_MB, True], figures[SMALL_MB, True]
    results = {
        "large array: first batch, pickled / shared": Target(figures[LARGE_MB, False]["first batch s"] / large["first batch s"], 5.0),
        # All that the array's size adds to the start is that one write, in the parent: no worker pays for it.
        "large array: first batch 600 MB - 6 MB, in /dev/shm writes": Target(
            (large["first batch s"] - small["first batch s"]) / write_seconds, 1.5, higher_is_better=False
        ),
        "large array: worker RSS, 600 MB / 6 MB": Target(large["worker RSS MB"] / small["worker RSS MB"], 1.25, higher_is_better=False),
    }
    return rows, results


def _keras_version(cls, **kwargs):
    """The same dataset as a Keras PyDataset (Keras runs it in-process or in its own pool)."""
    from keras.utils import PyDataset

    mixed = type(f"Keras{cls.__name__}", (cls, PyDataset), {})
    return mixed(**kwargs)


def _measure(cls, epochs: int, **extra) -> dict[str, float]:
    """Best epoch time of each variant. The variants take turns, so that load from other processes
    on the machine falls on all of them alike; one untimed warm-up epoch each first (worker start-up:
    ours once, Keras' pool again every epoch, which is its real cost)."""
    from seqkit.multiprocess import MultiprocessSequence

    with MultiprocessSequence(cls(), workers=WORKERS, seed=0) as ours:
        variants = {
            "in-process": _keras_version(cls),
            "keras processes": _keras_version(cls, workers=WORKERS, use_multiprocessing=True),
            "seqkit": ours,
            **extra,
        }
        for dataset in variants.values():
            keras_epoch_seconds(dataset, 1)
            _settle(ours)
        best = {name: float("inf") for name in variants}
        for _ in range(epochs):
            for name, dataset in variants.items():
                # Two epochs back to back, the second timed: a steady state, in which what our
                # workers compute ahead for an epoch was done during the timed one before it, not
                # for free while another variant ran.
                best[name] = min(best[name], keras_epoch_seconds(dataset, 1, warmup=1)[0])
                _settle(ours)
    return best


def _settle(ours, timeout: float = 10.0) -> None:
    """Wait until no process but our workers is left: Keras' pool keeps computing batches queued
    before its epoch ended, which would otherwise run during (and slow down) the next variant."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        stray = [p for p in multiprocessing.active_children() if p.pid not in ours.worker_pids]
        if not stray:
            return
        time.sleep(0.02)


def main() -> dict[str, Target]:
    started = time.perf_counter()
    transfer = _measure(TransferBound, epochs=EPOCHS, **{"in-process, np.copy per batch": _keras_version(CopiedTransfer)})
    gil = _measure(GilBound, epochs=EPOCHS)
    sharing_rows, sharing_results = _measure_sharing()

    batch_bytes = int(np.prod(TRANSFER_SHAPE)) * 4 + TRANSFER_SHAPE[0] * 8
    # The yardstick is timed like the rest (same iteration, same turns under the same load);
    # memcpy_rate, a warm-cache micro-benchmark, is shown beside it.
    copy_seconds = transfer["in-process, np.copy per batch"]
    memcpy = memcpy_rate(batch_bytes)

    results = {
        "transfer: vs keras processes": Target(transfer["keras processes"] / transfer["seqkit"], 10.0),
        "transfer: vs np.copy rate": Target(copy_seconds / transfer["seqkit"], 0.5),
        "gil: vs in-process": Target(gil["in-process"] / gil["seqkit"], 1.7),
        "gil: vs keras processes": Target(gil["keras processes"] / gil["seqkit"], 1.5),
        **sharing_results,
    }
    rows = []
    for variant, value in transfer.items():
        rows.append({"workload": "transfer-bound", "variant": variant, "epoch s": value,
                     "batches/s": TRANSFER_BATCHES / value, "GB/s": TRANSFER_BATCHES * batch_bytes / value / 1e9})
    rows.append({"workload": "transfer-bound", "variant": "memcpy_rate (micro-benchmark)", "epoch s": TRANSFER_BATCHES * batch_bytes / memcpy,
                 "batches/s": memcpy / batch_bytes, "GB/s": memcpy / 1e9})
    for variant, value in gil.items():
        rows.append({"workload": "GIL-bound", "variant": variant, "epoch s": value, "batches/s": GIL_BATCHES / value, "GB/s": ""})
    print_table(f"MultiprocessSequence, {WORKERS} workers (best of {EPOCHS} epochs after a warm-up)", rows)
    print_table(f"MultiprocessSequence start over a dataset holding one large array, {WORKERS} workers", sharing_rows)
    ratio_rows = [{"ratio": name, "measured": target} for name, target in results.items()]
    print_table("MultiprocessSequence ratios", ratio_rows)
    record_section(
        "multiprocess",
        "## MultiprocessSequence\n\n"
        f"{WORKERS} workers, best of {EPOCHS} epochs after a warm-up epoch, iterated through Keras' PyDataset adapter.\n"
        "Transfer-bound: 32x224x224x3 float32 batches sliced from memory (no work); GIL-bound: a pure-Python "
        "loop per batch. Figures depend on the load of the machine: run it alone.\n\n" + markdown_table(rows) + "\n\n"
        + "Start over a dataset holding one large float32 array: seconds from a new MultiprocessSequence to its first batch, "
        "and the largest worker's resident memory after an epoch (private = anonymous pages, shm = mapped shared memory), "
        "with the array pickled into every worker (before issue 13) and shared.\n\n" + markdown_table(sharing_rows) + "\n\n"
        + markdown_table(ratio_rows)
        + f"\n\n({time.perf_counter() - started:.0f}s)",
    )
    return results


if __name__ == "__main__":
    main()
