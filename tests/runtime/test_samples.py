"""seqkit.pack_samples (issue 12 part 1): a user's per-sample loader called once per key, packed into a
fingerprinted, memory-mapped cache that is reused while nothing changes and rebuilt when anything does.

Real files, real worker processes, a real kill -9. Most tests load in this process (processes=0) to
stay quick; the ones about processes say so.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import seqkit
from seqkit import samples, samples_progress, samples_run, store
from seqkit.packing import PackWarning
from seqkit.preprocess import CacheWarning
from seqkit.samples import PackedSamples, SampleLoadError, UntrackedFilesWarning, default_cache_dir, pack_samples
from seqkit.tempfiles import temp_owner
from test_store import flip_data_byte


# -- data and loaders (module level: worker processes get them by value) ----------------------------


def make_files(folder: Path, count: int, shape=(4, 3), dtype=np.float32) -> list[str]:
    """`count` .npy files named 000.npy, 001.npy...; file i holds the value i everywhere."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.npy"
        np.save(path, np.full(shape, i, dtype=dtype))
        paths.append(str(path))
    return paths


def load_npy(path):
    """Loads a key that is a path, and logs the call (the hook ignores files opened for writing)."""
    with open(Path(path).parent / "calls.log", "a") as log:
        log.write(f"{path}\n")
    return np.load(path)


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().split() if log.exists() else []


def load_id(root, ID):
    """The tutorial's loader: the key is an id, the file is found from it."""
    return np.load(os.path.join(root, ID + ".npy"))


SCALE = 2.0


def load_scaled(path):
    return np.load(path) * SCALE


def scaled_by(factor):
    def load(path):
        return np.load(path) * factor

    return load


def load_pair(path):
    image = np.load(path)
    return image, np.int64(image.flat[0]) % 3


def load_dict(path):
    image = np.load(path)
    return {"image": image, "mean": np.float32(image.mean())}


def load_ragged(path):
    image = np.load(path)
    return image if int(image.flat[0]) != 13 else image[:3]


def load_other_dtype(path):
    image = np.load(path)
    return image if int(image.flat[0]) != 5 else image.astype(np.float64)


def load_missing_attribute(path):
    return np.load(path).no_such_attribute


def cache_folders(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if not p.name.startswith(".")) if cache.exists() else []


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if temp_owner(p.name)) if folder.exists() else []


def expected(paths) -> np.ndarray:
    return np.stack([np.load(p) for p in paths])


def bump(path: str, value: float) -> None:
    """Rewrite a file with another value (same size) and a later modification time."""
    np.save(path, np.full((4, 3), value, dtype=np.float32))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


# -- what it packs, and reading it back ----------------------------------------------------------------


def test_packs_what_the_loader_returns_once_per_distinct_key_and_take_keeps_the_order(tmp_path):
    paths = make_files(tmp_path / "data", 20)
    keys = paths[10:] + paths[:10] + paths[3:6]  # any order, with repeats
    packed = pack_samples(load_npy, keys, cache_dir=tmp_path / "cache", processes=0)

    assert sorted(calls(tmp_path / "data")) == sorted(paths)  # once per distinct key
    assert packed.keys == paths[10:] + paths[:10] and len(packed) == 20  # first-seen order, no repeats
    assert isinstance(packed.data, np.memmap) and not packed.data.flags.writeable
    np.testing.assert_array_equal(packed.data, expected(packed.keys))
    assert packed.rows([paths[10], paths[0], paths[10]]).tolist() == [0, 10, 0]
    assert packed.rows(np.array([paths[1]])).dtype == np.int64

    batch = [paths[7], paths[2], paths[19], paths[2], paths[0]]
    taken = packed.take(batch)
    assert type(taken) is np.ndarray and taken.flags.writeable  # an ordinary array, not a view of the map
    np.testing.assert_array_equal(taken, expected(batch))
    np.testing.assert_array_equal(packed.take(paths[:4]), expected(paths[:4]))
    assert packed.take([]).shape == (0, 4, 3)
    assert not packed.reused and packed.build.where == "this process"
    assert packed.path.parent == tmp_path / "cache" and packed.path.name.startswith("load_npy-")
    assert set(packed.files) == set(paths)


