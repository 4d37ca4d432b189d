"""MultiprocessSequence: run a PyDataset (or a function) in persistent worker processes.

Why not Keras' own `use_multiprocessing=True`: it starts a new pool every epoch and pickles every batch
back through a pipe. Here workers start once and write each batch into a shared-memory slot (the one
copy of the transport); only a few hundred bytes of metadata cross the pipe. The parent hands the
slot's large arrays to the caller without copying them and reuses the slot only once the caller has
dropped them all, so they are the caller's as much as a copy would be; leaves under 64 KiB are copied,
so that keeping small ones (labels) never pins a large slot.

How to use it
-------------
    train = MultiprocessSequence(MyDataset(...), workers=4, seed=0)
    model.fit(train, epochs=10, shuffle=False)
    train.close()                      # or `with MultiprocessSequence(...) as train:`

`dataset_or_fn` is one of
  * a dataset: any object with `__getitem__(index)` and `__len__` (a Keras PyDataset/Sequence, or a
    plain class). It is pickled to the workers, so its class must live in an importable module; a
    module that imports only numpy keeps worker start-up fast (a worker never imports Keras itself).
    Its large arrays (1 MiB and up) are not pickled: a memory-mapped one is mapped again from its file,
    any other is copied once into shared memory that every worker maps copy-on-write (seqkit.sharing),
    so neither the workers' start-up time nor their memory grows with the data.
    As with any "spawn"/"forkserver" process, each worker imports the main script once: keep the
    training code under `if __name__ == "__main__":`.
  * `(fn, length)`: a module-level function `index -> batch` and the number of batches;
  * a callable object with `__len__`.
A batch is a numpy array or a tuple/list/dict nest of them (None leaves are kept).

Randomness: every batch gets `numpy.random.Generator` derived from `(seed, epoch, index)`. A dataset
receives it if its `__getitem__` has an `rng` parameter (`def __getitem__(self, index, rng=None)`),
a function if it takes two positional arguments (`fn(index, rng)`); any code can also call
`seqkit.worker.current_rng()` (re-exported here) while a batch is computed. The batches therefore do not
depend on the number of workers, the start method, or which worker ran which batch.

Epoch hooks: `on_epoch_end`/`on_epoch_begin` of the wrapped dataset run in the parent, where its state
lives. Afterwards the entries of its state (`__getstate__()`, by default its `__dict__`) that they
changed are sent to every worker (large arrays shared as above) before any batch of the new epoch is
computed, and applied there through `__setstate__` (by default `__dict__.update`). "Changed" is found
by comparing a hash of each entry with the previous one (read-only arrays by identity). Hashing a large
writable array costs about a second per GB per epoch: a dataset can list the entries its hooks touch
in `seqkit_epoch_state = ("order", "epoch")`, and only those are compared and sent.

Order and prefetching: batches are returned for exactly the index asked. When the indices come in
sequence (0, 1, 2, ... as `model.fit(..., shuffle=False)` asks), up to `prefetch` batches are computed
ahead, past the end of the epoch into the next one when the dataset has no epoch hooks; any other
access works but waits for its batch. `model.fit` shuffles batch order by default (Keras' PyDataset
adapter draws a new permutation of the batch indices from Python's `random` at the start of every
epoch, which nothing outside Keras can know in advance), and that defeats prefetching: shuffle samples
in the dataset (its `on_epoch_end` runs here, and what it changes reaches the workers) and pass
`shuffle=False`. `stats` counts the batches served and how many of them were computed ahead.

Faults: an exception in a worker is raised when its batch is requested, as `WorkerError` carrying the
worker's traceback and the batch index (chained to the original exception); a worker that dies is
detected through its process sentinel within a fraction of a second. A batch that takes longer than
`timeout` seconds (loading the dataset in a worker counts too) makes the worker dump its Python stack and
exit; the `WorkerError` then names the batch and carries that stack, showing where it hung. Either way
all workers are stopped and every shared-memory segment is unlinked; the next call starts a fresh pool.
The same happens after a KeyboardInterrupt, on `close()`, when the object is garbage collected and at
interpreter exit. If this process is killed outright (SIGKILL, the out-of-memory killer), its workers
notice and exit, even in the middle of a batch, and with them the fork server and the resource tracker
(seqkit.lifeline); segments left by a killed process group are removed by the next pool that starts
(seqkit.shm.sweep_dead_owners).
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from dataclasses import dataclass, field
from multiprocessing import connection

import numpy as np
from keras.utils import PyDataset

from seqkit import sharing
from seqkit import worker as _worker
from seqkit.lifeline import WorkerError, check_timeout, start_workers, stop_workers
from seqkit.pool import FORKSERVER_PRELOAD
from seqkit.seeding import resolve_seed
from seqkit.shm import SlotRing, new_prefix, sweep_dead_owners, view
from seqkit.structure import TreeDef, unflatten
from seqkit.worker import check_batch, compute_batch, current_rng

__all__ = ["MultiprocessSequence", "WorkerError", "current_rng", "DEFAULT_TIMEOUT"]

# Seconds one batch may take in a worker before it counts as hung. Far above any sane batch (they take
# milliseconds to a few seconds) and above a dataset module's first import in a worker (seconds, or tens
# of seconds for one that imports TensorFlow on a loaded machine), yet a hang surfaces in minutes.
DEFAULT_TIMEOUT = 120.0
# How long one wait for worker messages lasts before liveness is checked again. Deaths are normally
# seen at once through the process sentinels; this only bounds the time in the unlikely other cases.
_POLL_SECONDS = 0.5
# A worker past its deadline stops itself (seqkit.lifeline); if it has not within this many more
# seconds (stopped in a debugger, stuck in the kernel), the parent asks for its stack and kills it.
_BACKSTOP_GRACE_SECONDS = 5.0
_RANDOM_ACCESS_WARN_AFTER = 8
# Leaves smaller than this are copied out of their slot rather than lent: a copy is cheap, and a small
# array kept by the caller (labels collected for metrics) must not pin a slot holding a large batch.
_LEND_MIN_BYTES = 1 << 16


@dataclass
class _Task:
    task_id: int
    epoch: int
    index: int
    slot: int
    worker: int
    wanted: bool = True
    result: tuple | None = None  # ("done", treedef, specs) or ("error", WorkerError, original or None)


class _Share:
    """The segments one init/state message shares; unlinked once every worker has mapped them."""

    def __init__(self, shared: sharing.SharedArrays, readers: int):
        self.shared = shared
        self.readers = readers

    def mapped_by_one(self) -> None:
        self.readers -= 1
        if self.readers <= 0:
            self.shared.unlink()


@dataclass
class _Control:
    """An init or state message in a worker's queue, answered by "ready"."""

    kind: str
    share: _Share


