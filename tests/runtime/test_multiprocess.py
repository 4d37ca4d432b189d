"""MultiprocessSequence with real worker processes, real shared memory and a real model.fit.

Workers unpickle the datasets below by importing this module, so it imports only numpy and pytest at the
top: seqkit.multiprocess (which imports Keras) is imported inside the tests, and the one dataset that
must subclass keras.utils.PyDataset is built on first access through the module's __getattr__.
"""

from __future__ import annotations

import ctypes
import gc
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from seqkit.seeding import batch_rng

REPO = Path(__file__).resolve().parents[2]


def mp():
    from seqkit import multiprocess

    return multiprocess


# ---- datasets (module level: pickled to the workers) ----------------------------------------------


class Numbers:
    """Nested batches (dict + labels, three dtypes, a short last batch) drawing on the batch generator;
    on_epoch_end reorders the samples, state the workers must see."""

    def __init__(self, n=45, batch_size=8):
        self.n = n
        self.batch_size = batch_size
        self.order = np.arange(n)
        self.epochs_seen = 0

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __getitem__(self, index, rng=None):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        noise = rng.standard_normal((len(rows), 3)).astype(np.float32)
        x = rows.astype(np.float32)[:, None] + noise
        return {"x": x, "rows": rows}, (rows % 3).astype(np.uint8)

    def on_epoch_end(self):
        self.epochs_seen += 1
        self.order = np.random.default_rng(self.epochs_seen).permutation(self.n)


class Growing:
    """Every batch is larger than the one before, so slots must grow again and again."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return np.full((index + 1, 3000), index, dtype=np.float64), np.arange(index + 1)


class Big:
    """Batches large enough to be lent to the caller rather than copied (labels stay small)."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return np.full((64, 1024), index, np.float64), np.full(64, index, np.int32)


class Faulty:
    def __init__(self, fault, at=3, n=8):
        self.fault, self.at, self.n = fault, at, n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.at:
            if self.fault == "raise":
                raise ValueError(f"bad sample in batch {index}")
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fault == "abort":
                os.abort()
            if self.fault == "segfault":
                ctypes.string_at(0)
            if self.fault == "not-array":
                return np.zeros((2, 3)), ["cat", "dog"]
            if self.fault == "structure":
                return np.zeros((2, 3))
        return np.zeros((2, 3)), np.ones(2)


class Slow:
    def __len__(self):
        return 1000

    def __getitem__(self, index):
        time.sleep(0.05)
        return np.full((4, 4), index, np.float32)


def squares(index, rng):
    return np.arange(index, index + 4, dtype=np.int32) ** 2, rng.integers(0, 100, 4)


def triple(index):
    return np.full(3, index * 3, np.int16)


class Lengthy:
    """A callable with a length: the third accepted input form."""

    def __len__(self):
        return 5

    def __call__(self, index):
        return np.full(2, index, np.float32)


class Declared(Numbers):
    """Lists the attribute its hook changes; an undeclared change must not reach the workers."""

    seqkit_epoch_state = ("order",)

    def on_epoch_end(self):
        super().on_epoch_end()
        self.batch_size = 1  # undeclared on purpose


class WithHandle:
    """Custom pickling, like datasets holding files or locks: the handle is rebuilt on arrival."""

    def __init__(self):
        self.offset = 0
        self.handle = threading.Lock()

    def __getstate__(self):
        return {"offset": self.offset}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.handle = threading.Lock()

    def __len__(self):
        return 4

    def __getitem__(self, index):
        assert isinstance(self.handle, type(threading.Lock()))
        return np.full(3, index + self.offset, np.int64)

    def on_epoch_end(self):
        self.offset += 10


class Augmenting:
    """What the README's `MyAugmentingDataset(...)` stands for: samples shuffled per epoch by its own
    hook, random augmentation from the batch generator."""

    def __init__(self, n=96, batch_size=16):
        self.x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
        self.batch_size = batch_size
        self.order = np.arange(n)
        self.epoch = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index, rng=None):
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        x = self.x[rows] + rng.normal(0, 0.01, (len(rows), 1)).astype(np.float32)
        return x, 2 * x + 1

    def on_epoch_end(self):
        self.epoch += 1
        self.order = np.random.default_rng(self.epoch).permutation(len(self.x))