def test_take_from_several_threads_at_once(tmp_path):
    """Keras calls __getitem__ from several threads (workers=N): each gathers into its own scratch buffer."""
    import threading

    paths = make_files(tmp_path / "data", 50)
    packed = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    reference = expected(paths)
    wrong = []

    def batches(seed):
        rng = np.random.default_rng(seed)
        for _ in range(300):
            rows = rng.integers(0, 50, size=int(rng.integers(2, 40)))
            if not np.array_equal(packed.take([paths[r] for r in rows]), reference[rows]):
                wrong.append(seed)

    threads = [threading.Thread(target=batches, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_unknown_keys_raise_keyerror_naming_the_first(tmp_path):
    paths = make_files(tmp_path / "data", 3)
    packed = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    with pytest.raises(KeyError, match=r"'nope' is not among the 3 packed keys"):
        packed.take([paths[0], "nope", "other"])
    with pytest.raises(TypeError, match="single string"):
        packed.rows(paths[0])


def test_ids_as_keys_track_the_files_the_loader_opens(tmp_path):
    make_files(tmp_path / "data", 6)
    ids = [f"{i:03d}" for i in range(6)]
    loader = functools.partial(load_id, str(tmp_path / "data"))
    packed = pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=0)
    assert set(packed.files) == {str(tmp_path / "data" / f"{i}.npy") for i in ids}  # seen by the audit hook
    assert pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=0).reused

    bump(str(tmp_path / "data" / "004.npy"), 40)
    rebuilt = pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=0)
    assert not rebuilt.reused and rebuilt.take(["004"])[0, 0, 0] == 40
    assert cache_folders(tmp_path / "cache") == [rebuilt.path]  # rebuilt in place, not beside the old one


def test_multi_output_loaders_pack_each_output_and_take_gives_the_same_structure(tmp_path):
    paths = make_files(tmp_path / "data", 12)
    packed = pack_samples(load_pair, paths, cache_dir=tmp_path / "cache", processes=0)
    images, labels = packed.data
    assert images.shape == (12, 4, 3) and labels.shape == (12,) and labels.dtype == np.int64
    x, y = packed.take([paths[5], paths[1]])
    np.testing.assert_array_equal(x, expected([paths[5], paths[1]]))
    assert y.tolist() == [2, 1]

    as_dict = pack_samples(load_dict, paths, cache_dir=tmp_path / "cache", processes=0)
    assert list(as_dict.data) == ["image", "mean"]
    out = as_dict.take([paths[3]])
    assert out["mean"].tolist() == [3.0] and out["image"].shape == (1, 4, 3)
    again = pack_samples(load_dict, paths, cache_dir=tmp_path / "cache", processes=0)
    assert again.reused and list(again.data) == ["image", "mean"]


def test_a_list_returned_by_the_loader_is_one_sample_not_several_outputs(tmp_path):
    with pytest.warns(UntrackedFilesWarning):  # keys that are numbers, and no file read
        packed = pack_samples(lambda key: [key, key + 1, key + 2], [1, 5, 9], cache_dir=tmp_path / "cache", processes=0)
    assert packed.take([5]).tolist() == [[5, 6, 7]]


# -- reuse and rebuilds --------------------------------------------------------------------------------


def test_an_unchanged_cache_is_reused_without_calling_the_loader(tmp_path):
    paths = make_files(tmp_path / "data", 10)
    first = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    second = pack_samples(load_npy, paths + paths[:2], cache_dir=tmp_path / "cache", processes=0)  # repeats: same keys
    assert second.reused and second.build is None and second.path == first.path
    assert len(calls(tmp_path / "data")) == 10  # no second call
    np.testing.assert_array_equal(second.data, expected(paths))

    reordered = pack_samples(load_npy, paths[::-1], cache_dir=tmp_path / "cache", processes=0)
    assert not reordered.reused and reordered.path != first.path  # another order is another cache
    np.testing.assert_array_equal(reordered.data, expected(paths[::-1]))


def test_a_file_changed_in_size_or_mtime_rebuilds(tmp_path):
    paths = make_files(tmp_path / "data", 10)
    pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    bump(paths[3], 33)
    rebuilt = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    assert not rebuilt.reused and rebuilt.take([paths[3]])[0, 0, 0] == 33
    np.save(paths[4], np.full((4, 3), 44, dtype=np.float32)[:2])  # another size
    assert pack_samples(load_npy, paths[:4], cache_dir=tmp_path / "cache", processes=0).take([paths[3]])[0, 0, 0] == 33
    assert not pack_samples(load_npy, paths[:4] + paths[5:], cache_dir=tmp_path / "cache", processes=0).reused


