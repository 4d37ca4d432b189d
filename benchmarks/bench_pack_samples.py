"""pack_samples against the file-per-sample generator of the most-copied Keras data-generator tutorial.

The naive class is written the way the tutorial writes it: ids shuffled by `on_epoch_end`, an
`np.empty` batch filled with one `np.load('data/' + ID + '.npy')` per id, labels from a dict, one-hot
at the end. The packed class is the same class after seqlint's SEQ201 fix: the per-sample read moved
into `_load_image`, `self._images = seqkit.pack_samples(self._load_image, self.list_IDs)` at the end of
`__init__`, and `X[:len(list_IDs_temp)] = self._images.take(list_IDs_temp)` in place of the loop's
read (the label loop stays: the targets are about the pack). For information, a third class is what
the SEQ201 fix writes in full, with the labels also turned into one array indexed by the pack's rows.
10,000 small files, freshly written, so the naive generator reads them from the page cache: its best
case.

Two sample sizes: 28x28x1 float32 (3 KB, MNIST-sized: the targets) and 32x32x3 float32 (12 KB, for
comparison). A file read costs about the same for both (opening and parsing the header dominate), while
a packed batch costs a copy of its bytes, and the tutorial's own float64 conversion, so the steady
ratio falls as samples grow.

Epochs are timed as model.fit consumes them (common.keras_epoch_seconds). The machine is shared, and
the speed of its cores drifts by half with the load of its other tenants (CPU time moves with wall
time: nothing waits, the cores run slower), so every ratio is taken between neighbouring measurements:
each repeat times a naive epoch, a pack with 2 processes and its first epoch, three steady epochs of
that pack (and three of the whole fix, reusing it), a second naive epoch, then a pack in this process
and one with the default `processes=None` (what the fix writes), each with its first epoch. Steady
ratio: mean of the two naive epochs / mean of the three steady ones; first-epoch ratios: against the
naive epoch next to them. The figures are the medians over the repeats.

Targets (issue 12):
- steady epoch, naive / packed: >= 20x;
- first epoch with the pack included (2 worker processes) / naive epoch: <= 1.5x, so that the fix
  pays off from the second epoch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import seqkit
from benchmarks.common import Target, console, keras_epoch_seconds, machine_line, markdown_table, print_table, record_section

N = 10_000
SIZES = [((28, 28), 1), ((32, 32), 3)]  # (dim, channels); the first is the one the targets use
CLASSES = 10
BATCH = 32
REPEATS = 5


class DataGenerator(keras.utils.PyDataset):
    """The tutorial's generator: one .npy file read per sample, per batch, every epoch."""

    def __init__(self, list_IDs, labels, dim, n_channels, batch_size=BATCH, n_classes=CLASSES, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.batch_size = batch_size
        self.labels = labels
        self.list_IDs = list_IDs
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.shuffle = shuffle
        self.on_epoch_end()

    def __len__(self):
        return int(np.floor(len(self.list_IDs) / self.batch_size))

    def __getitem__(self, index):
        indexes = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        list_IDs_temp = [self.list_IDs[k] for k in indexes]
        return self._data_generation(list_IDs_temp)

    def on_epoch_end(self):
        self.indexes = np.arange(len(self.list_IDs))
        if self.shuffle:
            np.random.shuffle(self.indexes)

    def _data_generation(self, list_IDs_temp):
        X = np.empty((self.batch_size, *self.dim, self.n_channels))
        y = np.empty((self.batch_size), dtype=int)
        for i, ID in enumerate(list_IDs_temp):
            X[i,] = np.load("data/" + ID + ".npy")
            y[i] = self.labels[ID]
        return X, keras.utils.to_categorical(y, num_classes=self.n_classes)


class PackedGenerator(DataGenerator):
    """The same generator after the SEQ201 fix."""

    def __init__(self, list_IDs, labels, dim, n_channels, *, processes=None, cache_dir=None, **kwargs):
        super().__init__(list_IDs, labels, dim, n_channels, **kwargs)
        self._images = seqkit.pack_samples(self._load_image, self.list_IDs, processes=processes, cache_dir=cache_dir, progress=False)

    def _load_image(self, ID):
        return np.load("data/" + ID + ".npy")

    def _data_generation(self, list_IDs_temp):
        X = np.empty((self.batch_size, *self.dim, self.n_channels))
        y = np.empty((self.batch_size), dtype=int)
        X[: len(list_IDs_temp)] = self._images.take(list_IDs_temp)
        for i, ID in enumerate(list_IDs_temp):
            y[i] = self.labels[ID]
        return X, keras.utils.to_categorical(y, num_classes=self.n_classes)


class FullyFixedGenerator(PackedGenerator):
    """What seqlint's SEQ201 fix writes in full: the pack, and also the labels looked up per sample
    turned into one array (one-hot once) indexed by the pack's rows."""

    def __init__(self, list_IDs, labels, dim, n_channels, **kwargs):
        super().__init__(list_IDs, labels, dim, n_channels, **kwargs)
        by_key = np.asarray([self.labels[k] for k in self._images.keys], dtype=int)
        self._labels_by_key = keras.utils.to_categorical(by_key, num_classes=self.n_classes)

    def _data_generation(self, list_IDs_temp):
        X = np.empty((self.batch_size, *self.dim, self.n_channels))
        X[: len(list_IDs_temp)] = self._images.take(list_IDs_temp)
        return X, self._labels_by_key[self._images.rows(list_IDs_temp)]


def write_dataset(root: Path, dim: tuple, channels: int) -> tuple[list[str], dict]:
    rng = np.random.default_rng(0)
    (root / "data").mkdir(parents=True)
    ids = [f"id-{i}" for i in range(N)]
    for ID in ids:
        np.save(root / "data" / f"{ID}.npy", rng.random((*dim, channels), dtype=np.float32))
    labels = {ID: int(rng.integers(CLASSES)) for ID in ids}
    return ids, labels


@contextlib.contextmanager
def working_directory(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def first_epoch(ids, labels, dim, channels, cache_dir: Path, processes: int | None) -> tuple[float, float, PackedGenerator]:
    """(seconds to construct, i.e. pack, seconds of the first epoch after it, the generator)."""
    start = time.perf_counter()
    generator = PackedGenerator(ids, labels, dim, channels, processes=processes, cache_dir=cache_dir)
    built = time.perf_counter() - start
    assert not generator._images.reused
    [epoch] = keras_epoch_seconds(generator, 1)
    return built, epoch, generator


def measure(root: Path, dim: tuple, channels: int) -> dict:
    """Every figure of one sample size (see the module docstring for the order)."""
    with working_directory(root):
        ids, labels = write_dataset(root, dim, channels)
        np.random.seed(0)
        naive_generator = DataGenerator(ids, labels, dim, channels)
        keras_epoch_seconds(naive_generator, 1)  # warm-up: imports, caches
        figures = {"naive": [], "steady": [], "steady ratio": [], "full fix ratio": [], 2: [], 0: [], None: [], "default ran": set()}
        for repeat in range(REPEATS):
            [before] = keras_epoch_seconds(naive_generator, 1)
            built, first, generator = first_epoch(ids, labels, dim, channels, root / f"cache-2-{repeat}", 2)
            figures[2].append((built, first, (built + first) / before))
            steady = keras_epoch_seconds(generator, 3)
            fully_fixed = FullyFixedGenerator(ids, labels, dim, channels, processes=2, cache_dir=root / f"cache-2-{repeat}")
            full = keras_epoch_seconds(fully_fixed, 3)
            [after] = keras_epoch_seconds(naive_generator, 1)
            figures["naive"] += [before, after]
            figures["steady"] += steady
            figures["steady ratio"].append(((before + after) / 2) / (sum(steady) / len(steady)))
            figures["full fix ratio"].append(((before + after) / 2) / (sum(full) / len(full)))
            built, first, _ = first_epoch(ids, labels, dim, channels, root / f"cache-0-{repeat}", 0)
            figures[0].append((built, first, (built + first) / after))
            built, first, default = first_epoch(ids, labels, dim, channels, root / f"cache-default-{repeat}", None)
            figures[None].append((built, first, (built + first) / after))
            figures["default ran"].add(_where(default._images.build))
        start = time.perf_counter()
        reused = PackedGenerator(ids, labels, dim, channels, processes=2, cache_dir=root / "cache-0-0")
        figures["reuse"] = time.perf_counter() - start
        assert reused._images.reused
        check_same_batches(ids, labels, dim, channels, generator)
        check_same_batches(ids, labels, dim, channels, fully_fixed)
    return figures


def main() -> dict[str, Target]:
    results = {}
    for dim, channels in SIZES:
        root = Path(tempfile.mkdtemp(prefix="seqkit-bench-pack-samples-"))
        try:
            console.print(f"{N} files of {dim + (channels,)} float32 ...")
            results[(dim, channels)] = measure(root, dim, channels)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    rows, targets = [], {}
    for number, ((dim, channels), figures) in enumerate(results.items()):
        size = "x".join(map(str, dim + (channels,)))
        naive = statistics.median(figures["naive"])
        steady = statistics.median(figures["steady"])
        steady_ratio = statistics.median(figures["steady ratio"])
        rows.append({"samples": size, "what": "naive epoch (np.load per sample)", "seconds": naive, "vs naive epoch": "1x", "range": _range(figures["naive"], "s")})
        rows.append(
            {
                "samples": size,
                "what": "packed steady epoch",
                "seconds": steady,
                "vs naive epoch": Target(steady_ratio, 20.0) if number == 0 else _x(steady_ratio),
                "range": _range(figures["steady ratio"], "x"),
            }
        )
        rows.append(
            {
                "samples": size,
                "what": "steady epoch, labels also built once (seqlint's whole fix)",
                "seconds": "",
                "vs naive epoch": _x(statistics.median(figures["full fix ratio"])),
                "range": _range(figures["full fix ratio"], "x"),
            }
        )
        default = f"default: {', '.join(sorted(figures['default ran']))}"
        for processes, label in ((2, "2 processes"), (0, "in this process"), (None, default)):
            measured = figures[processes]
            build = statistics.median(b for b, _, _ in measured)
            ratios = [ratio for _, _, ratio in measured]
            ratio = statistics.median(ratios)
            rows.append({"samples": size, "what": f"pack ({label})", "seconds": build, "vs naive epoch": _x(build / naive), "range": _range((b for b, _, _ in measured), "s")})
            rows.append(
                {
                    "samples": size,
                    "what": f"first epoch incl. pack ({label})",
                    "seconds": statistics.median(b + e for b, e, _ in measured),
                    "vs naive epoch": Target(ratio, 1.5, higher_is_better=False) if number == 0 and processes == 2 else _x(ratio),
                    "range": _range(ratios, "x"),
                }
            )
            if number == 0 and processes == 2:
                targets["first epoch incl. pack (2 processes) / naive epoch"] = Target(ratio, 1.5, higher_is_better=False)
        rows.append({"samples": size, "what": "construction reusing the cache", "seconds": figures["reuse"], "vs naive epoch": _x(figures["reuse"] / naive), "range": ""})
        if number == 0:
            targets["steady epoch: naive / packed"] = Target(steady_ratio, 20.0)
    print_table(f"pack_samples vs file-per-sample, {N} files, batch {BATCH} (medians of {REPEATS} repeats; ratios between neighbours)", rows)
    record_section(
        "pack_samples",
        f"## pack_samples vs the tutorial's file-per-sample generator\n\n{machine_line()}; {N} files per size, batch "
        f"{BATCH}, epochs timed as model.fit consumes them; medians of {REPEATS} repeats, each ratio taken between "
        "neighbouring measurements (see benchmarks/bench_pack_samples.py).\n\n" + markdown_table(rows),
    )
    return targets


def check_same_batches(ids, labels, dim, channels, generator: DataGenerator) -> None:
    """The packed generator must yield the naive generator's batches (same shuffle): a fast wrong
    answer is not a result."""
    np.random.seed(1)
    naive = DataGenerator(ids, labels, dim, channels)
    np.random.seed(1)
    generator.on_epoch_end()
    for index in (0, 1, len(naive) // 2, len(naive) - 1):
        x0, y0 = naive[index]
        x1, y1 = generator[index]
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)


def _where(build) -> str:
    return "in this process" if build.where == "this process" else f"{build.workers} {build.where}"


def _x(ratio: float) -> str:
    return f"{ratio:.3g}x"


def _range(values, unit: str) -> str:
    """The spread over the repeats, e.g. "16.9x-21.1x"."""
    values = list(values)
    return f"{min(values):.3g}{unit}-{max(values):.3g}{unit}" if values else ""


if __name__ == "__main__":
    main()