@dataclass
class _Pool:
    """Worker processes, their pipes, the slot ring and the tasks in flight. Holds no reference to the
    sequence, so it can be shut down by a finalizer after the sequence is gone."""

    workers: list  # WorkerProcess
    lifeline: object  # write end of the lifeline pipe (seqkit.lifeline)
    ring: SlotRing
    tasks: dict = field(default_factory=dict)  # task_id -> _Task
    wanted: dict = field(default_factory=dict)  # (epoch, index) -> _Task
    outstanding: list = field(default_factory=list)  # per worker, FIFO of task ids and _Control
    last_heard: list = field(default_factory=list)  # per worker, monotonic time its current job began
    shares: list = field(default_factory=list)  # SharedArrays of messages not yet mapped by every worker
    share_count: int = 0
    next_id: int = 0
    closed: bool = False

    @property
    def processes(self) -> list:
        return [worker.process for worker in self.workers]

    @property
    def conns(self) -> list:
        return [worker.conn for worker in self.workers]

    def new_shared(self) -> sharing.SharedArrays:
        """Segments for one more init/state message (those of earlier ones are gone once mapped)."""
        self.share_count += 1
        shared = sharing.SharedArrays(f"{self.ring.prefix}_s{self.share_count}")
        self.shares = [earlier for earlier in self.shares if earlier.names] + [shared]
        return shared

    def shutdown(self, graceful: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        stop_workers(self.workers, self.lifeline, graceful)
        for shared in self.shares:
            shared.unlink()
        # Workers are gone, so nothing can create a segment any more: unlink them all.
        self.ring.destroy()


def _default_start_method() -> str:
    # A fork of a parent whose TensorFlow/JAX/torch threads hold locks can deadlock the child; the
    # forkserver is a fresh single-threaded process, and preloading the worker module there makes each
    # worker start in milliseconds. Elsewhere, spawn.
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


def _accepts_two_positional(fn) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _getitem_takes_rng(dataset) -> bool:
    try:
        signature = inspect.signature(type(dataset).__getitem__)
    except (TypeError, ValueError):
        return False
    return "rng" in signature.parameters


def _resolve_target(dataset_or_fn):
    """(target, call mode, fixed length or None) for what the user passed."""
    if isinstance(dataset_or_fn, tuple):
        if len(dataset_or_fn) != 2 or not callable(dataset_or_fn[0]):
            raise TypeError(
                "dataset_or_fn: a tuple must be (fn, length) with fn(index) -> batch, "
                f"got a tuple of {len(dataset_or_fn)} items"
            )
        fn, length = dataset_or_fn
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"dataset_or_fn: the length in (fn, length) must be an int >= 0, got {length!r}")
        mode = _worker.CALL_FN_RNG if _accepts_two_positional(fn) else _worker.CALL_FN
        return fn, mode, int(length)
    if hasattr(type(dataset_or_fn), "__getitem__"):
        _length_of(dataset_or_fn)  # fail now, not in the first batch
        mode = _worker.CALL_GETITEM_RNG if _getitem_takes_rng(dataset_or_fn) else _worker.CALL_GETITEM
        return dataset_or_fn, mode, None
    if callable(dataset_or_fn):
        if not hasattr(dataset_or_fn, "__len__"):
            raise TypeError(
                "dataset_or_fn: a function needs a length; pass (fn, number_of_batches) "
                "or a callable object with __len__"
            )
        mode = _worker.CALL_FN_RNG if _accepts_two_positional(dataset_or_fn) else _worker.CALL_FN
        return dataset_or_fn, mode, None
    raise TypeError(
        "dataset_or_fn must be a dataset (with __getitem__ and __len__), a (fn, length) pair or a "
        f"callable with __len__, got {type(dataset_or_fn).__name__}"
    )