def test_hash_contents_sees_a_change_that_size_and_mtime_miss(tmp_path):
    paths = make_files(tmp_path / "data", 6)
    pack_samples(load_npy, paths, cache_dir=tmp_path / "plain", processes=0)
    pack_samples(load_npy, paths, cache_dir=tmp_path / "hashed", processes=0, hash_contents=True)
    before = os.stat(paths[2])
    np.save(paths[2], np.full((4, 3), 22, dtype=np.float32))  # same size...
    os.utime(paths[2], ns=(before.st_atime_ns, before.st_mtime_ns))  # ...and the old mtime put back

    stale = pack_samples(load_npy, paths, cache_dir=tmp_path / "plain", processes=0)
    assert stale.reused and stale.take([paths[2]])[0, 0, 0] == 2  # size + mtime cannot see it
    fresh = pack_samples(load_npy, paths, cache_dir=tmp_path / "hashed", processes=0, hash_contents=True)
    assert not fresh.reused and fresh.take([paths[2]])[0, 0, 0] == 22

    os.utime(paths[0])  # touched, contents unchanged: same contents, so reused
    assert pack_samples(load_npy, paths, cache_dir=tmp_path / "hashed", processes=0, hash_contents=True).reused


def test_a_change_to_the_loaders_code_rebuilds(tmp_path):
    paths = make_files(tmp_path / "data", 5)
    namespace_a, namespace_b = {"np": np}, {"np": np}
    exec("def load(path):\n    return np.load(path) + 1\n", namespace_a)
    exec("def load(path):\n    return np.load(path) + 2\n", namespace_b)  # same name, other code
    a = pack_samples(namespace_a["load"], paths, cache_dir=tmp_path / "cache", processes=0)
    b = pack_samples(namespace_b["load"], paths, cache_dir=tmp_path / "cache", processes=0)
    assert not b.reused and b.path != a.path and b.take([paths[1]])[0, 0, 0] == 3
    assert pack_samples(namespace_a["load"], paths, cache_dir=tmp_path / "cache", processes=0).reused


def test_a_change_to_a_constant_or_closure_value_the_loader_reads_rebuilds(tmp_path, monkeypatch):
    paths = make_files(tmp_path / "data", 5)
    assert pack_samples(load_scaled, paths, cache_dir=tmp_path / "cache", processes=0).take([paths[1]])[0, 0, 0] == 2
    monkeypatch.setattr(sys.modules[__name__], "SCALE", 3.0)
    tripled = pack_samples(load_scaled, paths, cache_dir=tmp_path / "cache", processes=0)
    assert not tripled.reused and tripled.take([paths[1]])[0, 0, 0] == 3

    assert pack_samples(scaled_by(5), paths, cache_dir=tmp_path / "cache", processes=0).take([paths[1]])[0, 0, 0] == 5
    assert pack_samples(scaled_by(5), paths, cache_dir=tmp_path / "cache", processes=0).reused
    seven = pack_samples(scaled_by(7), paths, cache_dir=tmp_path / "cache", processes=0)
    assert not seven.reused and seven.take([paths[1]])[0, 0, 0] == 7


class Generator:
    """A plain class with the per-sample method seqlint's fix writes: fingerprinted by what it reads."""

    def __init__(self, ids, root, scale):
        self.list_IDs, self.root, self.scale = ids, root, scale
        self.indexes = np.arange(len(ids))  # changes every epoch; the loader does not read it

    def _load_image(self, ID):
        return np.load(os.path.join(self.root, ID + ".npy")) * self.scale


def test_a_bound_method_is_fingerprinted_by_the_attributes_it_reads(tmp_path):
    make_files(tmp_path / "data", 6)
    ids = [f"{i:03d}" for i in range(6)]
    gen = Generator(ids, str(tmp_path / "data"), 1.0)
    assert not pack_samples(gen._load_image, ids, cache_dir=tmp_path / "cache", processes=0).reused
    gen.indexes = np.random.default_rng(0).permutation(6)  # what on_epoch_end does: not read, so reused
    assert pack_samples(gen._load_image, ids, cache_dir=tmp_path / "cache", processes=0).reused
    gen.scale = 10.0
    rebuilt = pack_samples(gen._load_image, ids, cache_dir=tmp_path / "cache", processes=0)
    assert not rebuilt.reused and rebuilt.take(["002"])[0, 0, 0] == 20