class Unloadable(Lengthy):
    """Pickles in the parent but cannot be rebuilt in a worker."""

    def __init__(self):
        self.device = "gpu:0"

    def __setstate__(self, state):
        raise RuntimeError("needs a GPU handle that only the parent has")


def __getattr__(name):
    # Built on first use so that importing this module (as every worker does) does not import Keras.
    if name == "Regression":
        import keras

        class Regression(keras.utils.PyDataset):
            """y = 2x + 1 on inputs from the batch generator; the sample weights carry the epoch count
            in a digit too small to change the loss."""

            def __init__(self, batches=6, batch_size=16, **kwargs):
                super().__init__(**kwargs)
                self.batches, self.batch_size, self.epochs = batches, batch_size, 0

            def __len__(self):
                return self.batches

            def __getitem__(self, index, rng=None):
                x = rng.uniform(-1, 1, (self.batch_size, 1)).astype(np.float32)
                weights = np.full(self.batch_size, 1.0 + 1e-3 * self.epochs, np.float32)
                return x, 2 * x + 1, weights

            def on_epoch_end(self):
                self.epochs += 1

        Regression.__module__, Regression.__qualname__ = __name__, name
        globals()[name] = Regression
        return Regression
    raise AttributeError(name)


# ---- helpers ----------------------------------------------------------------------------------------


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def reference(dataset, seed, epochs):
    """What the dataset gives in this process with the documented generators, epoch by epoch."""
    out = []
    for epoch in range(epochs):
        out.append([dataset.__getitem__(i, rng=batch_rng(seed, epoch, i)) for i in range(len(dataset))])
        dataset.on_epoch_end()
    return out


def run_epochs(seq, epochs):
    out = []
    for _ in range(epochs):
        out.append([seq[i] for i in range(len(seq))])
        seq.on_epoch_end()
    return out


def our_segments():
    prefix = f"seqkit_{os.getpid()}_"
    return [name for name in os.listdir("/dev/shm") if name.startswith(prefix)]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def assert_clean(pids=()):
    # Only our workers: other tests in the same session may have their own children winding down.
    assert [p for p in multiprocessing.active_children() if p.name.startswith("seqkit-worker")] == []
    assert our_segments() == []
    assert [pid for pid in pids if alive(pid)] == []


# ---- order, content, reproducibility ---------------------------------------------------------------


def test_order_content_and_epoch_state_over_two_epochs():
    with mp().MultiprocessSequence(Numbers(), workers=2, seed=7) as seq:
        got = run_epochs(seq, 2)
        pids = seq.worker_pids
        assert len(pids) == 2
        # The slot ring is reused: `prefetch` segments plus two spares for batches the caller holds
        # exist, whatever the number of batches.
        assert 0 < len(our_segments()) <= 4 + 2
    assert_same(got, reference(Numbers(), 7, 2))
    assert_clean(pids)


@pytest.mark.slow
def test_same_batches_with_1_2_4_workers_and_spawn():
    expected = reference(Numbers(), 3, 2)
    for workers, start_method in [(0, None), (1, None), (2, "spawn"), (4, None)]:
        with mp().MultiprocessSequence(Numbers(), workers=workers, seed=3, start_method=start_method) as seq:
            assert_same(run_epochs(seq, 2), expected)
    assert_clean()


def test_random_access_after_and_between_sequential_reads():
    dataset = Numbers()
    expected = reference(Numbers(), 11, 1)[0]
    with mp().MultiprocessSequence(dataset, workers=2, prefetch=3, seed=11) as seq:
        for index in [4, 0, 1, 2, 5, 3, 3, 0, 1, 2, 3, 4, 5]:
            assert_same(seq[index], expected[index])
        with pytest.raises(IndexError, match="out of range"):
            seq[len(seq)]
    assert_clean()


