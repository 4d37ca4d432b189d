"""engine="dask": tasks on a Dask cluster (`pip install 'seqkit[dask]'`).

`scheduler` is a `distributed.Client` (used as it is, left running), a scheduler address such as
"tcp://10.0.0.5:8786" (connected to for the run), or None: a LocalCluster of `workers` processes (one
per core by default, one thread each, since the tasks are Python code that holds the GIL) is started
for the run and shut down after it; its workers exit if this process dies.

Retries: a task that raises is retried `RETRIES` times (Client.submit's `retries`), and one whose
worker dies is rescheduled by the scheduler (up to its `distributed.scheduler.allowed-failures`, then
`KilledWorker`, raised here as WorkerError naming the task).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from seqkit.engines.base import RETRIES, ClusterEngine, extra_missing, task_label
from seqkit.lifeline import WorkerError


def _distributed():
    try:
        import distributed
    except ImportError:
        raise extra_missing("dask", "dask.distributed", "dask", "dask[distributed]") from None
    return distributed


SCATTER_BYTES = 1 << 20  # tasks carrying more rows than this send them with Client.scatter

# How seqkit starts a LocalCluster for shard tasks:
#  - without Dask's default MALLOC_TRIM_THRESHOLD_ for the worker processes: setting it turns off glibc's
#    adaptive malloc, so every decoded image or chunk (over 128 KiB) is a fresh mmap, page-faulted in
#    and unmapped again (strace: ~3 mmap/munmap pairs per image); packing images spent about a quarter
#    more CPU in the workers that way (their system time went from ~0.25 s to ~1.1 s per 1,200 images);
#  - without the worker's statistical profiler and with a slower admin tick: both wake a thread of the
#    worker many times a second, which then competes with the task for the GIL.
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
}


def local_cluster(workers: int):
    """A LocalCluster of `workers` processes of one thread each (shard tasks are Python code that holds
    the GIL), configured for CPU-bound tasks as above, on a free dashboard port."""
    import dask

    distributed = _distributed()
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters on one machine never collide
            silence_logs=logging.ERROR,
        )


class DaskEngine(ClusterEngine):
    name = "dask"

    def __init__(self, scheduler: Any = None, *, workers: int | None = None, timeout: float | None = None):
        distributed = _distributed()
        self.timeout = timeout
        self._distributed = distributed
        self._cluster = None
        self._own_client = False
        self._run_id = uuid.uuid4().hex[:8]
        if scheduler is None:
            self._cluster = local_cluster(workers or os.cpu_count() or 1)
            try:
                self.client = distributed.Client(self._cluster)
            except BaseException:
                self._cluster.close()
                raise
            self._own_client = True
        elif isinstance(scheduler, distributed.Client):
            self.client = scheduler
        elif isinstance(scheduler, str):
            try:
                self.client = distributed.Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise OSError(f"scheduler {scheduler!r}: cannot connect to a Dask scheduler there ({exc})") from None
            self._own_client = True
        else:
            raise TypeError(f"scheduler must be a Dask scheduler address or a distributed.Client, got {scheduler!r}")

    def _window(self) -> int:
        # Enough to keep every worker thread busy while the driver handles a result, few enough that
        # tasks carrying their rows inline do not pile up in the scheduler's memory.
        threads = sum(self.client.nthreads().values()) or 1
        return 2 * threads

    def _submit(self, fn, task):
        key = f"seqkit-{task_label(task).split(' ')[0]}-{getattr(task, 'index', 'task')}-{self._run_id}-{uuid.uuid4().hex[:6]}"
        payload = getattr(task, "payload_bytes", None)
        if payload is not None and payload() > SCATTER_BYTES:
            # Rows carried in the task: sent to a worker as data, not inside the task graph (which Dask
            # warns about, and which the scheduler would hold and forward).
            task = self.client.scatter(task, hash=False)
        return self.client.submit(fn, task, key=key, pure=False, retries=RETRIES)

    def _when_done(self, handle, callback) -> None:
        handle.add_done_callback(callback)

    def _result(self, handle):
        return handle.result()

    def _cancel(self, handles) -> None:
        try:
            self.client.cancel(handles, force=True)
        except Exception:  # a client already closing: its futures go with it
            pass

    def _translate(self, task, exc):
        if isinstance(exc, self._distributed.KilledWorker):
            return WorkerError(f"{task_label(task)}: its Dask workers kept dying while running it ({exc})")
        return exc

    def close(self) -> None:
        if self._own_client:
            self.client.close()
            self._own_client = False
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
