"""Issue 13 §2: large arrays of the wrapped dataset reach the workers through shared memory or their own
file, never pickled into every worker; each worker still sees its own copy-on-write copy.

Workers unpickle the datasets below by importing this module: numpy and the standard library only here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

MIB = 1 << 20


def mp():
    from seqkit import multiprocess

    return multiprocess


# ---- what a worker reports about itself --------------------------------------------------------


def mapping_of(array: np.ndarray) -> str:
    """The file (or shared-memory segment) this process maps `array`'s first byte from, per /proc."""
    address = array.__array_interface__["data"][0]
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            start, end = (int(part, 16) for part in fields[0].split("-"))
            if start <= address < end:
                return fields[5].strip() if len(fields) > 5 else "[anonymous]"
    return "[unknown]"


def private_memory_bytes() -> int:
    """This process's anonymous resident memory: what a pickled copy of an array would add to."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


class Holds:
    """Serves rows of its first array, and reports how the worker holds each of them."""

    def __init__(self, **arrays):
        self.arrays = arrays
        self.n = 4

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        name, array = next(iter(self.arrays.items()))
        return np.asarray(array[index : index + 2]).copy()

    def report(self):
        return {name: (mapping_of(array), bool(array.flags.writeable)) for name, array in self.arrays.items()}


class Reporting:
    """A callable dataset wrapping `Holds`: each batch is (rows, the worker's report on its arrays)."""

    def __init__(self, holds):
        self.holds = holds

    def __len__(self):
        return 2

    def __call__(self, index):
        info = [repr(self.holds.report()), str(private_memory_bytes())]
        return self.holds[index], np.array(info, dtype="U4096")


class Writes:
    """Writes into its own array in every batch (a cache, say): that must stay in its worker."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return 3

    def __getitem__(self, index):
        value = self.x[:4].copy()
        self.x[index] = -1.0
        return value


class Grows:
    """Its epoch hook replaces a large array: the new one is shared too, not pickled."""

    def __init__(self):
        self.x = np.zeros(2 * MIB // 8)

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.array([self.x[0], float("/dev/shm/" in mapping_of(self.x))])

    def on_epoch_end(self):
        self.x = self.x + 1


def worker_report(dataset_holds):
    with mp().MultiprocessSequence(Reporting(dataset_holds), workers=1) as seq:
        batch, (text, private) = seq[0]
        seq[1]
        names_alive = [name for name in os.listdir("/dev/shm") if name.startswith(f"seqkit_{os.getpid()}_") and "_a" in name]
    return eval(str(text)), int(private), names_alive, batch  # noqa: S307  (our own repr of a dict of tuples)


# ---- tests ------------------------------------------------------------------------------------------


def test_large_array_is_shared_not_pickled_into_the_worker():
    x = np.arange(128 * MIB // 4, dtype=np.float32).reshape(-1, 256)
    small = np.arange(10)
    mapped, private, names_alive, batch = worker_report(Holds(x=x, small=small))
    # The worker maps the parent's one copy (a segment already unlinked: every worker has it mapped).
    assert mapped["x"][0].startswith("/dev/shm/seqkit_") and mapped["x"][0].endswith("(deleted)")
    assert names_alive == []
    assert mapped["x"][1] is True  # writable, as the parent's is (copy-on-write, see below)
    assert mapped["small"][0] == "[anonymous]" or "heap" in mapped["small"][0]  # small ones are pickled
    # An unpickled copy would be 128 MiB of private memory in the worker (numpy itself takes ~30).
    assert private < 64 * MIB
    np.testing.assert_array_equal(batch, x[0:2])


def test_memmap_and_views_of_it_are_mapped_again_from_their_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(8 * MIB // 8, dtype=np.float64).reshape(-1, 128))
    whole = np.load(path, mmap_mode="r")
    view = np.asarray(whole)[100:, ::2]  # a plain ndarray, strided, deep inside the file
    mapped, private, _, batch = worker_report(Holds(view=view, whole=whole))
    assert mapped["view"] == (str(path), False) and mapped["whole"] == (str(path), False)
    np.testing.assert_array_equal(batch, view[0:2])


def test_memmap_whose_file_was_replaced_is_shared_from_the_parent_not_reread(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.full((MIB // 8, 2), 1.0))
    x = np.load(path, mmap_mode="r")
    replacement = tmp_path / "new.npy"
    np.save(replacement, np.full((MIB // 8, 2), 2.0))
    os.replace(replacement, path)  # e.g. a pack rebuilt while this dataset is open
    mapped, _, _, batch = worker_report(Holds(x=x))
    assert mapped["x"][0].startswith("/dev/shm/")
    assert (batch == 1.0).all()  # what the parent sees, not the new file


def test_copy_on_write_memmap_reaches_the_workers_with_the_parents_changes(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((MIB // 8, 2)))
    x = np.load(path, mmap_mode="c")
    x[0] = 7.0  # in the parent's private pages only, not in the file
    mapped, _, _, batch = worker_report(Holds(x=x))
    assert mapped["x"][0].startswith("/dev/shm/")
    assert batch[0].tolist() == [7.0, 7.0]


def test_read_only_stays_read_only_and_writes_stay_in_their_worker():
    frozen = np.ones(2 * MIB // 8)
    frozen.flags.writeable = False
    mapped, _, _, _ = worker_report(Holds(frozen=frozen))
    assert mapped["frozen"][1] is False

    x = np.arange(2 * MIB // 8, dtype=np.float64)
    with mp().MultiprocessSequence(Writes(x), workers=1, prefetch=1) as seq:
        first, second = seq[0], seq[1]
    assert first.tolist() == [0, 1, 2, 3]
    assert second.tolist() == [-1, 1, 2, 3]  # the worker sees its own write, as with its own copy
    assert x[0] == 0  # the parent's array is untouched


def test_large_array_replaced_by_an_epoch_hook_is_shared_too():
    with mp().MultiprocessSequence(Grows(), workers=1, seed=0) as seq:
        for epoch in range(3):
            value, on_shm = seq[0]
            assert value == epoch and on_shm == 1.0
            seq[1]
            seq.on_epoch_end()


def test_one_segment_per_array_however_often_it_is_referenced():
    from seqkit import sharing

    x = np.zeros(2 * MIB, np.uint8)
    shared = sharing.SharedArrays(f"seqkit_{os.getpid()}_test")
    try:
        sharing.dumps({"a": x, "b": x, "c": [x, x[:]]}, shared)
        # x[:] is a new view object of the same bytes: deduplicated by address, not identity.
        assert len(shared.names) == 1
    finally:
        shared.unlink()
    assert not Path("/dev/shm", f"seqkit_{os.getpid()}_test_a0").exists()


def test_no_room_in_dev_shm_falls_back_to_pickling_with_a_warning(monkeypatch):
    from seqkit import sharing

    def full(size):
        raise MemoryError("/dev/shm has 0 MiB free")

    monkeypatch.setattr(sharing, "check_room", full)  # /dev/shm here is 24 GB: nothing real fills it
    x = np.arange(2 * MIB // 8, dtype=np.float64)
    with pytest.warns(RuntimeWarning, match=r"pickled to every worker instead of shared: /dev/shm has 0 MiB free"):
        mapped, _, _, batch = worker_report(Holds(x=x))
    assert not mapped["x"][0].startswith("/dev/shm")
    np.testing.assert_array_equal(batch, x[0:2])


def test_every_layout_comes_back_equal_through_shared_memory():
    import pickle

    from seqkit import sharing

    base = np.arange(8 * MIB // 8, dtype=np.float64).reshape(-1, 128)
    records = np.zeros(MIB, dtype=[("a", np.int32), ("b", np.float32)])
    records["a"] = np.arange(MIB)
    frozen = base.copy()
    frozen.flags.writeable = False
    arrays = {
        "c": base,
        "fortran": np.asfortranarray(base),
        "strided": base[::3, 1::2],
        "reversed": base[::-1],
        "records": records,
        "frozen": frozen,
    }
    shared = sharing.SharedArrays(f"seqkit_{os.getpid()}_layouts")
    try:
        back = pickle.loads(sharing.dumps(arrays, shared))
        assert len(shared.names) == len(arrays)
    finally:
        shared.unlink()
    for name, array in arrays.items():
        np.testing.assert_array_equal(back[name], array, err_msg=name)
        assert back[name].dtype == array.dtype and back[name].flags.writeable == array.flags.writeable, name
        assert mapping_of(back[name]).startswith("/dev/shm/"), name
