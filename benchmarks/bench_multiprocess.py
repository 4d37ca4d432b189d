"""MultiprocessSequence vs the same dataset in-process and with Keras' `workers=2, use_multiprocessing=True`.

Two workloads, each consumed the way `model.fit` consumes a PyDataset (benchmarks.common):
- transfer-bound: 32x224x224x3 float32 batches gathered from memory (little work, ~19 MB to move);
- GIL-bound: pure-Python work per batch with a small result.

The datasets are plain numpy classes at module level, so MultiprocessSequence's workers unpickle them
without importing Keras; Keras gets the same class mixed into a PyDataset.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import Target, keras_epoch_seconds, markdown_table, memcpy_rate, print_table, record_section

WORKERS = 2
EPOCHS = 4  # timed epochs per variant; the best is reported, the least disturbed by other processes
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


def _keras_version(cls, **kwargs):
    """The same dataset as a Keras PyDataset (Keras runs it in-process or in its own pool)."""
    from keras.utils import PyDataset

    mixed = type(f"Keras{cls.__name__}", (cls, PyDataset), {})
    return mixed(**kwargs)


def _epoch_seconds(dataset, epochs: int) -> float:
    # One warm-up epoch: worker start-up (ours once, Keras' every epoch) is then in the timed epochs
    # only where it really recurs.
    return min(keras_epoch_seconds(dataset, epochs, warmup=1))


def _measure(cls, epochs: int) -> dict[str, float]:
    from seqkit.multiprocess import MultiprocessSequence

    seconds = {}
    seconds["in-process"] = _epoch_seconds(_keras_version(cls), epochs)
    seconds["keras processes"] = _epoch_seconds(
        _keras_version(cls, workers=WORKERS, use_multiprocessing=True), epochs
    )
    with MultiprocessSequence(cls(), workers=WORKERS, seed=0) as seq:
        seconds["seqkit"] = _epoch_seconds(seq, epochs)
    return seconds


def main() -> dict[str, Target]:
    started = time.perf_counter()
    transfer = _measure(TransferBound, epochs=EPOCHS)
    gil = _measure(GilBound, epochs=EPOCHS)

    batch_bytes = int(np.prod(TRANSFER_SHAPE)) * 4 + TRANSFER_SHAPE[0] * 8
    copy_rate = memcpy_rate(batch_bytes)
    ours_rate = TRANSFER_BATCHES * batch_bytes / transfer["seqkit"]

    results = {
        "transfer: vs keras processes": Target(transfer["keras processes"] / transfer["seqkit"], 10.0),
        "transfer: vs np.copy rate": Target(ours_rate / copy_rate, 0.5),
        "gil: vs in-process": Target(gil["in-process"] / gil["seqkit"], 1.7),
        "gil: vs keras processes": Target(gil["keras processes"] / gil["seqkit"], 1.5),
    }
    rows = []
    for name, seconds, batches in [("transfer-bound", transfer, TRANSFER_BATCHES), ("GIL-bound", gil, GIL_BATCHES)]:
        for variant, value in seconds.items():
            rows.append(
                {
                    "workload": name,
                    "variant": variant,
                    "epoch s": value,
                    "batches/s": batches / value,
                    "MB/s": batches * (batch_bytes if name == "transfer-bound" else 32 * 8 * 4 + 32 * 8) / value / 1e6,
                }
            )
    rows.append({"workload": "transfer-bound", "variant": "np.copy of a batch", "epoch s": TRANSFER_BATCHES * batch_bytes / copy_rate,
                 "batches/s": copy_rate / batch_bytes, "MB/s": copy_rate / 1e6})
    print_table(f"MultiprocessSequence, {WORKERS} workers (best of {EPOCHS} epochs after a warm-up)", rows)
    ratio_rows = [{"ratio": name, "measured": target} for name, target in results.items()]
    print_table("MultiprocessSequence ratios", ratio_rows)
    record_section(
        "multiprocess",
        "## MultiprocessSequence\n\n"
        f"{WORKERS} workers, best of {EPOCHS} epochs after a warm-up epoch, iterated through Keras' PyDataset adapter.\n"
        "Transfer-bound: 32x224x224x3 float32 batches gathered from memory; GIL-bound: a pure-Python loop "
        "per batch.\n\n" + markdown_table(rows) + "\n\n" + markdown_table(ratio_rows)
        + f"\n\n({time.perf_counter() - started:.0f}s)",
    )
    return results


if __name__ == "__main__":
    main()
