"""engine="ray": tasks on a Ray cluster (`pip install 'seqkit[ray]'`).

If Ray is already initialised in this process its cluster is used as it is. Otherwise `ray.init` is
called with `address=scheduler` (None: the cluster named by RAY_ADDRESS, or a local instance of
`workers` CPUs, one per core by default), and shut down after the run.

Retries: tasks are submitted with `max_retries=RETRIES` (a worker that died) and `retry_exceptions=True`
(a task that raised).
"""

from __future__ import annotations

from typing import Any

from seqkit.engines.base import RETRIES, ClusterEngine, extra_missing, task_label
from seqkit.lifeline import WorkerError


def _ray():
    try:
        import ray
    except ImportError:
        raise extra_missing("ray", "ray", "ray", "ray") from None
    return ray


class RayEngine(ClusterEngine):
    name = "ray"

    def __init__(self, scheduler: Any = None, *, workers: int | None = None, timeout: float | None = None):
        ray = _ray()
        self.ray = ray
        self.timeout = timeout
        self._started = False
        if not ray.is_initialized():
            if scheduler is not None and not isinstance(scheduler, str):
                raise TypeError(f"scheduler must be a Ray cluster address (e.g. 'ray://head:10001' or 'auto'), got {scheduler!r}")
            options = {"include_dashboard": False, "log_to_driver": False}
            if scheduler is None and workers is not None:
                options["num_cpus"] = workers
            ray.init(address=scheduler, **options)
            self._started = True
        self._remotes: dict = {}

    def _window(self) -> int:
        cpus = int(self.ray.cluster_resources().get("CPU", 1)) or 1
        return 2 * cpus

    def _submit(self, fn, task):
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self.ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=True)(fn)
        return remote.remote(task)

    def _when_done(self, handle, callback) -> None:
        handle.future().add_done_callback(callback)

    def _result(self, handle):
        return self.ray.get(handle)

    def _cancel(self, handles) -> None:
        for handle in handles:
            try:
                self.ray.cancel(handle, force=True)
            except Exception:  # already finished, or the cluster is going away
                pass

    def _translate(self, task, exc):
        from ray import exceptions

        # A task's own exception comes as RayTaskError(ItsClass), an instance of its class too: as it is.
        if isinstance(exc, (exceptions.WorkerCrashedError, exceptions.NodeDiedError)):
            return WorkerError(f"{task_label(task)}: its Ray workers kept dying while running it ({exc})")
        return exc

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False