def test_relative_paths_opened_from_another_working_directory_rebuild(tmp_path, monkeypatch):
    make_files(tmp_path / "a" / "data", 3)
    make_files(tmp_path / "b" / "data", 3, dtype=np.float32)
    np.save(tmp_path / "b" / "data" / "001.npy", np.full((4, 3), 100, dtype=np.float32))
    loader = functools.partial(load_id, "data")  # relative to the working directory
    monkeypatch.chdir(tmp_path / "a")
    assert pack_samples(loader, ["001"], cache_dir=tmp_path / "cache", processes=0).take(["001"])[0, 0, 0] == 1
    monkeypatch.chdir(tmp_path / "b")
    other = pack_samples(loader, ["001"], cache_dir=tmp_path / "cache", processes=0)
    assert not other.reused and other.take(["001"])[0, 0, 0] == 100


# -- what no file tells: a warning rather than a cache kept for ever -----------------------------------


def make_png(path: Path, value: int) -> None:
    import cv2

    cv2.imwrite(str(path), np.full((5, 5, 3), value, dtype=np.uint8))


def read_with_opencv(root, ID):
    import cv2

    return cv2.imread(os.path.join(root, ID + ".png"))


@pytest.mark.parametrize("processes", [0, 2])
def test_files_opencv_opens_in_c_are_tracked_too(tmp_path, processes):
    """cv2.imread opens its file in C, where the audit hook cannot see it: seqkit.samples_c_opens
    announces it, in this process and in workers, so a changed image rebuilds the cache."""
    (tmp_path / "img").mkdir()
    for i in range(4):
        make_png(tmp_path / "img" / f"{i}.png", i * 10)
    ids = ["0", "1", "2", "3"]
    loader = functools.partial(read_with_opencv, str(tmp_path / "img"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrackedFilesWarning)
        first = pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=processes, progress=False)
        assert sorted(os.path.basename(f) for f in first.files) == ["0.png", "1.png", "2.png", "3.png"]
        assert pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=processes, progress=False).reused
        make_png(tmp_path / "img" / "2.png", 99)
        rebuilt = pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=processes, progress=False)
    assert not rebuilt.reused and rebuilt.take(["2"])[0, 0, 0, 0] == 99


