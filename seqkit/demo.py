"""`python -m seqkit.demo` (`make demo`): the naive generator against the seqkit classes, in real model.fit.

Generates example images under ./demo_data (deterministic; reused by later runs), trains the same small
model for two epochs from each data source and prints the time of the second (steady) epoch, the
one-off setup each needs (preprocessing, packing), and the speed-up over the naive generator.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from seqkit.demo_data import CLASSES, SHAPE, NaiveBatches, generate, normalise, one_hot  # noqa: E402

console = Console()


class NaiveGenerator(NaiveBatches, keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        keras.utils.PyDataset.__init__(self, **kwargs)
        NaiveBatches.__init__(self, x, y, batch_size)


class EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    hidden = keras.layers.Flatten()(keras.layers.AveragePooling2D(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(dataset) -> tuple[float, float]:
    """(steady epoch seconds, accuracy) of two real epochs of model.fit."""
    times = EpochTimes()
    history = small_model().fit(dataset, epochs=2, verbose=0, callbacks=[times], shuffle=False)
    return times.times[-1], history.history["accuracy"][-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqkit.demo", description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data", default="demo_data", help="folder for the generated data (default ./demo_data)")
    args = parser.parse_args(argv)

    from seqkit import MemmapSequence, PreprocessedSequence, pack, preprocess_once

    folder = Path(args.data)
    x_path, y_path = generate(folder, args.samples)
    x, y = np.load(x_path), np.load(y_path)
    console.print(f"{args.samples} images {SHAPE} uint8 in {folder}/, batch size {args.batch_size}, 2 epochs each")
    rows = []

    def run(name: str, make, note: str = ""):
        start = time.perf_counter()
        dataset = make()
        setup = time.perf_counter() - start
        console.print(f"  training from {name} ...")
        epoch, accuracy = fit(dataset)
        rows.append((name, setup, epoch, accuracy, note))
        return dataset

    run("naive generator", lambda: NaiveGenerator(x, y, args.batch_size), "per-row preprocessing in __getitem__")
    cache = folder / "cache"
    run(
        "PreprocessedSequence",
        lambda: PreprocessedSequence(x, y, batch_size=args.batch_size, preprocess=normalise, preprocess_y=one_hot, cache_dir=cache),
        "preprocessed once; cache reused next run",
    )

    def packed():
        out = folder / "packed"
        if not (out / "x.npy").exists():
            pack(preprocess_once(normalise, x, cache_dir=cache), out / "x.npy")
            pack(one_hot(y), out / "y.npy")
        return MemmapSequence(str(out / "x.npy"), str(out / "y.npy"), batch_size=args.batch_size, shuffle=True, seed=0)

    run("MemmapSequence", packed, "packed .npy, per-sample shuffle")

    try:
        from seqkit.multiprocess import MultiprocessSequence
    except ImportError:
        MultiprocessSequence = None
    if MultiprocessSequence is not None:
        mp = run(
            "MultiprocessSequence",
            lambda: MultiprocessSequence(NaiveBatches(x, y, args.batch_size), workers=2, seed=0),
            "naive generator unchanged, 2 workers",
        )
        close = getattr(mp, "close", None)
        if close:
            close()

    naive_epoch = rows[0][2]
    table = Table(title="model.fit, steady epoch (second of two)", title_justify="left")
    for column in ("data source", "setup s", "epoch s", "speed-up", "accuracy", "note"):
        table.add_column(column, justify="left" if column in ("data source", "note") else "right")
    for name, setup, epoch, accuracy, note in rows:
        table.add_row(name, f"{setup:.2f}", f"{epoch:.2f}", f"{naive_epoch / epoch:.1f}x", f"{accuracy:.3f}", note)
    console.print(table)
    console.print("[dim]The model is deliberately small so that the data pipeline shows; `make bench` times the pipelines alone.[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
