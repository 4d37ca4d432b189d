"""preprocess_once: the cache (reuse, rebuild, nothing partial), the row-wise check, processes, bad input."""

from __future__ import annotations

import functools
import gc
import os
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
