"""preprocess_once: the cache (reuse, rebuild, nothing partial), the row-wise check, processes, bad input."""

from __future__ import annotations

import functools
import gc
import os
import time
from pathlib import Path

import numpy as np
import pytest

from seqkit import preprocess_once
from seqkit.preprocess import PreprocessError


def counted(path: Path):
    """A row-wise function that counts its calls in a file, so a test sees whether it ran at all."""

    def standardise(batch):
        calls = int(path.read_text()) if path.exists() else 0
        path.write_text(str(calls + 1))
        return (batch.astype(np.float32) - 3.0) / 2.0

    return standardise


def cache_files(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def test_result_equals_applying_the_function_to_everything():
    x = np.random.default_rng(0).normal(size=(1000, 5))
    out = preprocess_once(lambda b: np.tanh(b) * 2, x, chunk_size=64)
    np.testing.assert_allclose(out, np.tanh(x) * 2)


def test_in_memory_result_is_read_only_and_releases_its_memory_file():
    x = np.arange(5000 * 7, dtype=np.int32).reshape(5000, 7)
    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    out = preprocess_once(lambda rows: rows * 3, x, chunk_size=333)
    np.testing.assert_array_equal(out, x * 3)
    assert out.shape == (5000, 7) and out.dtype == np.int32
    with pytest.raises(ValueError):
        out[0, 0] = 1  # like a reused cache: the preprocessed data is never changed behind the model's back
    del out  # the map (and the descriptor it holds, as any memmap does) lives exactly as long as the result
    gc.collect()
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before


def test_cache_is_reused_without_recomputing(tmp_path):
    counter, cache = tmp_path / "calls", tmp_path / "cache"
    x = np.arange(600, dtype=np.float32).reshape(200, 3)
    first = preprocess_once(counted(counter), x, cache_dir=cache, chunk_size=50)
    built = int(counter.read_text())
    assert built >= 4  # 4 chunks (+ the row-wise probes)
    [name] = cache_files(cache)
    mtime = (cache / name).stat().st_mtime_ns

    second = preprocess_once(counted(counter), x, cache_dir=cache, chunk_size=50)  # a new but identical function
    assert int(counter.read_text()) == built
    assert isinstance(second, np.memmap) and (cache / name).stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(second, (x - 3) / 2)


def _from_source(body: str):
    namespace = {"np": np}
    exec(f"def prepare(batch):\n    return {body}\n", namespace)
    return namespace["prepare"]


def test_changed_code_closure_or_data_rebuild(tmp_path):
    cache = tmp_path / "cache"
    x = np.arange(40, dtype=np.float32).reshape(20, 2)

    a = preprocess_once(_from_source("batch * 2"), x, cache_dir=cache)
    b = preprocess_once(_from_source("batch * 3"), x, cache_dir=cache)  # same name, edited body
    np.testing.assert_array_equal(a, x * 2)
    np.testing.assert_array_equal(b, x * 3)
    assert len(cache_files(cache)) == 2

    def scaled_by(factor):
        return lambda batch: batch * factor

    c = preprocess_once(scaled_by(5.0), x, cache_dir=cache)
    d = preprocess_once(scaled_by(7.0), x, cache_dir=cache)
    np.testing.assert_array_equal(c, x * 5)
    np.testing.assert_array_equal(d, x * 7)

    changed = x.copy()
    changed[13, 1] += 1
    e = preprocess_once(_from_source("batch * 2"), changed, cache_dir=cache)
    np.testing.assert_array_equal(e, changed * 2)
    assert len(cache_files(cache)) == 5


def test_interrupted_build_leaves_no_cache_and_no_temp_file(tmp_path):
    cache = tmp_path / "cache"
    x = np.arange(300, dtype=np.float32).reshape(100, 3)

    def interrupted(batch):
        if batch[0, 0] >= 150:  # the third chunk: some rows are already on disk
            raise KeyboardInterrupt
        return batch + 1

    with pytest.raises(KeyboardInterrupt):
        preprocess_once(interrupted, x, cache_dir=cache, chunk_size=25)
    assert cache_files(cache) == []
    out = preprocess_once(lambda b: b + 1, x, cache_dir=cache, chunk_size=25)  # and a later run works
    np.testing.assert_array_equal(out, x + 1)


def test_failing_chunk_is_named_and_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"
    x = np.arange(100, dtype=np.float32)[:, None]

    def fragile(batch):
        if batch.min() >= 60:
            raise ZeroDivisionError("bad row")
        return batch

    with pytest.raises(PreprocessError, match=r"'.*fragile' failed on chunk rows 60:80: ZeroDivisionError"):
        preprocess_once(fragile, x, cache_dir=cache, chunk_size=20)
    assert cache_files(cache) == []


def test_function_changing_the_number_of_rows_is_refused(tmp_path):
    def dedupe(batch):
        return np.unique(batch, axis=0)

    with pytest.raises(ValueError, match=r"'.*dedupe' returned \d+ rows for chunk rows 0:10 \(10 rows\)"):
        preprocess_once(dedupe, np.zeros((10, 2)), verify=False, cache_dir=tmp_path)
    assert cache_files(tmp_path) == []


def test_batch_statistics_are_refused_with_the_reason():
    def centre(batch):
        return batch - batch.mean()

    x = np.random.default_rng(3).normal(size=(50, 4))
    with pytest.raises(ValueError, match=r"'.*centre' is not row-wise.*batch statistics.*would change the results"):
        preprocess_once(centre, x)
    np.testing.assert_allclose(preprocess_once(centre, x, verify=False), x - x.mean())  # when asked for


def test_function_may_not_modify_the_input():
    x = np.ones((10, 2))

    def in_place(batch):
        batch *= 2
        return batch

    with pytest.raises(PreprocessError, match="read-only"):
        preprocess_once(in_place, x, verify=False)
    assert np.all(x == 1)


def test_structures_in_and_out(tmp_path):
    x = {"a": np.arange(30.0).reshape(10, 3), "b": np.arange(10)}

    def split(batch):
        return batch["a"].sum(axis=1), {"b2": batch["b"] * 2}

    for _ in range(2):  # built, then read back from the cache folder
        sums, rest = preprocess_once(split, x, cache_dir=tmp_path)
        np.testing.assert_array_equal(sums, x["a"].sum(axis=1))
        np.testing.assert_array_equal(rest["b2"], x["b"] * 2)
    assert len(cache_files(tmp_path)) == 1


def test_processes_give_the_same_result_and_need_a_picklable_function(tmp_path):
    x = np.random.default_rng(4).normal(size=(400, 3))
    out = preprocess_once(functools.partial(np.multiply, 3.0), x, chunk_size=50, processes=2)
    np.testing.assert_array_equal(out, x * 3.0)
    with pytest.raises(TypeError, match=r"processes=2.*'.*<lambda>' cannot be pickled.*module level"):
        preprocess_once(lambda b: b, x, processes=2)


def test_npy_path_input(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(12.0).reshape(6, 2))
    np.testing.assert_array_equal(preprocess_once(np.sqrt, os.fspath(path)), np.sqrt(np.load(path)))


def test_bad_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        preprocess_once("scale", np.zeros((3, 1)))
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        preprocess_once(np.sqrt, np.zeros((3, 1)), chunk_size=0)
    with pytest.raises(ValueError, match=r"all arrays of x must have the same number.*x\['b'\] has 2"):
        preprocess_once(lambda d: d, {"a": np.zeros(3), "b": np.zeros(2)})


# -- per_sample=True: fn(x[i]) for each sample, stacked (what seqlint's fixes write for per-sample steps) --


class Samples:
    """A sequence with len and integer indexing only (no slicing), recording what it was asked for."""

    def __init__(self, data):
        self.data = data
        self.asked = []

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        if not isinstance(i, int):
            raise TypeError(f"integer indices only, got {i!r}")
        self.asked.append(i)
        return self.data[i]


def test_per_sample_stacks_fn_of_every_sample_however_x_is_held(tmp_path):
    from scale_work import halve_image

    images = np.random.default_rng(0).integers(0, 255, (37, 6, 8, 3), dtype=np.uint8)
    expected = images[:, ::2, ::2].astype(np.float32) / 255
    np.save(tmp_path / "images.npy", images)
    sequence = Samples(list(images))
    for x in (images, np.load(tmp_path / "images.npy", mmap_mode="r"), list(images), tuple(images), sequence):
        out = preprocess_once(halve_image, x, per_sample=True, chunk_size=5)
        assert out.shape == (37, 3, 4, 3) and out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
    assert sorted(set(sequence.asked)) == list(range(37))  # x[i] with integers, as the generator indexed it
    scalars = preprocess_once(lambda row: float(row.sum()), images, per_sample=True)
    np.testing.assert_array_equal(scalars, images.reshape(37, -1).sum(axis=1).astype(np.float64))


def test_per_sample_functions_are_not_probed_for_being_row_wise():
    from scale_work import normalise_image

    images = np.random.default_rng(1).normal(3.0, 2.0, size=(20, 5, 5))
    out = preprocess_once(normalise_image, images, per_sample=True)
    np.testing.assert_allclose(out, np.stack([normalise_image(i) for i in images]), rtol=1e-6)
    with pytest.raises(ValueError, match="is not row-wise"):
        preprocess_once(normalise_image, images)  # the batch form would standardise over the whole chunk


@pytest.mark.parametrize("processes", [None, 2])
def test_per_sample_results_that_differ_name_the_first_sample_that_differs(tmp_path, processes):
    shapes = [np.zeros((4, 4), np.float32)] * 6 + [np.zeros((5, 4), np.float32)] + [np.zeros((4, 4), np.float32)] * 3
    with pytest.raises(ValueError, match=r"returned shape \(5, 4\) float32 for x\[6\], but shape \(4, 4\) float32 for x\[0\]; per-sample results must all have one shape and dtype"):
        preprocess_once(np.negative, shapes, per_sample=True, chunk_size=3, processes=processes, cache_dir=tmp_path)
    dtypes = [np.zeros(3, np.float32)] * 4 + [np.zeros(3, np.float64)]
    with pytest.raises(ValueError, match=r"shape \(3,\) float64 for x\[4\], but shape \(3,\) float32 for x\[0\]"):
        preprocess_once(np.negative, dtypes, per_sample=True, chunk_size=2, processes=processes)
    assert cache_files(tmp_path) == []  # nothing half-written


def test_per_sample_errors_name_the_sample_and_bad_x_is_refused():
    def fragile(row):
        if row[0] == 3:
            raise ZeroDivisionError("bad sample")
        return row

    x = np.arange(10)[:, None]
    with pytest.raises(PreprocessError, match=r"'.*fragile' failed on sample x\[3\]: ZeroDivisionError"):
        preprocess_once(fragile, x, per_sample=True)
    with pytest.raises(TypeError, match=r"returned dict for x\[0\], which is not an array of numbers"):
        preprocess_once(lambda row: {"a": row}, x, per_sample=True)
    with pytest.raises(TypeError, match=r"per_sample=True\): x must be a sequence of samples.*got str"):
        preprocess_once(np.negative, "images/", per_sample=True)
    with pytest.raises(TypeError, match=r"got dict"):
        preprocess_once(np.negative, {"a": x}, per_sample=True)
    with pytest.raises(ValueError, match=r"x has no samples"):
        preprocess_once(np.negative, [], per_sample=True)
    with pytest.raises(PreprocessError, match="read-only"):
        preprocess_once(lambda row: np.multiply(row, 2, out=row), x, per_sample=True)  # fn may not write into x


def test_per_sample_cache_is_reused_and_rebuilt_when_the_data_or_a_file_changes(tmp_path):
    counter, cache = tmp_path / "calls", tmp_path / "cache"

    def load_and_scale(path):
        counter.write_text(str(int(counter.read_text()) + 1) if counter.exists() else "1")
        return np.load(path).astype(np.float32) * 0.5

    files = []
    for i in range(6):
        files.append(str(tmp_path / f"{i}.npy"))
        np.save(files[-1], np.full(3, i))
    first = preprocess_once(load_and_scale, files, per_sample=True, cache_dir=cache)
    calls = int(counter.read_text())
    second = preprocess_once(load_and_scale, files, per_sample=True, cache_dir=cache)
    assert int(counter.read_text()) == calls and isinstance(second, np.memmap)
    np.testing.assert_array_equal(second, first)
    time.sleep(0.01)
    np.save(files[2], np.full(3, 20))  # a file the samples are read from changes: the cache is stale
    third = preprocess_once(load_and_scale, files, per_sample=True, cache_dir=cache)
    assert third[2].tolist() == [10.0, 10.0, 10.0] and len(cache_files(cache)) == 2
    batch_form = preprocess_once(lambda b: b * 0.5, np.arange(6.0)[:, None], cache_dir=cache)
    per_sample = preprocess_once(lambda b: b * 0.5, np.arange(6.0)[:, None], per_sample=True, cache_dir=cache)
    np.testing.assert_array_equal(batch_form, per_sample)
    assert len(cache_files(cache)) == 4  # the two forms of one function are two caches


def test_per_sample_in_processes_equals_inline():
    from scale_work import halve_image

    images = np.random.default_rng(2).integers(0, 255, (120, 8, 8), dtype=np.uint8)
    inline = preprocess_once(halve_image, list(images), per_sample=True)
    pooled = preprocess_once(halve_image, list(images), per_sample=True, processes=2, chunk_size=16)
    np.testing.assert_array_equal(pooled, inline)


# -- sharded caches on the local engine --------------------------------------------------------------


def test_a_sharded_cache_is_written_by_shard_tasks_and_reused(tmp_path):
    from seqkit import ShardedArray, store

    x = np.arange(3000 * 4, dtype=np.float32).reshape(3000, 4)
    out = preprocess_once(functools.partial(np.multiply, 2.0), x, cache_dir=tmp_path, shard_mb=0.01, processes=2)
    assert isinstance(out, ShardedArray) and out.num_shards == 6  # 655 rows of 16 bytes, in whole 4 KiB blocks: 512
    np.testing.assert_array_equal(np.asarray(out), x * 2)
    [folder] = cache_files(tmp_path)
    dataset = store.verify(tmp_path / folder)
    assert dataset.meta == {"kind": "preprocess cache", "shard_mb": 0.01} and [f.name for f in dataset.files("0")][:2] == ["0-00000.npy", "0-00001.npy"]
    again = preprocess_once(functools.partial(np.multiply, 2.0), x, cache_dir=tmp_path)  # read back, whatever the layout
    assert isinstance(again, ShardedArray) and again.digest() == out.digest()
    with pytest.raises(ValueError, match=r"shard_mb=0\.01\) writes its result as shards into cache_dir"):
        preprocess_once(np.sqrt, x, shard_mb=0.01)


# -- the worker processes are seqkit.pool's: a timeout per chunk, and they die with their parent ------


def test_a_chunk_that_hangs_in_a_worker_raises_worker_error_after_timeout(tmp_path):
    from scale_work import hang_on

    from seqkit.lifeline import WorkerError  # the class seqkit.WorkerError is, without importing Keras

    x = np.arange(40, dtype=np.float64)[:, None]
    with pytest.raises(WorkerError, match=r"item 1 took longer than timeout=1\.5s") as caught:
        preprocess_once(hang_on, x, per_sample=True, processes=2, chunk_size=5, timeout=1.5, cache_dir=tmp_path)
    assert "in hang_on" in caught.value.worker_traceback
    assert cache_files(tmp_path) == []


def test_workers_die_with_a_killed_parent(tmp_path):
    """preprocess_once(processes=2) with a chunk stuck for ever, and its process SIGKILLed: the workers,
    the fork server and the resource tracker all go (a ProcessPoolExecutor's workers were orphaned)."""
    import signal
    import subprocess
    import sys
    import textwrap

    from test_pool import _descendants, alive

    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import sys, numpy as np
        sys.path.insert(0, sys.argv[1])
        from scale_work import hang_on
        from seqkit import preprocess_once
        if __name__ == "__main__":
            preprocess_once(hang_on, np.arange(40.0)[:, None], per_sample=True, processes=2, chunk_size=5)
    """))
    parent = subprocess.Popen([sys.executable, str(script), str(Path(__file__).parent)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_descendants(parent.pid)) < 4:
            time.sleep(0.05)
        time.sleep(0.3)
        family = _descendants(parent.pid)
        assert len(family) == 4, family  # two workers, the fork server, the resource tracker
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in family):
        time.sleep(0.05)
    assert {pid: cmd for pid, cmd in family.items() if alive(pid)} == {}
