"""Reading sharded datasets (issue 15 §3): ShardedArray indexes like the concatenation of its shards,
MemmapSequence serves the same batches from shards as from memory (same per-sample seeded shuffle), and
`shard(num_shards, index)` gives each host a disjoint, balanced part that, with the others, covers
every row once per epoch. `check_reading` is also what the Dask and Ray tests run on their output."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from seqkit import MemmapSequence, ShardedArray, open_array, pack, store
from seqkit.partition import HostSplit
from test_store import flip_data_byte

N = 1003  # not a multiple of any batch size or shard count used here


def sharded(tmp_path, x, shard_mb, name="x"):
    """`x` packed as shards of `shard_mb` (local engine); returns the path that names the array."""
    return pack(x, tmp_path / f"{name}.npy", shard_mb=shard_mb)


def batches(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def check_reading(x, y, x_ref: np.ndarray, y_ref: np.ndarray, *, batch_size: int = 64, seed: int = 5) -> None:
    """What every sharded output must give: (1) the batches of the in-memory reference, shuffled and not,
    over two epochs; (2) `shard(3, i)` parts that are disjoint, cover every row once per epoch, differ by
    at most one row and have equal batch counts. `y_ref` must be the row numbers (np.arange)."""
    for shuffle in (False, True):
        ds = MemmapSequence(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)
        ref = MemmapSequence(x_ref, y_ref, batch_size=batch_size, shuffle=shuffle, seed=seed)
        assert len(ds) == len(ref)
        for _epoch in range(2):
            for (bx, by), (rx, ry) in zip(batches(ds), batches(ref)):
                assert type(bx) is np.ndarray and bx.flags.writeable  # a batch is a fresh array, never a view of a map
                np.testing.assert_array_equal(bx, rx)
                np.testing.assert_array_equal(by, ry)
            ds.on_epoch_end()
            ref.on_epoch_end()
    parts = [MemmapSequence(x, y, batch_size=batch_size, shuffle=True, seed=seed).shard(3, i) for i in range(3)]
    assert len({len(p) for p in parts}) == 1
    for _epoch in range(2):
        seen = []
        for part in parts:
            rows = []
            for bx, by in batches(part):
                np.testing.assert_array_equal(bx, x_ref[by])
                rows.extend(by.tolist())
            seen.append(rows)
            part.on_epoch_end()
        sizes = [len(rows) for rows in seen]
        assert max(sizes) - min(sizes) <= 1
        assert sorted(r for rows in seen for r in rows) == list(range(len(y_ref)))  # disjoint and covering


# -- ShardedArray ------------------------------------------------------------------------------------


@pytest.fixture
def shards(tmp_path):
    x = np.random.default_rng(0).normal(size=(N, 3, 2)).astype(np.float32)
    path = sharded(tmp_path, x, shard_mb=0.01)  # 0.01 MiB = 10485 bytes: 436 rows of 24 bytes per shard
    return x, open_array(path)


def test_a_sharded_pack_is_shard_files_and_a_manifest_with_rows_and_checksums(tmp_path, shards):
    x, array = shards
    assert isinstance(array, ShardedArray) and array.num_shards == 3 and array.shape == x.shape and array.dtype == x.dtype
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["arrays"]["x"]
    assert [f["file"] for f in entry["files"]] == ["x-00000.npy", "x-00001.npy", "x-00002.npy"]
    assert [f["rows"] for f in entry["files"]] == [436, 436, 131] and entry["rows"] == N
    assert all(f["checksum"].startswith("crc32:") for f in entry["files"])
    assert entry["meta"]["shard_mb"] == 0.01 and len(entry["meta"]["fingerprint"]) == 64
    assert not (tmp_path / "x.npy").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "x-00001.npy"), x[436:872])  # each shard is a plain .npy file


@pytest.mark.parametrize(
    "key",
    [0, 435, 436, -1, -N, slice(None), slice(430, 440), slice(436, 872), slice(10, 20), slice(None, None, 7),
     slice(900, 100, -3), slice(2000, 3000), [872, 0, 435, 436, 0], np.array([[5, 900], [436, 1]]), (slice(430, 440), 1),
     (7, 1, 0), (np.arange(0, N, 100), slice(None), 1)],
)
def test_sharded_array_indexes_like_the_concatenation(shards, key):
    x, array = shards
    np.testing.assert_array_equal(array[key], x[key])


def test_sharded_array_masks_take_read_and_errors(shards):
    x, array = shards
    mask = np.zeros(N, dtype=bool)
    mask[[3, 436, 1000]] = True
    np.testing.assert_array_equal(array[mask], x[mask])
    rows = np.array([1000, 2, 430, 2])
    taken = array.take(rows)
    np.testing.assert_array_equal(taken, x[rows])
    assert taken.flags.writeable and not np.shares_memory(taken, array.shard(0))  # a new array
    np.testing.assert_array_equal(array.read(400, 900), x[400:900])
    np.testing.assert_array_equal(np.asarray(array), x)
    np.testing.assert_array_equal(np.stack(list(array)), x)
    with pytest.raises(IndexError, match=r"row 1003 is out of range for 1003 rows"):
        array[N]
    with pytest.raises(IndexError, match=r"row -1004 is out of range"):
        array.take([0, -N - 1])
    with pytest.raises(IndexError, match="boolean mask must have one value per row"):
        array[mask[:10]]
    assert not array[5].flags.writeable  # a view of a read-only map, as a memmap's row would be


def test_aligned_shards_are_mapped_back_to_back_and_read_like_one_file(tmp_path):
    """seqkit's shards hold whole 4096-byte blocks from a 4096-byte boundary: all of them are mapped into
    one address range (one ndarray, read at one file's speed); other layouts are read shard by shard."""
    x = np.random.default_rng(5).normal(size=(6000, 3, 2)).astype(np.float32)
    array = open_array(sharded(tmp_path, x, shard_mb=0.02))  # 873 rows of 24 bytes -> 512 (3 blocks)
    assert array.num_shards == 12 and all(f.offset == 4096 for f in array.files)
    whole = array.whole()
    assert whole is not None and whole.shape == x.shape and not whole.flags.writeable
    with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
        whole.flags.writeable = True  # PROT_READ pages: numpy may never be allowed to write to them
    one_by_one = pickle.loads(pickle.dumps(array))
    one_by_one._whole = False  # the shard-by-shard path, as for shards that do not line up
    rows = np.random.default_rng(0).permutation(6000)[:700]
    for key in (slice(500, 530), slice(None, None, 13), 511, 512, -1, rows, np.sort(rows), (rows[:9], 1, 0)):
        np.testing.assert_array_equal(array[key], x[key])
        np.testing.assert_array_equal(one_by_one[key], x[key])
    np.testing.assert_array_equal(array.take(rows), one_by_one.take(rows))
    for reader in (array, one_by_one):
        with pytest.raises(TypeError, match="take\\(\\) wants row numbers"):
            reader.take(np.ones(6000, dtype=bool))  # numpy's take would read a mask as rows 0 and 1
        with pytest.raises(IndexError, match=r"row 6000 is out of range for 6000 rows"):
            reader.take([0, 6000])
    np.testing.assert_array_equal(array.read(1000, 3000), one_by_one.read(1000, 3000))
    del whole, array, one_by_one  # the range is unmapped once nothing refers to it


def test_sharded_array_pickles_as_its_files_and_maps_them_again(shards):
    x, array = shards
    array[5]  # mapped here
    blob = pickle.dumps(array)
    assert len(blob) < 2000  # the description, not the 24 KB of data
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again[400:450], x[400:450])
    assert again.digest() == array.digest()