def read_with_libc(root, ID):
    """A reader seqkit does not know, opening its file in C (the C library's fopen, through ctypes)."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.fopen.restype = ctypes.c_void_p
    handle = ctypes.c_void_p(libc.fopen(os.path.join(root, ID + ".bin").encode(), b"rb"))
    buffer = ctypes.create_string_buffer(8)
    libc.fread(buffer, 1, 8, handle)
    libc.fclose(handle)
    return np.frombuffer(buffer.raw, dtype=np.uint8).copy()


def test_files_opened_in_c_out_of_sight_warn_and_files_makes_them_tracked(tmp_path):
    (tmp_path / "raw").mkdir()
    for i in range(4):
        (tmp_path / "raw" / f"{i}.bin").write_bytes(bytes([i * 10] * 8))
    ids = ["0", "1", "2", "3"]
    loader = functools.partial(read_with_libc, str(tmp_path / "raw"))
    with pytest.warns(UntrackedFilesWarning, match=r"no file is known for any of the 4 keys.*OpenCV"):
        blind = pack_samples(loader, ids, cache_dir=tmp_path / "cache", processes=0)
    assert blind.files == [] and blind.take(["2"])[0, 0] == 20

    named = functools.partial(os.path.join, str(tmp_path / "raw"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrackedFilesWarning)
        tracked = pack_samples(loader, ids, files=lambda ID: named(ID + ".bin"), cache_dir=tmp_path / "cache", processes=0)
        (tmp_path / "raw" / "2.bin").write_bytes(bytes([99] * 8))
        rebuilt = pack_samples(loader, ids, files=lambda ID: named(ID + ".bin"), cache_dir=tmp_path / "cache", processes=0)
    assert len(tracked.files) == 4 and not rebuilt.reused and rebuilt.take(["2"])[0, 0] == 99


def test_keys_with_no_file_at_all_warn_on_every_call(tmp_path):
    with pytest.warns(UntrackedFilesWarning):
        pack_samples(np.arange, [3, 3, 3], cache_dir=tmp_path / "cache", processes=0)
    with pytest.warns(UntrackedFilesWarning):
        assert pack_samples(np.arange, [3], cache_dir=tmp_path / "cache", processes=0).reused


# -- unreadable files, ragged samples ------------------------------------------------------------------


def test_a_missing_file_raises_naming_the_key_and_the_path_and_leaves_nothing(tmp_path):
    paths = make_files(tmp_path / "data", 30)
    os.remove(paths[17])
    with pytest.raises(SampleLoadError, match=r"cannot load key .*017\.npy.*FileNotFoundError.*on_error='skip'") as info:
        pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    assert info.value.path == paths[17] and info.value.key == paths[17]
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert list((tmp_path / "cache").iterdir()) == []  # no dataset, no temp


def test_a_missing_file_with_skip_is_left_out_and_the_index_stays_consistent(tmp_path):
    paths = make_files(tmp_path / "data", 30)
    gone = [paths[0], paths[17]]
    for path in gone:
        os.remove(path)
    with pytest.warns(PackWarning, match=r"left out 2 of 30 keys.*000\.npy.*017\.npy"):
        packed = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0, on_error="skip")
    kept = [p for p in paths if p not in gone]
    assert packed.keys == kept and len(packed) == 28 and packed.data.shape == (28, 4, 3)
    assert [key for key, _ in packed.skipped] == gone and "No such file" in packed.skipped[1][1]
    assert packed.rows([paths[18], paths[1]]).tolist() == [16, 0]
    np.testing.assert_array_equal(packed.take([paths[29], paths[16]]), expected([paths[29], paths[16]]))
    with pytest.raises(KeyError, match=r"017\.npy' was skipped when the samples were packed \(reading .*017\.npy: FileNotFoundError"):
        packed.take([paths[1], paths[17]])

    with pytest.warns(PackWarning, match="left out 2"):  # reused: the warning again, the same index
        again = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0, on_error="skip")
    assert again.reused and again.keys == kept and again.skipped == packed.skipped
    with pytest.raises(SampleLoadError, match=r"000\.npy"):  # on_error="raise" does not accept the gaps
        pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)

    np.save(paths[17], np.full((4, 3), 17, dtype=np.float32))  # the file is back: rebuilt with it
    with pytest.warns(PackWarning, match="left out 1 of 30"):
        back = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0, on_error="skip")
    assert not back.reused and back.take([paths[17]])[0, 0, 0] == 17


def test_a_bug_in_the_loader_is_raised_even_with_skip(tmp_path):
    paths = make_files(tmp_path / "data", 4)
    with pytest.raises(SampleLoadError, match=r"AttributeError.*bug in the loader") as info:
        pack_samples(load_missing_attribute, paths, cache_dir=tmp_path / "cache", processes=0, on_error="skip")
    assert isinstance(info.value.__cause__, AttributeError)


def test_files_naming_a_missing_file_reports_it(tmp_path):
    paths = make_files(tmp_path / "data", 3)
    with pytest.raises(SampleLoadError, match=r"nowhere\.txt"):
        pack_samples(load_npy, paths, files=lambda key: [key, str(tmp_path / "nowhere.txt")], cache_dir=tmp_path / "c", processes=0)


def test_corrupt_files_unreadable_by_the_loader_are_reported_by_path(tmp_path):
    paths = make_files(tmp_path / "data", 5)
    Path(paths[2]).write_bytes(b"not an npy file")
    with pytest.raises(SampleLoadError, match=r"key '.*002\.npy' \(.*002\.npy\).*(ValueError|UnpicklingError)"):
        pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)


def test_samples_of_another_shape_or_dtype_name_the_first_key_that_differs_and_both(tmp_path):
    paths = make_files(tmp_path / "data", 30)
    message = r"key '.*013\.npy' gave shape \(3, 3\) float32, but the first key '.*000\.npy' gave shape \(4, 3\) float32"
    with pytest.raises(ValueError, match=message):
        pack_samples(load_ragged, paths, cache_dir=tmp_path / "cache", processes=0)
    with pytest.raises(ValueError, match=r"key '.*005\.npy' gave shape \(4, 3\) float64, but the first key '.*000\.npy' gave shape \(4, 3\) float32"):
        pack_samples(load_other_dtype, paths, cache_dir=tmp_path / "cache", processes=0)
    with pytest.raises(ValueError, match=r"key 1 returned one array, but the first key 0 returned a tuple of 2"):
        pack_samples(lambda k: (k, k) if k == 0 else k, [0, 1], cache_dir=tmp_path / "cache", processes=0)
    with pytest.raises(ValueError, match=r"key 'b' gave shape \(2,\) int64 for output\['x'\], but the first key 'a' gave shape \(1,\) int64"):
        pack_samples(lambda k: {"x": np.zeros(1 if k == "a" else 2, np.int64)}, ["a", "b"], cache_dir=tmp_path / "c", processes=0)
    assert temps(tmp_path / "cache") == [] and cache_folders(tmp_path / "cache") == []


def test_values_that_are_not_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"key 'a' cannot be packed: output is not numeric data \(object"):
        pack_samples(lambda k: object(), ["a"], cache_dir=tmp_path / "cache", processes=0)


# -- a damaged cache is found and rebuilt -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "files.json edited", "manifest removed"])
def test_a_damaged_cache_is_detected_and_rebuilt(tmp_path, damage):
    paths = make_files(tmp_path / "data", 10)
    folder = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0).path
    data = folder / "0.npy"
    if damage == "flipped byte":
        flip_data_byte(data)
    elif damage == "truncated":
        with open(data, "r+b") as f:
            f.truncate(data.stat().st_size - 12)
    elif damage == "files.json edited":
        text = (folder / "files.json").read_text()
        (folder / "files.json").write_text(text.replace(paths[0], paths[0] + "x", 1))
    else:
        (folder / "manifest.json").unlink()
    with pytest.warns(CacheWarning, match="damaged"):
        rebuilt = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0)
    assert not rebuilt.reused and rebuilt.path == folder
    np.testing.assert_array_equal(rebuilt.data, expected(paths))
    store.verify(folder)
    assert pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=0).reused


# -- an interrupted build: kill -9 -----------------------------------------------------------------------

KILLED_BUILD = """
import os, sys, time
from pathlib import Path
import numpy as np
import seqkit

