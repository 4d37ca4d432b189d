"""Batching and shuffling shared by every seqkit dataset (seqkit.base), on real arrays and files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from seqkit import MemmapSequence, PreprocessedSequence
from naive import NaiveGenerator, scale_rows


def data(n=103, shape=(4, 3)):
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (n, *shape), dtype=np.uint8), np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("batch_size", [1, 10, 32, 103, 200])
def test_unshuffled_batches_equal_the_naive_generator(batch_size):
    x, y = data()
    naive = NaiveGenerator(x, y, batch_size)
    seq = PreprocessedSequence(x, y, batch_size=batch_size, preprocess=scale_rows)
    assert len(seq) == len(naive)
    for i in range(len(naive)):
        (nx, ny), (sx, sy) = naive[i], seq[i]
        np.testing.assert_array_equal(sx, nx)
        np.testing.assert_array_equal(sy, ny)
    assert len(seq[len(seq) - 1][1]) == (103 % batch_size or batch_size)  # last partial batch kept


def test_drop_remainder_drops_only_the_last_partial_batch():
    x, y = data()
    seq = MemmapSequence(x, y, batch_size=10, drop_remainder=True)
    assert len(seq) == 10
    assert all(len(seq[i][0]) == 10 for i in range(len(seq)))
    assert seq[-1][1][-1] == 99
    with pytest.raises(IndexError):
        seq[10]


@pytest.mark.parametrize("cls", [MemmapSequence, PreprocessedSequence])
def test_shuffled_epochs_cover_every_sample_once_in_sorted_batches(cls):
    x, y = data()
    seq = cls(x, y, batch_size=16, shuffle=True, seed=7)
    orders = []
    for _epoch in range(3):
        seen = np.concatenate([seq[i][1] for i in range(len(seq))])
        assert sorted(seen) == list(range(103))
        for i in range(len(seq)):
            batch_x, batch_y = seq[i]
            assert np.all(np.diff(batch_y) > 0)  # rows gathered in file order
            np.testing.assert_array_equal(batch_x, x[batch_y])  # x and y rows stay paired
        orders.append(seen)
        seq.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(103))

    again = cls(x, y, batch_size=16, shuffle=True, seed=7)
    np.testing.assert_array_equal(np.concatenate([again[i][1] for i in range(len(again))]), orders[0])
    other = cls(x, y, batch_size=16, shuffle=True, seed=8)
    assert not np.array_equal(np.concatenate([other[i][1] for i in range(len(other))]), orders[0])
    again.set_epoch(2)
    np.testing.assert_array_equal(np.concatenate([again[i][1] for i in range(len(again))]), orders[2])


def test_dict_and_tuple_structures_are_kept():
    x, y = data(n=20)
    seq = MemmapSequence({"image": x, "meta": (y * 2, y.astype(np.float32))}, (y, y % 2), batch_size=8)
    bx, by = seq[2]
    assert list(bx) == ["image", "meta"] and isinstance(bx["meta"], tuple)
    np.testing.assert_array_equal(bx["meta"][0], y[16:] * 2)
    np.testing.assert_array_equal(by[1], y[16:] % 2)


def test_without_y_batches_are_one_tuples():
    x, _ = data(n=5)
    batch = MemmapSequence(x, batch_size=2)[1]
    assert isinstance(batch, tuple) and len(batch) == 1
    np.testing.assert_array_equal(batch[0], x[2:4])


def test_keras_arguments_reach_pydataset():
    x, y = data(n=10)
    seq = MemmapSequence(x, y, workers=2, use_multiprocessing=True, max_queue_size=3)
    assert (seq.workers, seq.use_multiprocessing, seq.max_queue_size) == (2, True, 3)


def test_pickled_dataset_reopens_its_files_instead_of_copying_them(tmp_path):
    x, y = data(n=2000, shape=(64,))
    np.save(tmp_path / "x.npy", x)
    seq = MemmapSequence(str(tmp_path / "x.npy"), y, batch_size=50, shuffle=True, seed=1)
    blob = pickle.dumps(seq)
    assert len(blob) < x.nbytes / 2  # the 128 KB of x travel as a file name
    clone = pickle.loads(blob)
    for i in (0, 7, 39):
        np.testing.assert_array_equal(clone[i][0], seq[i][0])


# -- bad input, before any training ---------------------------------------------------------------


def test_mismatched_lengths_name_both_arguments():
    x, y = data(n=10)
    with pytest.raises(ValueError, match=r"x has 10.*y\['label'\] has 9"):
        MemmapSequence(x, {"label": y[:9]})


@pytest.mark.parametrize("batch_size", [0, -3])
def test_batch_size_below_one(batch_size):
    x, y = data(n=10)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        PreprocessedSequence(x, y, batch_size=batch_size)


def test_batch_size_not_an_integer():
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        MemmapSequence(np.zeros((4, 2)), batch_size=2.5)


def test_object_dtype_is_refused_with_the_argument_named():
    x, y = data(n=3)
    ragged = np.empty(3, dtype=object)
    ragged[:] = [np.zeros(2), np.zeros(3), np.zeros(1)]
    with pytest.raises(TypeError, match=r"x\['tokens'\] has dtype object"):
        MemmapSequence({"tokens": ragged, "image": x}, y)


def test_missing_npy_file_is_named(tmp_path):
    missing = tmp_path / "nothere.npy"
    with pytest.raises(FileNotFoundError, match=r"y: no such \.npy file: .*nothere\.npy"):
        MemmapSequence(np.zeros((3, 2)), str(missing))


def test_truncated_npy_file_is_named(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, np.zeros((1000, 10), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"x: .*cut\.npy: truncated: 5000 bytes, but its header \(1000 rows"):
        MemmapSequence(str(path))