def test_function_inputs():
    with mp().MultiprocessSequence((squares, 6), workers=2, seed=5) as seq:
        assert len(seq) == 6
        # No epoch hooks: the next epoch's first batches are computed ahead, with that epoch's streams.
        for epoch in range(3):
            for i in range(6):
                assert_same(seq[i], squares(i, batch_rng(5, epoch, i)))
            seq.on_epoch_end()
    with mp().MultiprocessSequence((triple, 4), workers=1) as seq:
        assert_same([seq[i] for i in range(4)], [triple(i) for i in range(4)])
    with mp().MultiprocessSequence(Lengthy(), workers=1) as seq:
        assert len(seq) == 5 and seq[4].tolist() == [4.0, 4.0]
    with pytest.raises(TypeError, match="needs a length"):
        mp().MultiprocessSequence(triple)
    with pytest.raises(TypeError, match="picklable"):
        mp().MultiprocessSequence((lambda i: np.zeros(1), 2), workers=1)[0]
    assert_clean()


def test_slots_grow_with_larger_batches():
    with mp().MultiprocessSequence(Growing(), workers=2, prefetch=2) as seq:
        for _ in range(2):
            for i in range(len(seq)):
                assert_same(seq[i], Growing()[i])
            seq.on_epoch_end()
        assert len(our_segments()) <= 2 + 2
    assert_clean()


def test_batches_held_by_the_caller_are_never_overwritten():
    prefetch = 3
    seq = mp().MultiprocessSequence(Big(), workers=2, prefetch=prefetch)
    held = [seq[i] for i in range(len(seq))]
    seq.on_epoch_end()
    for _ in range(2):  # workers keep writing into the ring meanwhile
        for i in range(len(seq)):
            assert seq[i][0][0, 0] == i
    for i, (x, y) in enumerate(held):
        assert (x == i).all() and (y == i).all()
        x[:] = -1  # the caller's to write, too
    assert len(our_segments()) >= len(held)
    del held, x, y
    gc.collect()
    for i in range(len(seq)):  # slots come back; the ones beyond the ring and its spares are unlinked
        seq[i]
    # prefetch slots, 2 spares, and one more the next epoch's prefetch may have needed meanwhile.
    assert len(our_segments()) <= prefetch + 3 < len(Big())
    kept = seq[4]
    seq.close()
    assert_clean()
    assert (kept[0] == 4).all()  # still readable after the segment's name is gone


def test_declared_epoch_state_is_all_that_is_sent():
    with mp().MultiprocessSequence(Declared(), workers=1, seed=2) as seq:
        run_epochs(seq, 1)
        # The parent's dataset now has batch_size 1, but only `order` was declared: workers keep 8 rows.
        batch = seq[0]
    expected = Numbers()
    expected.on_epoch_end()
    assert_same(batch, expected.__getitem__(0, rng=batch_rng(2, 1, 0)))
    assert_clean()


def test_epoch_state_of_a_dataset_with_custom_pickling():
    with mp().MultiprocessSequence(WithHandle(), workers=2) as seq:
        for epoch in range(3):
            assert [seq[i].tolist() for i in range(len(seq))] == [[i + 10 * epoch] * 3 for i in range(4)]
            seq.on_epoch_end()
    assert_clean()


@pytest.mark.slow
def test_wraps_a_shuffled_memmap_sequence(tmp_path):
    from seqkit import MemmapSequence

    x = np.arange(70 * 3, dtype=np.float32).reshape(70, 3)
    y = np.arange(70, dtype=np.int64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)

    def make():
        return MemmapSequence(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), batch_size=16, shuffle=True, seed=4)

    expected = make()
    with mp().MultiprocessSequence(make(), workers=2) as seq:
        for _ in range(2):
            for i in range(len(seq)):
                assert_same(seq[i], expected[i])
            seq.on_epoch_end()
            expected.on_epoch_end()
    assert_clean()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="workers"):
        mp().MultiprocessSequence(Numbers(), workers=-1)
    with pytest.raises(ValueError, match="prefetch"):
        mp().MultiprocessSequence(Numbers(), prefetch=0)
    with pytest.raises(ValueError, match="start_method"):
        mp().MultiprocessSequence(Numbers(), start_method="thread")
    with pytest.raises(ValueError, match="seed"):
        mp().MultiprocessSequence(Numbers(), seed=-3)
    with pytest.raises(TypeError, match="dataset_or_fn"):
        mp().MultiprocessSequence(42)


# ---- faults -----------------------------------------------------------------------------------------


