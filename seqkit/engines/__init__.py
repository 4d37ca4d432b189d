"""Where the shard tasks of `pack` and `preprocess_once` run: "local" (this machine's processes, the
default), "dask" (a Dask cluster: a given `distributed.Client` or scheduler address, or a LocalCluster
started for the run) or "ray" (the running Ray cluster, or `ray.init()`).

Every engine runs one function over a list of tasks and yields `(task, result)` in the tasks' order,
with few tasks in flight, so the driver can write results as they come. Failed tasks are retried by
the engine itself (`RETRIES` times; a task whose worker died too); a task that still fails raises here,
after the tasks in flight were cancelled. No engine lets a run hang: `timeout` seconds without any task
finishing raise `seqkit.pool.WorkerError` naming the tasks that were running.

Dask and Ray are optional: `pip install 'seqkit[dask]'` or `'seqkit[ray]'`; without them, choosing the
engine raises an ImportError that says which extra to install. Their modules are imported only then.
"""

from __future__ import annotations

from typing import Any

from seqkit.engines.base import RETRIES, Engine
from seqkit.lifeline import check_timeout

ENGINES = ("local", "dask", "ray")

__all__ = ["ENGINES", "RETRIES", "Engine", "check_engine", "open_engine"]


def check_engine(engine: Any, scheduler: Any = None) -> str:
    """`engine` checked up front (one of ENGINES), with `scheduler` only where it means something."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(repr(e) for e in ENGINES)}, got {engine!r}")
    if scheduler is not None and engine == "local":
        raise ValueError(
            f"scheduler={scheduler!r} was given with engine='local'; a scheduler is for engine='dask' (an address or a "
            "distributed.Client) or engine='ray' (a cluster address)"
        )
    return engine


def open_engine(engine: str, *, scheduler: Any = None, processes: int | None = None, timeout: float | None = None) -> Engine:
    """The engine named `engine`, ready to run tasks; use it as a context manager (what it started, a
    LocalCluster or a Ray instance, is shut down at the end; a cluster it was given is left running).

    `processes`: local worker processes, or the workers of a LocalCluster / local Ray instance started
    here (default: one per core). With a `scheduler` the cluster's own workers are used.
    """
    check_engine(engine, scheduler)
    timeout = check_timeout(timeout)
    if engine == "local":
        from seqkit.engines.local import LocalEngine

        return LocalEngine(processes or 1, timeout=timeout)
    if scheduler is not None and processes is not None:
        raise ValueError(
            f"processes={processes} sets the size of a cluster started for this run; with scheduler={scheduler!r} "
            "the cluster's own workers are used: leave processes out"
        )
    if engine == "dask":
        from seqkit.engines.dask_engine import DaskEngine

        return DaskEngine(scheduler, workers=processes, timeout=timeout)
    from seqkit.engines.ray_engine import RayEngine

    return RayEngine(scheduler, workers=processes, timeout=timeout)