def test_open_array_reads_single_files_and_refuses_damaged_shards(tmp_path, shards):
    x, _ = shards
    np.save(tmp_path / "plain.npy", x[:10])
    single = open_array(tmp_path / "plain.npy")
    assert isinstance(single, np.memmap)
    flip_data_byte(tmp_path / "x-00002.npy")
    open_array(tmp_path / "x.npy")  # sizes and headers are right: only the checksums can tell
    with pytest.raises(store.StoreError, match=r"x: .*x-00002\.npy: checksum .* does not match"):
        open_array(tmp_path / "x.npy", "x", verify=True)
    (tmp_path / "x-00001.npy").write_bytes(b"")
    with pytest.raises(store.StoreError, match=r"x: .*x-00001\.npy: 0 bytes, \d+ in the manifest"):
        MemmapSequence(str(tmp_path / "x.npy"))
    with pytest.raises(FileNotFoundError, match=r"y: no such \.npy file"):
        open_array(tmp_path / "y.npy", "y")


# -- MemmapSequence over shards ------------------------------------------------------------------------


def test_memmap_sequence_serves_the_in_memory_batches_across_shard_boundaries(tmp_path):
    x = np.random.default_rng(1).integers(0, 255, (N, 4, 4), dtype=np.uint8)
    y = np.arange(N, dtype=np.int64)
    path_x = sharded(tmp_path, x, shard_mb=0.004)  # 262 rows per shard: batches of 64 straddle boundaries
    path_y = sharded(tmp_path, y, shard_mb=0.001, name="y")
    assert open_array(path_x).num_shards == 4 and open_array(path_y).num_shards == 8
    check_reading(str(path_x), str(path_y), x, y)
    # drop_remainder and a dict of inputs, one of them a ShardedArray object
    ds = MemmapSequence({"image": open_array(path_x), "id": y}, path_y, batch_size=100, drop_remainder=True, shuffle=True, seed=2)
    ref = MemmapSequence({"image": x, "id": y}, y, batch_size=100, drop_remainder=True, shuffle=True, seed=2)
    assert len(ds) == 10
    for (bx, by), (rx, ry) in zip(batches(ds), batches(ref)):
        np.testing.assert_array_equal(bx["image"], rx["image"])
        np.testing.assert_array_equal(by, ry)


