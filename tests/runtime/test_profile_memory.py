"""seqkit.profile's memory pass: peak growth per batch, memory kept per batch, and views that pin arrays."""

from __future__ import annotations

import numpy as np

from seqkit.profiling import profile


class Batches:
    def __init__(self, n_batches=6, rows=64, features=1024):
        self.n_batches, self.rows, self.features = n_batches, rows, features
        self.kept = []

    def __len__(self):
        return self.n_batches


class ViewOfTemporary(Batches):
    """Builds a big array per batch and returns a small view of it: the view keeps it alive."""

    def __getitem__(self, index):
        big = np.full((self.rows * 16, self.features), float(index), dtype=np.float32)
        return big[: self.rows], np.zeros(self.rows, np.float32)


class ViewOfOwnData(Batches):
    def __init__(self):
        super().__init__()
        self.x = np.ones((self.rows * 16, self.features), dtype=np.float32)

    def __getitem__(self, index):
        return self.x[: self.rows], np.zeros(self.rows, np.float32)


class Leaky(Batches):
    """Keeps a copy of every batch it makes (a cache that grows)."""

    def __getitem__(self, index):
        batch = np.full((self.rows, self.features), float(index), dtype=np.float32)
        self.kept.append(batch.copy())
        return batch


def test_a_view_of_a_temporary_array_is_flagged():
    report = profile(ViewOfTemporary(), batches=4, workers=None, lines=False)
    mem = report.memory
    assert mem.keeps_big_array_alive
    view = next(v for v in mem.views if v.leaf == "batch[0]")
    assert view.base_owner == "temporary" and view.base_nbytes == 16 * view.nbytes
    assert mem.peak_growth_mean >= view.base_nbytes  # the big array existed while the batch was made
    assert any("view of a" in item for item in report.advice())


def test_a_view_of_the_datasets_own_array_is_not_flagged():
    report = profile(ViewOfOwnData(), batches=4, workers=None, lines=False)
    (view,) = [v for v in report.memory.views if v.leaf == "batch[0]"]
    assert view.base_owner == "dataset"
    assert not report.memory.keeps_big_array_alive


def test_memory_kept_per_batch_is_measured():
    report = profile(Leaky(), batches=4, workers=None, lines=False)
    mem = report.memory
    batch = 64 * 1024 * 4
    assert mem.batch_bytes == batch
    assert 0.9 * batch <= mem.retained_per_batch <= 1.5 * batch
    assert any("keeps" in item and "per batch" in item for item in report.advice())