def _length_of(target) -> int:
    length = None
    if hasattr(target, "__len__"):
        length = len(target)
    elif hasattr(target, "num_batches"):
        length = target.num_batches
    if length is None:
        raise TypeError(
            f"dataset_or_fn: {type(target).__name__} has no finite length (__len__ or num_batches); "
            "MultiprocessSequence needs one to prefetch within an epoch"
        )
    return int(length)


def _has_own_hook(target, name: str) -> bool:
    hook = getattr(type(target), name, None)
    if hook is None:
        return False
    # The no-op defaults of Keras' PyDataset/Sequence need no synchronisation.
    return getattr(hook, "__module__", "").split(".")[0] not in ("keras", "tensorflow", "tf_keras")


class _Same:
    """A fingerprint that compares by identity (read-only arrays cannot change in place)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _Same) and other.obj is self.obj


def _fingerprint(name: str, value):
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return _Same(value)
    buffers: list = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        raise TypeError(
            f"attribute {name!r} of the wrapped dataset cannot be pickled to the workers: {exc}"
        ) from exc
    digest = hashlib.sha1(data, usedforsecurity=False)  # change detection only; the fastest here
    for buffer in buffers:
        try:
            digest.update(buffer.raw())
        except BufferError:  # not contiguous: hash a contiguous copy
            digest.update(bytes(buffer))
    return digest.digest()


def _state_dict(target) -> dict | None:
    """The object's pickled state as a dict of attributes (honouring its __getstate__), or None when
    it is something else (slots, a tuple), in which case the whole object is sent instead."""
    getstate = getattr(target, "__getstate__", None)
    state = getstate() if getstate is not None else getattr(target, "__dict__", None)
    if state is None and hasattr(target, "__dict__"):
        state = {}  # object.__getstate__ gives None for an empty __dict__
    return state if isinstance(state, dict) else None


class MultiprocessSequence(PyDataset):
    """A PyDataset whose batches are computed by persistent worker processes (see the module doc).

    Args:
        dataset_or_fn: a dataset with `__getitem__`/`__len__`, a `(fn, length)` pair, or a callable
            with `__len__`.
        workers: number of worker processes; default: the CPUs this process may use. 0 computes
            batches in the calling process (same batches, for debugging).
        prefetch: batches computed ahead during sequential access, also the number of shared-memory
            slots; default: twice the number of workers.
        seed: seed of the per-batch generators; None draws one for the lifetime of the object.
        start_method: "forkserver" (default on Linux), "spawn", or "fork" if you know the parent has
            no threads.
        timeout: seconds one batch may take in a worker (loading the dataset there counts as one
            batch); past it the worker's stack is captured, every worker is stopped and `WorkerError`
            names the batch, with that stack. Default `DEFAULT_TIMEOUT` (120 s); None never times out.
    """

    def __init__(self, dataset_or_fn, *, workers=None, prefetch=None, seed=None, start_method=None, timeout=DEFAULT_TIMEOUT):
        # Keras must not add its own pool on top of ours.
        super().__init__(workers=1, use_multiprocessing=False)
        self._target, self._call_mode, self._fixed_length = _resolve_target(dataset_or_fn)
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {workers!r}")
        self._num_workers = int(workers)
        if prefetch is None:
            prefetch = max(2, 2 * self._num_workers)
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
        self._prefetch = int(prefetch)
        if start_method is None:
            start_method = _default_start_method()
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method must be one of {multiprocessing.get_all_start_methods()}, got {start_method!r}"
            )
        self._start_method = start_method
        self._timeout = check_timeout(timeout)
        self._seed = resolve_seed(seed)
        self._epoch = 0
        self._lock = threading.RLock()
        self._pool: _Pool | None = None
        self._finalizer = None
        self._reference = None  # (treedef, [(dtype, ndim)]) of the first batch
        self._fingerprints: dict | None = None
        self._last_index: int | None = None
        self._random_accesses = 0
        self._warned_random = False
        self._stats = {"batches": 0, "prefetched": 0, "out_of_order": 0}
        self._has_hooks = self._hooks_need_sync()

    # ---- the PyDataset interface -------------------------------------------------------------------

    def __len__(self) -> int:
        if self._fixed_length is not None:
            return self._fixed_length
        return _length_of(self._target)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def stats(self) -> dict:
        """Batches served by workers, how many of them had been computed (or started) ahead of the
        request, and how many were requested out of order (see the module doc on `shuffle`)."""
        return dict(self._stats)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty before the first batch and after close())."""
        pool = self._pool
        if pool is None or pool.closed:
            return []
        return [process.pid for process in pool.processes]

    def __getitem__(self, index):
        index = self._check_index(index)
        with self._lock:
            if self._num_workers == 0:
                batch = compute_batch(self._target, self._call_mode, self._seed, self._epoch, index)
                leaves, treedef = check_batch(batch, index)
                self._check_structure(treedef, leaves, index)
                return batch
            pool = self._ensure_pool()
            try:
                treedef, leaves = self._fetch(pool, index)
            except WorkerError:
                raise
            except BaseException:
                # KeyboardInterrupt or an internal failure may have lost track of a message: start
                # clean rather than risk waiting for a batch nobody computes.
                self._stop_pool(graceful=False)
                raise
            self._check_structure(treedef, leaves, index)
        return unflatten(treedef, leaves)

    def on_epoch_begin(self):
        with self._lock:
            if _has_own_hook(self._target, "on_epoch_begin"):
                self._target.on_epoch_begin()
                self._forget_prefetched(keep_current_epoch=False)
                self._sync_state()

    def on_epoch_end(self):
        with self._lock:
            self._epoch += 1
            self._forget_prefetched(keep_current_epoch=not self._has_hooks)
            if _has_own_hook(self._target, "on_epoch_end"):
                self._target.on_epoch_end()
                self._sync_state()

    # ---- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers and unlink the shared memory; a later call starts them again."""
        with self._lock:
            self._stop_pool(graceful=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __reduce__(self):
        raise TypeError(
            "MultiprocessSequence cannot be pickled (it owns worker processes); "
            "give model.fit the object itself, with the default workers=1 of Keras"
        )

    def _ensure_pool(self) -> _Pool:
        if self._pool is None or self._pool.closed:
            self._pool = self._start_pool()
        return self._pool

    def _start_pool(self) -> _Pool:
        # Segments of seqkit processes killed with their whole process group: nobody else removes them.
        sweep_dead_owners()
        prefix = new_prefix()
        shared = sharing.SharedArrays(f"{prefix}_s0")
        try:
            payload = sharing.dumps(self._target, shared)
        except Exception as exc:
            shared.unlink()
            raise TypeError(
                "dataset_or_fn must be picklable to be sent to worker processes (define it at the top "
                f"level of a module, not as a lambda or local class): {exc}"
            ) from exc
        context = multiprocessing.get_context(self._start_method)
        if self._start_method == "forkserver":
            context.set_forkserver_preload(FORKSERVER_PRELOAD)
        ring = SlotRing(self._prefetch, prefix)
        try:
            workers, lifeline = start_workers(
                context, _worker.main, self._num_workers, (prefix,), name="seqkit-worker", timeout=self._timeout
            )
        except BaseException:
            shared.unlink()
            ring.destroy()
            raise
        pool = _Pool(workers=workers, lifeline=lifeline, ring=ring, shares=[shared])
        pool.outstanding = [deque() for _ in workers]
        pool.last_heard = [0.0] * len(workers)
        self._finalizer = weakref.finalize(self, pool.shutdown, False)
        try:
            # Sent once all have started, so that reading a dataset does not delay the next start.
            self._broadcast_control(pool, "init", (payload, self._call_mode, self._seed), shared)
        except BaseException:
            pool.shutdown(graceful=False)
            raise
        # The workers got the whole dataset: that is the state later epoch hooks are compared with.
        self._fingerprints = self._state_fingerprints() if self._has_hooks else None
        return pool

    def _stop_pool(self, graceful: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(graceful)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    # ---- scheduling --------------------------------------------------------------------------------

    def _check_index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        length = len(self)
        index = int(index)
        if not 0 <= index < length:
            raise IndexError(f"batch index {index} out of range for {length} batches")
        return index

    def _fetch(self, pool: _Pool, index: int):
        sequential = index == 0 or (self._last_index is not None and index == self._last_index + 1)
        self._last_index = index
        if not sequential:
            self._note_random_access()
        key = (self._epoch, index)
        self._stats["batches"] += 1
        self._stats["prefetched"] += key in pool.wanted
        if key not in pool.wanted:
            if not sequential:
                self._drop_wanted(pool, keep=lambda task: False)
            self._submit(pool, index, block=True)
        if sequential:
            self._top_up(pool, index)
        task = pool.wanted[key]
        while task.result is None:
            self._pump(pool)
            if sequential:
                self._top_up(pool, index)
        if task.result[0] == "error":
            error = task.result[1]
            self._stop_pool(graceful=False)
            raise error from task.result[2]
        _, treedef, specs = task.result
        leaves = self._hand_out(pool, task, specs)
        if sequential:
            self._top_up(pool, index)
        return treedef, leaves

    def _top_up(self, pool: _Pool, index: int) -> None:
        """Keep the next `prefetch` batches of a sequential read in flight, as far as slots allow.

        Near the end of an epoch the next epoch's first batches are started too, unless the dataset
        has epoch hooks (they may change what those batches are).
        """
        length = len(self)
        for ahead in range(index + 1, index + 1 + self._prefetch):
            epoch = self._epoch
            if ahead >= length:
                if self._has_hooks:
                    return
                epoch, ahead = epoch + 1, ahead - length
                if ahead >= length:
                    return
            if (epoch, ahead) in pool.wanted:
                continue
            if not self._submit(pool, ahead, block=False, epoch=epoch):
                return

    def _submit(self, pool: _Pool, index: int, block: bool, epoch: int | None = None) -> bool:
        while True:
            retired = pool.ring.take_back()
            if retired:
                self._broadcast(pool, ("forget", retired))
            slot = pool.ring.acquire()
            if slot is None and len(pool.tasks) < self._prefetch:
                slot = pool.ring.add()  # the other slots are on loan to the caller
            if slot is not None:
                break
            if not block:
                return False
            # Make room: give up the prefetched batch furthest from what is being read.
            victims = [task for task in pool.wanted.values() if (task.epoch, task.index) != (self._epoch, index)]
            if victims:
                self._unwant(pool, max(victims, key=lambda task: (task.epoch, task.index)))
            else:
                self._pump(pool)
        worker = min(range(len(pool.processes)), key=lambda w: len(pool.outstanding[w]))
        task = _Task(pool.next_id, self._epoch if epoch is None else epoch, index, slot, worker)
        pool.next_id += 1
        name, size = pool.ring.describe(slot)
        pool.tasks[task.task_id] = task
        pool.wanted[(task.epoch, index)] = task
        self._queue(pool, worker, task.task_id)
        self._send(pool, worker, ("task", task.task_id, task.epoch, index, slot, name, size))
        return True

    def _unwant(self, pool: _Pool, task: _Task) -> None:
        """Forget a task's batch; its slot is freed now if the batch is in, else when it arrives."""
        task.wanted = False
        pool.wanted.pop((task.epoch, task.index), None)
        if task.result is not None:
            pool.ring.release(task.slot)
            pool.tasks.pop(task.task_id, None)

    def _drop_wanted(self, pool: _Pool, keep) -> None:
        for task in list(pool.wanted.values()):
            if not keep(task):
                self._unwant(pool, task)

    def _forget_prefetched(self, keep_current_epoch: bool) -> None:
        """Drop prefetched batches that are no longer valid: all of them after an epoch hook changed
        the dataset, else those of epochs before the current one."""
        self._last_index = None
        self._random_accesses = 0
        if self._pool is not None and not self._pool.closed:
            epoch = self._epoch
            self._drop_wanted(self._pool, keep=lambda task: keep_current_epoch and task.epoch == epoch)

    def _note_random_access(self) -> None:
        self._stats["out_of_order"] += 1
        self._random_accesses += 1
        if self._random_accesses == _RANDOM_ACCESS_WARN_AFTER and not self._warned_random:
            self._warned_random = True
            warnings.warn(
                "MultiprocessSequence is read out of order, so it cannot compute batches ahead. "
                "model.fit shuffles the batch order unless shuffle=False; shuffle samples inside the "
                "dataset instead and pass shuffle=False.",
                RuntimeWarning,
                stacklevel=4,
            )

    # ---- messages to and from the workers -----------------------------------------------------------------

    def _send(self, pool: _Pool, worker: int, message) -> None:
        try:
            pool.conns[worker].send(message)
        except (BrokenPipeError, ConnectionResetError):
            self._worker_died(pool, worker)

    def _queue(self, pool: _Pool, worker: int, job) -> None:
        """Note a job sent to `worker`; its clock starts now if the worker was idle, else when the
        job before it is answered (jobs are served in order)."""
        if not pool.outstanding[worker]:
            pool.last_heard[worker] = time.monotonic()
        pool.outstanding[worker].append(job)

    def _broadcast_control(self, pool: _Pool, kind: str, body: tuple, shared: sharing.SharedArrays) -> None:
        """Send an init or state message to every worker; its shared arrays are unlinked once all of
        them have answered "ready" (they have mapped the arrays by then)."""
        share = _Share(shared, len(pool.workers))
        for worker in range(len(pool.workers)):
            self._queue(pool, worker, _Control(kind, share))
            self._send(pool, worker, (kind, *body))

    def _broadcast(self, pool: _Pool, message) -> None:
        for worker in range(len(pool.conns)):
            self._send(pool, worker, message)

    def _pump(self, pool: _Pool) -> None:
        """Wait for worker messages (or a death) and file them under their tasks."""
        sentinels = {process.sentinel: number for number, process in enumerate(pool.processes)}
        ready = connection.wait(pool.conns + list(sentinels), timeout=_POLL_SECONDS)
        dead = []
        for item in ready:
            if item in sentinels:
                dead.append(sentinels[item])
                continue
            worker = pool.conns.index(item)
            try:
                message = item.recv()
            except (EOFError, OSError):
                dead.append(worker)
                continue
            self._receive(pool, worker, message)
        if not ready:
            dead = [n for n, process in enumerate(pool.processes) if not process.is_alive()]
        if dead:
            self._worker_died(pool, dead[0])
        self._check_overdue(pool)

    def _check_overdue(self, pool: _Pool) -> None:
        """The parent's own deadline, for a worker that did not stop itself at its timeout."""
        if self._timeout is None:
            return
        now = time.monotonic()
        for worker, jobs in enumerate(pool.outstanding):
            if jobs and now - pool.last_heard[worker] > self._timeout + _BACKSTOP_GRACE_SECONDS:
                stack = pool.workers[worker].request_stacks()
                self._raise_timeout(pool, worker, stack or "(the worker did not answer a request for its stack)")

    def _receive(self, pool: _Pool, worker: int, message) -> None:
        kind, task_id = message[0], message[1]
        job = pool.outstanding[worker].popleft()
        # The next job in this worker's queue starts now.
        pool.last_heard[worker] = time.monotonic()
        if kind == "ready":
            job.share.mapped_by_one()
            return
        if kind == "error" and task_id is None:  # the worker could not load the dataset or the state
            doing = "start" if job.kind == "init" else "apply the state changed by an epoch hook"
            error = WorkerError(
                f"worker {worker} failed to {doing}: {message[3]}\n\nWorker traceback:\n{message[4]}",
                worker_traceback=message[4],
            )
            self._stop_pool(graceful=False)
            raise error
        task = pool.tasks[task_id]
        if kind == "done":
            _, _, treedef, specs, name = message
            pool.ring.adopt(task.slot, name)
            task.result = ("done", treedef, specs)
        else:
            _, _, payload, summary, text = message
            original = None
            if payload is not None:
                try:
                    original = pickle.loads(payload)
                except Exception:
                    original = None
            error = WorkerError(
                f"batch {task.index} (epoch {task.epoch}) failed in worker {worker} "
                f"(pid {pool.processes[worker].pid}): {summary}\n\nWorker traceback:\n{text}",
                index=task.index,
                epoch=task.epoch,
                worker_traceback=text,
            )
            task.result = ("error", error, original)
        if not task.wanted:
            pool.ring.release(task.slot)
            pool.tasks.pop(task_id, None)

    def _current_job(self, pool: _Pool, worker: int):
        """What `worker` is busy with: the oldest job it has not answered (a _Task or _Control)."""
        jobs = pool.outstanding[worker]
        if not jobs:
            return None
        job = jobs[0]
        return pool.tasks.get(job) if isinstance(job, int) else job

    def _worker_died(self, pool: _Pool, worker: int) -> None:
        process = pool.processes[worker]
        process.join(_POLL_SECONDS)
        if pool.workers[worker].timed_out():
            self._raise_timeout(pool, worker, pool.workers[worker].read_stacks())
        code = process.exitcode
        how = pool.workers[worker].exit_description()
        job = self._current_job(pool, worker)
        if isinstance(job, _Task):
            doing, index = f"while computing batch {job.index} (epoch {job.epoch})", job.index
        elif isinstance(job, _Control):
            doing, index = ("while loading the dataset" if job.kind == "init" else "while applying epoch state"), None
        else:
            doing, index = "while idle", None
        hint = " (SIGKILL usually means the out-of-memory killer)" if code == -signal.SIGKILL else ""
        pid = process.pid
        self._stop_pool(graceful=False)
        raise WorkerError(
            f"worker {worker} (pid {pid}) died with {how}{hint} {doing}; all workers were stopped "
            "and the next call starts new ones",
            index=index,
        )

    def _raise_timeout(self, pool: _Pool, worker: int, stack: str) -> None:
        job = self._current_job(pool, worker)
        pid = pool.processes[worker].pid
        if isinstance(job, _Task):
            what, index, epoch = f"batch {job.index} (epoch {job.epoch})", job.index, job.epoch
        elif isinstance(job, _Control) and job.kind == "init":
            what, index, epoch = "loading the dataset", None, None
        else:
            what, index, epoch = "applying the epoch state", None, None
        self._stop_pool(graceful=False)
        raise WorkerError(
            f"{what} took longer than timeout={self._timeout:g}s in worker {worker} (pid {pid}); all "
            "workers were stopped and the next call starts new ones. Where the worker was stuck:\n"
            f"{stack or '(no stack was written)'}",
            index=index,
            epoch=epoch,
            worker_traceback=stack,
        )

    def _hand_out(self, pool: _Pool, task: _Task, specs) -> list:
        """The batch's arrays, for the caller to keep: large leaves are lent from the slot, small copied.

        A lent slot is not reused while any of its arrays is alive (see SlotRing.lend), so the caller
        owns them as much as a copy, without paying for one; the ring adds slots while batches are held.
        """
        segment = pool.ring.segments[task.slot]
        flat, token = segment.lend()
        leaves = []
        lent = False
        for spec in specs:
            if spec.dtype is None:
                leaves.append(None)
                continue
            dtype = np.dtype(spec.dtype)
            nbytes = int(np.prod(spec.shape, dtype=np.int64)) * dtype.itemsize
            if nbytes == 0:
                leaves.append(np.empty(spec.shape, dtype))
            elif nbytes < _LEND_MIN_BYTES:
                leaves.append(view(flat, spec).copy())
            else:
                leaves.append(view(flat, spec))
                lent = True
        del flat
        task.wanted = False
        pool.wanted.pop((task.epoch, task.index), None)
        pool.tasks.pop(task.task_id, None)
        if lent:
            pool.ring.lend(task.slot, token)
        else:
            pool.ring.release(task.slot)
        return leaves

    # ---- batch structure and epoch state -----------------------------------------------------------

    def _check_structure(self, treedef: TreeDef, leaves: list, index: int) -> None:
        signature = [None if leaf is None else (leaf.dtype.str, leaf.ndim) for leaf in leaves]
        if self._reference is None:
            self._reference = (treedef, signature, index)
            return
        ref_tree, ref_signature, ref_index = self._reference
        if treedef != ref_tree or signature != ref_signature:
            raise ValueError(
                f"batch {index} does not have the structure of batch {ref_index}: "
                f"{_describe(treedef, signature)} vs {_describe(ref_tree, ref_signature)}; every batch "
                "must have the same nesting, dtypes and number of dimensions"
            )

    def _hooks_need_sync(self) -> bool:
        return _has_own_hook(self._target, "on_epoch_end") or _has_own_hook(self._target, "on_epoch_begin")

    def _state_fingerprints(self) -> dict | None:
        state = _state_dict(self._target)
        if state is None:
            return None
        names = getattr(self._target, "seqkit_epoch_state", None)
        names = list(state) if names is None else [name for name in names if name in state]
        return {name: _fingerprint(name, state[name]) for name in names}

    def _sync_state(self) -> None:
        """Send the workers what the parent's epoch hook changed (see the module doc)."""
        pool = self._pool
        if pool is None or pool.closed:
            return  # the next pool gets the whole dataset anyway
        before = self._fingerprints
        after = self._state_fingerprints()
        self._fingerprints = after
        if before is None or after is None:
            shared = pool.new_shared()
            kind, body = "init", (sharing.dumps(self._target, shared), self._call_mode, self._seed)
        else:
            state = _state_dict(self._target)
            changed = {name: state[name] for name, digest in after.items() if before.get(name) != digest}
            deleted = [name for name in before if name not in after]
            if not changed and not deleted:
                return
            shared = pool.new_shared()
            kind, body = "state", (sharing.dumps(changed, shared), deleted)
        self._broadcast_control(pool, kind, body, shared)


def _describe(treedef: TreeDef, signature: list) -> str:
    leaves = iter(signature)

    def render(node: TreeDef) -> str:
        if node.kind == "leaf":
            leaf = next(leaves)
            return "None" if leaf is None else f"{np.dtype(leaf[0]).name}[{leaf[1]}d]"
        parts = [render(child) for child in node.children]
        if node.kind == "dict":
            return "{" + ", ".join(f"{key!r}: {part}" for key, part in zip(node.keys, parts)) + "}"
        if node.kind == "list":
            return "[" + ", ".join(parts) + "]"
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    return render(treedef)