def test_a_sharded_dataset_travels_to_worker_processes_as_file_descriptions(tmp_path):
    x = np.arange(N * 2, dtype=np.int32).reshape(N, 2)
    ds = MemmapSequence(str(sharded(tmp_path, x, shard_mb=0.002)), batch_size=50, shuffle=True, seed=9).shard(2, 1)
    ds.on_epoch_end()
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the epoch order travels (as for one file); the data does not
    again = pickle.loads(blob)
    for i in range(len(ds)):
        np.testing.assert_array_equal(again[i][0], ds[i][0])


# -- shard(num_shards, index) ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 100, 129, 1003])
@pytest.mark.parametrize("batch_size", [1, 2, 32])
@pytest.mark.parametrize("num_shards", [1, 2, 3, 8])
def test_host_parts_are_disjoint_balanced_equal_in_batches_and_cover_every_row(n, batch_size, num_shards):
    for drop in (False, True):
        try:
            parts = [HostSplit(n, batch_size, num_shards, i, drop) for i in range(num_shards)]
        except ValueError as exc:
            assert n < num_shards * (batch_size if drop else 1), exc  # refused only when rows are too few
            continue
        spans = [[part.span(b) for b in range(part.num_batches)] for part in parts]
        rows = [[r for start, stop in host for r in range(start, stop)] for host in spans]
        assert all(0 < stop - start <= batch_size for host in spans for start, stop in host)
        expected = n - n % (num_shards * batch_size) if drop else n
        assert sorted(r for host in rows for r in host) == list(range(expected))
        assert max(map(len, rows)) - min(map(len, rows)) <= 1
        if batch_size > 1 or n % num_shards == 0 or drop:
            assert len({part.num_batches for part in parts}) == 1
        if num_shards == 1:  # one host: exactly the unsharded batches
            assert spans[0] == [(s, min(s + batch_size, n)) for s in range(0, expected, batch_size)]


def test_shard_follows_the_global_shuffle_and_keeps_batch_size(tmp_path):
    x = np.arange(1000, dtype=np.int64)[:, None]
    whole = MemmapSequence(x, batch_size=10, shuffle=True, seed=4)
    parts = [MemmapSequence(x, batch_size=10, shuffle=True, seed=4).shard(2, i) for i in range(2)]
    assert [len(p) for p in parts] == [50, 50]
    # host i's batch b holds the rows of positions [b*20 + i*10, +10) of the same epoch order
    order = whole._order
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part[3][0][:, 0], np.sort(order[60 + 10 * i : 70 + 10 * i]))
    parts[0].on_epoch_end()
    whole.on_epoch_end()
    np.testing.assert_array_equal(parts[0][0][0][:, 0], np.sort(whole._order[:10]))


def test_shard_arguments_are_checked(tmp_path):
    x = np.zeros((20, 2))
    with pytest.raises(ValueError, match=r"shard\(\) with shuffle=True needs an explicit seed, the same on every host"):
        MemmapSequence(x, shuffle=True).shard(2, 0)
    MemmapSequence(x, shuffle=True).shard(1, 0)  # one host: any seed is fine
    with pytest.raises(ValueError, match=r"index must be in 0\.\.1 for num_shards=2, got 2"):
        MemmapSequence(x).shard(2, 2)
    with pytest.raises(TypeError, match=r"num_shards must be an integer, got 2\.0"):
        MemmapSequence(x).shard(2.0, 0)
    with pytest.raises(TypeError, match=r"shard\(\) needs num_shards and index"):
        MemmapSequence(x).shard(2)
    with pytest.raises(ValueError, match=r"20 samples cannot be split into 32 non-empty shards"):
        MemmapSequence(x, batch_size=4).shard(32, 0)
    with pytest.raises(ValueError, match=r"already shard 1 of 2"):
        MemmapSequence(x).shard(2, 1).shard(2, 0)


def test_shard_takes_what_tensorflow_and_keras_hand_a_host():
    import keras
    import tensorflow as tf

    x = np.arange(90)[:, None]
    context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=1, num_replicas_in_sync=3)
    part = MemmapSequence(x, batch_size=10).shard(context)
    assert (part.num_shards, part.shard_index, len(part)) == (3, 1, 3)
    assert part[0][0][:, 0].tolist() == list(range(10, 20))
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    whole = MemmapSequence(x, batch_size=10).shard(distribution)  # one process here: one data shard
    assert (whole.num_shards, whole.shard_index, len(whole)) == (1, 0, 9)
    with pytest.raises(TypeError, match="takes no index"):
        MemmapSequence(x).shard(context, 1)


def test_fit_on_one_hosts_shard_of_a_sharded_pack(tmp_path, tiny_model):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x.sum(axis=1, keepdims=True) > 0).astype(np.float32)
    path_x = sharded(tmp_path, x, shard_mb=0.004)
    path_y = sharded(tmp_path, y, shard_mb=0.0002, name="y")
    part = MemmapSequence(str(path_x), str(path_y), batch_size=32, shuffle=True, seed=1).shard(2, 1)
    model = tiny_model((6,))
    history = model.fit(part, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()

