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
changed are pickled to every worker before any batch of the new epoch is computed, and applied there
through `__setstate__` (by default `__dict__.update`). "Changed" is found by comparing a hash of each
entry with the previous one (read-only arrays by identity). Hashing a large writable array costs about
a second per GB per epoch: a dataset can list the entries its hooks touch in
`seqkit_epoch_state = ("order", "epoch")`, and only those are compared and sent.

Order and prefetching: batches are returned for exactly the index asked. When the indices come in
sequence (0, 1, 2, ... as `model.fit(..., shuffle=False)` asks), up to `prefetch` batches are computed
ahead, past the end of the epoch into the next one when the dataset has no epoch hooks; any other
access works but waits for its batch. `model.fit` shuffles batch order by default,
which defeats prefetching: shuffle samples in the dataset and pass `shuffle=False`.

Faults: an exception in a worker is raised when its batch is requested, as `WorkerError` carrying the
worker's traceback and the batch index (chained to the original exception); a worker that dies is
detected through its process sentinel within a fraction of a second. Either way all workers are stopped
and every shared-memory segment is unlinked; the next call starts a fresh pool. The same happens after
a KeyboardInterrupt, on `close()`, when the object is garbage collected and at interpreter exit.
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import os
import pickle
import secrets
import signal
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from multiprocessing import connection

import numpy as np
from keras.utils import PyDataset

from seqkit import worker as _worker
from seqkit.seeding import resolve_seed
from seqkit.shm import SlotRing, view
from seqkit.structure import TreeDef, unflatten
from seqkit.worker import check_batch, compute_batch, current_rng

__all__ = ["MultiprocessSequence", "WorkerError", "current_rng"]

# How long one wait for worker messages lasts before liveness is checked again. Deaths are normally
# seen at once through the process sentinels; this only bounds the time in the unlikely other cases.
_POLL_SECONDS = 0.5
_STOP_GRACE_SECONDS = 2.0
_RANDOM_ACCESS_WARN_AFTER = 8
# Leaves smaller than this are copied out of their slot rather than lent: a copy is cheap, and a small
# array kept by the caller (labels collected for metrics) must not pin a slot holding a large batch.
_LEND_MIN_BYTES = 1 << 16


class WorkerError(RuntimeError):
    """A batch could not be produced by a worker: it raised, or the worker process died."""

    def __init__(self, message: str, *, index=None, epoch=None, worker_traceback: str = ""):
        super().__init__(message)
        self.index = index
        self.epoch = epoch
        self.worker_traceback = worker_traceback


@dataclass
class _Task:
    task_id: int
    epoch: int
    index: int
    slot: int
    worker: int
    wanted: bool = True
    result: tuple | None = None  # ("done", treedef, specs) or ("error", WorkerError, original or None)


@dataclass
class _Pool:
    """Worker processes, their pipes, the slot ring and the tasks in flight. Holds no reference to the
    sequence, so it can be shut down by a finalizer after the sequence is gone."""

    processes: list
    conns: list
    ring: SlotRing
    tasks: dict = field(default_factory=dict)  # task_id -> _Task
    wanted: dict = field(default_factory=dict)  # (epoch, index) -> _Task
    outstanding: list = field(default_factory=list)  # per worker, FIFO of task ids
    next_id: int = 0
    closed: bool = False

    def shutdown(self, graceful: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        if graceful:
            for process in self.processes:
                process.join(_STOP_GRACE_SECONDS)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(_STOP_GRACE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self.conns:
            conn.close()
        for process in self.processes:
            process.close()
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
    """

    def __init__(self, dataset_or_fn, *, workers=None, prefetch=None, seed=None, start_method=None):
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
        try:
            payload = pickle.dumps(self._target, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                "dataset_or_fn must be picklable to be sent to worker processes (define it at the top "
                f"level of a module, not as a lambda or local class): {exc}"
            ) from exc
        context = multiprocessing.get_context(self._start_method)
        if self._start_method == "forkserver":
            context.set_forkserver_preload(["seqkit.worker"])
        prefix = f"seqkit_{os.getpid()}_{secrets.token_hex(4)}"
        pool = _Pool(processes=[], conns=[], ring=SlotRing(self._prefetch, prefix))
        self._finalizer = weakref.finalize(self, pool.shutdown, False)
        try:
            for number in range(self._num_workers):
                parent_end, child_end = context.Pipe(duplex=True)
                process = context.Process(
                    target=_worker.main,
                    args=(child_end, prefix),
                    name=f"seqkit-worker-{number}",
                    daemon=True,
                )
                process.start()
                child_end.close()
                pool.processes.append(process)
                pool.conns.append(parent_end)
                pool.outstanding.append([])
            # Sent once all have started, so that reading a large dataset does not delay the next start.
            for conn in pool.conns:
                conn.send(("init", payload, self._call_mode, self._seed))
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
        self._send(pool, worker, ("task", task.task_id, task.epoch, index, slot, name, size))
        pool.tasks[task.task_id] = task
        pool.wanted[(task.epoch, index)] = task
        pool.outstanding[worker].append(task.task_id)
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
            try:
                message = item.recv()
            except (EOFError, OSError):
                dead.append(pool.conns.index(item))
                continue
            self._receive(pool, pool.conns.index(item), message)
        if not ready:
            dead = [n for n, process in enumerate(pool.processes) if not process.is_alive()]
        if dead:
            self._worker_died(pool, dead[0])

    def _receive(self, pool: _Pool, worker: int, message) -> None:
        kind, task_id = message[0], message[1]
        if task_id is None:  # the worker could not even load the dataset
            error = WorkerError(
                f"worker {worker} failed to start: {message[3]}\n\nWorker traceback:\n{message[4]}",
                worker_traceback=message[4],
            )
            self._stop_pool(graceful=False)
            raise error
        pool.outstanding[worker].remove(task_id)
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

    def _worker_died(self, pool: _Pool, worker: int) -> None:
        process = pool.processes[worker]
        process.join(_POLL_SECONDS)
        code = process.exitcode
        if code is not None and code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"exit code {code}"
        # A worker serves its tasks in order, so the oldest outstanding one is what it was doing.
        task = pool.tasks.get(pool.outstanding[worker][0]) if pool.outstanding[worker] else None
        doing = "while idle" if task is None else f"while computing batch {task.index} (epoch {task.epoch})"
        hint = " (SIGKILL usually means the out-of-memory killer)" if code == -signal.SIGKILL else ""
        index = None if task is None else task.index
        pid = process.pid
        self._stop_pool(graceful=False)
        raise WorkerError(
            f"worker {worker} (pid {pid}) died with {how}{hint} {doing}; all workers were stopped "
            "and the next call starts new ones",
            index=index,
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
            payload = pickle.dumps(self._target, protocol=pickle.HIGHEST_PROTOCOL)
            message = ("init", payload, self._call_mode, self._seed)
        else:
            state = _state_dict(self._target)
            changed = {name: state[name] for name, digest in after.items() if before.get(name) != digest}
            deleted = [name for name in before if name not in after]
            if not changed and not deleted:
                return
            message = ("state", pickle.dumps(changed, protocol=pickle.HIGHEST_PROTOCOL), deleted)
        self._broadcast(pool, message)


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