def load(path):
    with open(sys.argv[3], "a") as log:   # which processes load: this one, and its workers
        log.write(f"{os.getpid()}\\n")
    if int(Path(path).stem) >= 200:
        Path(sys.argv[4]).touch()          # earlier chunks are written: the build is half done
        time.sleep(120)
    return np.load(path)

keys = sorted(str(p) for p in Path(sys.argv[1]).glob("*.npy"))
seqkit.pack_samples(load, keys, cache_dir=sys.argv[2], processes=2, progress=False)
"""


def test_a_build_killed_with_sigkill_is_never_used_its_workers_die_and_the_next_run_sweeps_it(tmp_path):
    paths = make_files(tmp_path / "data", 300)
    cache, log, started = tmp_path / "cache", tmp_path / "pids.log", tmp_path / "started"
    script = tmp_path / "killed.py"
    script.write_text(KILLED_BUILD)
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), str(cache), str(log), str(started)], stderr=subprocess.PIPE, text=True)

    def workers() -> set[int]:
        return {int(pid) for pid in log.read_text().split()} - {child.pid} if log.exists() else set()

    try:
        deadline = time.monotonic() + 120
        while not (started.exists() and workers()):  # half done, and worker processes are loading
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the build never got half way in worker processes"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    loaders = workers()
    [left] = temps(cache)
    assert temp_owner(left)[0] == child.pid and any((cache / left).iterdir())  # a real half-written build
    assert cache_folders(cache) == []  # nothing that could be taken for a cache
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in loaders):  # they die with their parent, even mid-sleep
        assert time.monotonic() < deadline, f"workers {loaders} outlived their killed parent"
        time.sleep(0.1)

    packed = pack_samples(load_npy, paths, cache_dir=cache, processes=0)  # the next run in that folder
    np.testing.assert_array_equal(packed.data, expected(paths))
    assert temps(cache) == [] and cache_folders(cache) == [packed.path]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- worker processes, threads, and scripts --------------------------------------------------------------


def test_worker_processes_give_the_same_pack_and_the_same_errors(tmp_path):
    paths = make_files(tmp_path / "data", 200)
    packed = pack_samples(load_pair, paths, cache_dir=tmp_path / "cache", processes=2, progress=False)
    assert packed.build.where == "processes" and packed.build.workers == 2
    np.testing.assert_array_equal(packed.data[0], expected(paths))
    assert set(packed.files) == set(paths)

    with pytest.raises(ValueError, match=r"key '.*013\.npy' gave shape \(3, 3\)"):  # in the probe
        pack_samples(load_ragged, paths, cache_dir=tmp_path / "cache", processes=2)
    shifted = [p for p in paths if not p.endswith("013.npy")] + [paths[13]]  # in a worker's chunk
    with pytest.raises(ValueError, match=r"key '.*013\.npy' gave shape \(3, 3\) float32, but the first key '.*000\.npy'"):
        pack_samples(load_ragged, shifted, cache_dir=tmp_path / "cache", processes=2)
    os.remove(paths[150])
    with pytest.raises(SampleLoadError, match=r"150\.npy") as info:
        pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=2)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.warns(PackWarning, match=r"150\.npy"):
        skipped = pack_samples(load_npy, paths, cache_dir=tmp_path / "cache", processes=2, on_error="skip")
    assert len(skipped) == 199 and skipped.build.where == "processes"
    assert temps(tmp_path / "cache") == []


PHANTOM = types.ModuleType("seqkit_test_phantom")  # importable here only: workers cannot import it
PHANTOM.OFFSET = 5
sys.modules[PHANTOM.__name__] = PHANTOM


def load_with_phantom(path):
    return np.load(path) + PHANTOM.OFFSET


def test_workers_that_cannot_load_the_loader_fall_back_to_threads_with_a_note(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(samples_run, "PENDING_BYTES", 0)  # this process does not help: it waits for the workers
    paths = make_files(tmp_path / "data", 40)
    packed = pack_samples(load_with_phantom, paths, cache_dir=tmp_path / "cache", processes=2)
    assert packed.build.where == "threads" and "worker processes could not start" in packed.build.note
    assert "threads" in capfd.readouterr().err
    np.testing.assert_array_equal(packed.data, expected(paths) + 5)


SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import seqkit

with open(sys.argv[3], "a") as runs:       # no `if __name__ == "__main__":` guard, as in tutorials
    runs.write("ran\\n")

OFFSET = 100

def load(path):
    return np.load(path) + OFFSET

class Scaler:                               # a class of the script: workers could not rebuild it
    k = 3

scaler = Scaler()

def load_scaled(path):
    return np.load(path) * scaler.k

keys = sorted(str(p) for p in Path(sys.argv[1]).glob("*.npy"))
loader = load_scaled if sys.argv[4] == "class" else load
packed = seqkit.pack_samples(loader, keys, cache_dir=sys.argv[2], processes=2)
print(packed.build.where, float(packed.take([keys[7]])[0, 0, 0]))
"""