def test_worker_exception_is_raised_with_traceback_and_index():
    seq = mp().MultiprocessSequence(Faulty("raise"), workers=2)
    with pytest.raises(mp().WorkerError) as caught:
        for i in range(len(seq)):
            seq[i]
    error = caught.value
    assert error.index == 3 and "batch 3" in str(error)
    assert "in __getitem__" in error.worker_traceback and "bad sample in batch 3" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert_clean()
    # A failure stops the pool, it does not poison the object: the next call starts new workers.
    assert_same(seq[0], Faulty("raise")[0])
    seq.close()
    assert_clean()


@pytest.mark.parametrize(
    ("fault", "how"), [("kill", "SIGKILL"), ("abort", "SIGABRT"), ("segfault", "SIGSEGV")]
)
def test_dying_worker_is_reported_not_waited_for(fault, how):
    # prefetch=2: batch 0 can only bring batches 1 and 2 into flight, not the fatal one.
    seq = mp().MultiprocessSequence(Faulty(fault, at=6, n=10), workers=2, prefetch=2)
    seq[0]
    pids = seq.worker_pids
    with pytest.raises(mp().WorkerError, match=f"died with signal {how}.*batch 6"):
        for i in range(1, len(seq)):
            seq[i]
    assert_clean(pids)


def test_dataset_that_cannot_be_loaded_in_a_worker():
    seq = mp().MultiprocessSequence(Unloadable(), workers=2)
    with pytest.raises(mp().WorkerError, match="failed to start.*could not unpickle.*only the parent has"):
        seq[0]
    assert_clean()


def test_batch_that_is_not_arrays():
    with mp().MultiprocessSequence(Faulty("not-array", at=0), workers=1) as seq:
        with pytest.raises(mp().WorkerError, match=r"batch\[1\]\[0\] is a str, not a numpy array"):
            seq[0]
    assert_clean()


def test_structure_change_between_batches():
    with mp().MultiprocessSequence(Faulty("structure", at=2), workers=1) as seq:
        seq[0]
        seq[1]
        with pytest.raises(ValueError, match=r"batch 2 does not have the structure of batch 0"):
            seq[2]
        seq[3]  # the pool is still usable
    assert_clean()


def test_interrupt_while_waiting_leaves_nothing_behind():
    seq = mp().MultiprocessSequence(Slow(), workers=2)
    seq[0]
    pids = seq.worker_pids

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            for i in range(1, len(seq)):
                seq[i]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert_clean(pids)


def test_close_and_garbage_collection_stop_workers():
    seq = mp().MultiprocessSequence(Slow(), workers=2)
    seq[0]
    pids = seq.worker_pids
    seq.close()
    assert seq.worker_pids == []
    assert_clean(pids)
    seq[1]
    pids = seq.worker_pids
    del seq
    gc.collect()
    assert_clean(pids)


def test_segment_half_created_by_a_stopped_worker_is_removed():
    seq = mp().MultiprocessSequence(Big(), workers=1)
    seq[0]
    # What a worker stopped between creating a segment and sizing it leaves behind (seen in a run).
    Path(f"/dev/shm/{seq._pool.ring.prefix}_9_99").touch()
    seq.close()
    assert_clean()


SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, signal, sys, time
    import numpy as np

    # A script started from a terminal gets Ctrl-C as KeyboardInterrupt. A process started by the test
    # runner inherits the runner's SIGINT disposition and signal mask, which a library loaded in the
    # runner may have changed (ignored or blocked): then the Ctrl-C below would never arrive.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def interrupted(signum, frame):
        # Python's own handler, after leaving a mark that the signal got here (see the test)
        open(sys.argv[2], "a").close()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, interrupted)

    class Slow:
        def __len__(self):
            return 1000

        def __getitem__(self, index):
            time.sleep(0.05)
            return np.full((64, 64), index, np.float32)

    if __name__ == "__main__":
        from seqkit.multiprocess import MultiprocessSequence

        seq = MultiprocessSequence(Slow(), workers=2)
        seq[0]
        print(json.dumps({"pids": seq.worker_pids, "prefix": f"seqkit_{os.getpid()}_"}), flush=True)
        if sys.argv[1] in ("interrupt", "killed"):
            try:
                for i in range(1, len(seq)):
                    seq[i]
            except KeyboardInterrupt:
                left = [n for n in os.listdir("/dev/shm") if n.startswith(f"seqkit_{os.getpid()}_")]
                print(json.dumps({"children": len(multiprocessing.active_children()), "segments": left}))
                raise
        # "exit": leave without close(); the interpreter's exit must clean up
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["interrupt", "exit", "killed"])
def test_real_ctrl_c_plain_exit_and_killed_parent_in_a_script(tmp_path, mode):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    runner = f"runner SIGINT {signal.getsignal(signal.SIGINT)!r}, blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])}"
    seen = tmp_path / "sigint-seen"
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, str(seen)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,  # its own process group, which Ctrl-C signals as a whole
    )
    started = json.loads(proc.stdout.readline())
    if mode == "interrupt":
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        # Ctrl-C pressed again when the first one never reached the script's handler: on this shared
        # machine a SIGINT was twice not delivered at all (the script ran to its end, exit 0), which is
        # not seqkit's doing (the parent never ignores or blocks SIGINT). One that reached the handler
        # but did not stop the loop would be seqkit's: that fails below, as before.
        for _ in range(3):
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                if seen.exists():
                    break
                os.killpg(proc.pid, signal.SIGINT)
    if mode == "killed":  # no cleanup code runs: workers see their pipe close, the resource tracker
        time.sleep(0.3)  # unlinks the segments once they are gone
        proc.kill()
    out, err = proc.communicate(timeout=60)
    if mode == "interrupt":
        assert "KeyboardInterrupt" in err, f"exit code {proc.returncode}; {runner}; stdout {out!r}; stderr {err[-2000:]!r}"
        assert json.loads(out.splitlines()[-1]) == {"children": 0, "segments": []}
    if mode == "exit":
        assert proc.returncode == 0, err
        assert "leaked" not in err

    def leftovers():
        return [pid for pid in started["pids"] if alive(pid)] + [
            name for name in os.listdir("/dev/shm") if name.startswith(started["prefix"])
        ]

    deadline = time.monotonic() + (10 if mode == "killed" else 0)
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers() == []


# ---- model.fit ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_model_fit_two_epochs_with_a_keras_pydataset():
    import keras

    from seqkit import MultiprocessSequence

    dataset = sys.modules[__name__].Regression()  # through __getattr__, as the workers will
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    with MultiprocessSequence(dataset, workers=2, seed=0) as seq:
        assert isinstance(seq, keras.utils.PyDataset)
        history = model.fit(seq, epochs=2, shuffle=False, verbose=0)
        # The hook ran in the parent, where the state lives, each time Keras called it (Keras also
        # calls on_epoch_end once more when it resets its epoch iterator).
        assert dataset.epochs == seq.epoch >= 2
        pids = seq.worker_pids
        # Computed by a worker after fit: it saw every on_epoch_end.
        np.testing.assert_array_equal(seq[0][2], np.full(16, 1.0 + 1e-3 * dataset.epochs, np.float32))
    losses = history.history["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert_clean(pids)


@pytest.mark.slow
def test_readme_example_fits_without_warning_and_keeps_prefetch(tiny_model):
    """Issue 13 §5: under fit's default shuffle=True, Keras' PyDatasetAdapter reorders the batch
    indices with random.shuffle every epoch, so no batch can be computed ahead (and the class warns).
    The README example passes shuffle=False; the dataset shuffles its samples itself."""
    import warnings

    from seqkit import MultiprocessSequence

    epochs = 3
    model = tiny_model((1,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with MultiprocessSequence(Augmenting(), workers=2, seed=0) as train:  # as in the README
            model.fit(train, epochs=epochs, shuffle=False, verbose=0)
            stats = train.stats
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert stats["out_of_order"] == 0
    # Every batch but the first of each epoch was computed ahead (an epoch hook may change the next
    # epoch's batches, so nothing is computed across the boundary).
    assert stats["prefetched"] >= stats["batches"] - epochs - 1 > 0

    model = tiny_model((1,))
    with pytest.warns(RuntimeWarning, match="shuffle=False"):
        with MultiprocessSequence(Augmenting(n=320), workers=2, seed=0) as train:
            model.fit(train, epochs=2, verbose=0)  # fit's default shuffle=True
            stats = train.stats
    assert stats["out_of_order"] > 0 and stats["prefetched"] < stats["batches"] // 2
