"""pack_samples with a bound method of a real Keras PyDataset as the loader, as seqlint's SEQ201 fix
writes it: the same batches as the file-per-sample generator over two epochs, a real model.fit, the
cache reused by a second construction, and worker processes that never import Keras."""

from __future__ import annotations

import os
import sys

import keras
import numpy as np
import pytest

import seqkit
import seqkit.samples_run

DIM = (6, 5)
CHANNELS = 2
CLASSES = 3


class FilePerSample(keras.utils.PyDataset):
    """The tutorial's shape: ids shuffled by a global-RNG `on_epoch_end`, an `np.empty` batch filled
    with one `np.load` per id, labels from a dict, one-hot at the end."""

    def __init__(self, list_IDs, labels, root, batch_size=4, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        self.list_IDs, self.labels, self.root = list_IDs, labels, root
        self.batch_size, self.shuffle = batch_size, shuffle
        self.on_epoch_end()

    def __len__(self):
        return int(np.floor(len(self.list_IDs) / self.batch_size))

    def __getitem__(self, index):
        indexes = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        return self._generate([self.list_IDs[k] for k in indexes])

    def on_epoch_end(self):
        self.indexes = np.arange(len(self.list_IDs))
        if self.shuffle:
            np.random.shuffle(self.indexes)

    def _generate(self, list_IDs_temp):
        X = np.empty((self.batch_size, *DIM, CHANNELS))
        y = np.empty((self.batch_size), dtype=int)
        for i, ID in enumerate(list_IDs_temp):
            X[i,] = np.load(os.path.join(self.root, ID + ".npy"))
            y[i] = self.labels[ID]
        return X, keras.utils.to_categorical(y, num_classes=CLASSES)


class Packed(FilePerSample):
    """The same class after the fix: the per-sample read moved into `_load_image`, packed in __init__."""

    def __init__(self, list_IDs, labels, root, batch_size=4, shuffle=True, processes=None, cache_dir=None, **kwargs):
        super().__init__(list_IDs, labels, root, batch_size, shuffle, **kwargs)
        self._images = seqkit.pack_samples(self._load_image, self.list_IDs, processes=processes, cache_dir=cache_dir, progress=False)

    def _load_image(self, ID):
        return np.load(os.path.join(self.root, ID + ".npy"))

    def _generate(self, list_IDs_temp):
        X = np.empty((self.batch_size, *DIM, CHANNELS))
        y = np.empty((self.batch_size), dtype=int)
        X[: len(list_IDs_temp)] = self._images.take(list_IDs_temp)
        for i, ID in enumerate(list_IDs_temp):
            y[i] = self.labels[ID]
        return X, keras.utils.to_categorical(y, num_classes=CLASSES)


class KerasProbe(keras.utils.PyDataset):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.weights = np.zeros(3_000_000)  # a large attribute the loader does not read

    def _loaded_with_keras(self, key):
        return np.array([os.getpid(), "keras" in sys.modules or "tensorflow" in sys.modules])


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"id-{i}" for i in range(48)]
    (tmp_path / "data").mkdir()
    for ID in ids:
        np.save(tmp_path / "data" / f"{ID}.npy", rng.random((*DIM, CHANNELS), dtype=np.float32))
    labels = {ID: int(rng.integers(CLASSES)) for ID in ids}
    return ids, labels, str(tmp_path / "data"), tmp_path / "cache"


def epochs(generator, count=2):
    batches = []
    for _ in range(count):
        batches += [generator[i] for i in range(len(generator))]
        generator.on_epoch_end()
    return batches


@pytest.mark.parametrize("processes", [0, 2])
def test_the_packed_generator_gives_the_file_per_sample_batches_and_reuses_its_cache(dataset, processes):
    ids, labels, root, cache = dataset
    np.random.seed(7)
    naive = epochs(FilePerSample(ids, labels, root))
    np.random.seed(7)
    fixed = Packed(ids, labels, root, processes=processes, cache_dir=cache)
    assert fixed._images.build.where == ("processes" if processes else "this process")
    packed = epochs(fixed)
    assert len(packed) == len(naive) == 24
    for (x0, y0), (x1, y1) in zip(naive, packed):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)

    again = Packed(ids, labels, root, processes=processes, cache_dir=cache)
    assert again._images.reused and again._images.path == fixed._images.path
    again.on_epoch_end()  # reshuffling the indexes does not touch what the loader reads


def test_model_fit_trains_on_the_packed_generator(dataset, tiny_model):
    ids, labels, root, cache = dataset
    model = tiny_model((*DIM, CHANNELS), outputs=CLASSES)  # mse on the one-hot labels: its output is linear
    history = model.fit(Packed(ids, labels, root, processes=0, cache_dir=cache), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_worker_processes_load_a_keras_dataset_method_without_importing_keras(tmp_path, monkeypatch):
    monkeypatch.setattr(seqkit.samples_run, "PENDING_BYTES", 0)  # this process does not help: the workers load the rest
    probe = KerasProbe()
    with pytest.warns(seqkit.samples.UntrackedFilesWarning):  # it reads no file
        packed = seqkit.pack_samples(probe._loaded_with_keras, list(range(200)), processes=2, cache_dir=tmp_path, progress=False)
    assert packed.build.where == "processes" and packed.build.loaded_here == seqkit.samples.PROBE_KEYS
    rows = packed.take(list(range(200)))
    here = rows[:, 0] == os.getpid()
    assert here[: seqkit.samples.PROBE_KEYS].all() and rows[here, 1].all()  # Keras is imported here...
    assert not here[seqkit.samples.PROBE_KEYS :].any() and not rows[~here, 1].any()  # ...not in the workers