@pytest.mark.parametrize(("kind", "where", "value"), [("function", "processes", 107.0), ("class", "threads", 21.0)])
def test_a_loader_defined_in_an_unguarded_script_never_runs_the_script_again(tmp_path, kind, where, value):
    make_files(tmp_path / "data", 120)
    script, runs = tmp_path / "train.py", tmp_path / "runs.log"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "data"), str(tmp_path / "cache"), str(runs), kind],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [where, str(value)]
    assert runs.read_text().split() == ["ran"]  # the script body ran once: in the script, not in workers
    if where == "threads":
        assert "loading in 2 threads, not processes" in done.stderr and "Scaler" in done.stderr


PARENT = os.getpid()  # a worker gets this value with the loader, and compares its own pid with it


def load_in_turns(path):
    """Workers leave a mark; after the probe, this process waits for one, so that both take part."""
    marker = Path(path).parent / "a-worker-loaded"
    if os.getpid() != PARENT:
        marker.touch()
    elif int(Path(path).stem) >= samples.PROBE_KEYS:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    with open(Path(path).parent / "calls.log", "a") as log:
        log.write(f"{path}\n")
    return np.array([os.getpid(), np.load(path)[0, 0]])


def test_this_process_loads_too_while_the_workers_start(tmp_path):
    paths = make_files(tmp_path / "data", 100)
    packed = pack_samples(load_in_turns, paths, cache_dir=tmp_path / "cache", processes=2, progress=False)
    rows = packed.take(paths)
    here = rows[:, 0] == os.getpid()
    assert packed.build.where == "processes" and packed.build.loaded_here == here.sum()
    assert samples.PROBE_KEYS < here.sum() < 100  # both took part...
    assert sorted(calls(tmp_path / "data")) == paths  # ...each key loaded once, by one of them
    assert rows[:, 1].tolist() == list(range(100))


def test_processes_none_stays_in_this_process_for_a_short_build(tmp_path):
    paths = make_files(tmp_path / "data", 30)
    assert pack_samples(load_npy, paths, cache_dir=tmp_path / "cache").build.where == "this process"


# -- progress, arguments, pickling ----------------------------------------------------------------------


def slow_load(key):
    time.sleep(0.004)
    return np.full(3, key)


def test_progress_is_a_plain_line_now_and_then_off_a_terminal_and_nothing_when_false(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(samples_progress, "PLAIN_INTERVAL", 0.05)
    monkeypatch.setattr(samples_progress, "DELAY", 0.0)
    with pytest.warns(UntrackedFilesWarning):
        pack_samples(slow_load, list(range(100)), cache_dir=tmp_path / "a", processes=0)
    lines = capfd.readouterr().err.splitlines()
    progress = [line for line in lines if "/100 keys (" in line]
    assert len(progress) >= 2 and progress[0].startswith("pack_samples slow_load: ")
    assert lines[-1].startswith("pack_samples slow_load: packed 100 keys in")

    with pytest.warns(UntrackedFilesWarning):
        pack_samples(slow_load, list(range(100)), cache_dir=tmp_path / "b", processes=0, progress=False)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"load": "np.load"}, TypeError, "load must be a function"),
        ({"keys": "000.npy"}, TypeError, "single string"),
        ({"keys": []}, ValueError, "keys is empty"),
        ({"keys": [[1], [2]]}, TypeError, r"keys\[0\] is \[1\], which is not hashable"),
        ({"keys": np.zeros((2, 2))}, ValueError, "one-dimensional"),
        ({"keys": 7}, TypeError, "sequence of keys"),
        ({"files": "a.npy"}, TypeError, "files must be a function"),
        ({"processes": -1}, ValueError, "processes must be a number >= 0"),
        ({"processes": True}, ValueError, "processes must be"),
        ({"on_error": "ignore"}, ValueError, "on_error must be 'raise' or 'skip'"),
        ({"hash_contents": "yes"}, TypeError, "hash_contents must be True or False"),
        ({"progress": "bar"}, TypeError, "progress must be None, True or False"),
        ({"cache_dir": 3}, TypeError, "cache_dir must be a path"),
    ],
)
def test_bad_arguments_are_refused_up_front_by_name(tmp_path, kwargs, error, match):
    arguments = {"load": np.load, "keys": ["a"], "cache_dir": tmp_path / "cache", **kwargs}
    with pytest.raises(error, match=match):
        pack_samples(arguments.pop("load"), arguments.pop("keys"), **arguments)
    assert not (tmp_path / "cache").exists() or cache_folders(tmp_path / "cache") == []


def test_cache_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="cache_dir .* is a file"):
        pack_samples(np.arange, [1], cache_dir=tmp_path / "file")


def test_the_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEQKIT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "seqkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "seqkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")
    assert default_cache_dir() == tmp_path / "home" / "xdg" / "seqkit"
    monkeypatch.setenv("SEQKIT_CACHE_DIR", "~/mine")
    assert default_cache_dir() == tmp_path / "home" / "mine"
    with pytest.warns(UntrackedFilesWarning):
        packed = pack_samples(np.arange, [2], processes=0)
    assert packed.path.parent == tmp_path / "home" / "mine"


def test_pickling_maps_the_same_files_again(tmp_path):
    paths = make_files(tmp_path / "data", 8)
    packed = pack_samples(load_pair, paths, cache_dir=tmp_path / "cache", processes=0)
    blob = pickle.dumps(packed)
    assert len(blob) < 4096  # the path and the keys, not the data
    copy = pickle.loads(blob)
    assert isinstance(copy, PackedSamples) and copy.keys == packed.keys
    np.testing.assert_array_equal(copy.take(paths[::-1])[0], expected(paths[::-1]))


def test_exported_from_the_package():
    assert seqkit.pack_samples is pack_samples


def test_the_readme_example_runs_as_written(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Your own per-sample loader, run once: `pack_samples`", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    make_files(tmp_path / "data", 12)
    (tmp_path / "example.py").write_text(example)
    env = {**os.environ, "SEQKIT_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(cache_folders(tmp_path / "cache")) == 1
