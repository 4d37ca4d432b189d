"""The worker side of MultiprocessSequence, and `current_rng()` for the code it runs.

Workers are started with "forkserver" or "spawn", so this module (and everything it imports) is what a
worker loads before it unpickles the wrapped dataset: numpy and the standard library only, never Keras
or TensorFlow. A dataset whose own module imports Keras still works; it just starts slower.

Messages from the parent, in order on one pipe per worker:
    ("init", pickled_target, call_mode, seed)    first; again if an epoch hook changed a dataset
                                                 whose state is not a dict
    ("state", pickled {name: value}, [deleted])  state entries an epoch hook changed
    ("task", task_id, epoch, index, slot, slot_name, slot_size)
    ("forget", [segment names])                  segments the parent unlinked: unmap them
    ("stop",)
Replies, in the same order:
    ("ready", kind)                              after "init" or "state": the worker has mapped the
                                                 arrays they share (seqkit.sharing)
    ("done", task_id, treedef, leaf_specs, slot_name)
    ("error", task_id or None, pickled_exception_or_None, exception_text, traceback_text)

Pickled targets and state are made by `seqkit.sharing.dumps`, so large arrays arrive mapped, not copied.
Each "init", "state" and "task" runs under the worker's deadline, and the worker dies with its owner
(seqkit.lifeline).
"""

from __future__ import annotations

import pickle
import signal
import threading

import numpy as np

from seqkit import sharing  # noqa: F401  (imported here so the fork server preloads it: pickles refer to it)
from seqkit.lifeline import Guard, report_error
from seqkit.seeding import batch_rng
from seqkit.shm import WorkerSlots, layout, view
from seqkit.structure import flatten

_local = threading.local()

# How the wrapped object is called; decided once in the parent by inspecting its signature.
CALL_GETITEM = "getitem"  # dataset[index]
CALL_GETITEM_RNG = "getitem_rng"  # dataset.__getitem__(index, rng=rng)
CALL_FN = "fn"  # fn(index)
CALL_FN_RNG = "fn_rng"  # fn(index, rng)


def current_rng() -> np.random.Generator | None:
    """The generator for the batch being computed by a MultiprocessSequence, None outside one.

    It is derived from (seed, epoch, index) only, so a batch gets the same random numbers whichever
    worker, start method or number of workers computes it.
    """
    return getattr(_local, "rng", None)


def compute_batch(target, call_mode: str, seed: int, epoch: int, index: int):
    """Run the wrapped dataset or function for one batch with its generator installed."""
    rng = batch_rng(seed, epoch, index)
    _local.rng = rng
    try:
        if call_mode == CALL_GETITEM_RNG:
            return target.__getitem__(index, rng=rng)
        if call_mode == CALL_FN_RNG:
            return target(index, rng)
        if call_mode == CALL_FN:
            return target(index)
        return target[index]
    finally:
        _local.rng = None


def check_batch(batch, index: int) -> tuple[list, object]:
    """Flatten a batch into numpy leaves, or say exactly which part is not an array."""
    leaves, treedef = flatten(batch)
    checked = []
    for position, leaf in enumerate(leaves):
        if isinstance(leaf, np.generic):
            leaf = np.asarray(leaf)
        if leaf is not None and not isinstance(leaf, np.ndarray):
            raise TypeError(
                f"batch {index}: leaf {_leaf_path(batch, position)} is a {type(leaf).__name__}, not a "
                "numpy array; MultiprocessSequence moves numpy arrays (or tuples/lists/dicts of them) "
                "through shared memory, so convert it with np.asarray in __getitem__"
            )
        if leaf is not None and leaf.dtype.hasobject:
            raise TypeError(
                f"batch {index}: leaf {_leaf_path(batch, position)} has dtype object, which cannot be "
                "placed in shared memory; use a numeric, bool or fixed-width string dtype"
            )
        checked.append(leaf)
    return checked, treedef


def _leaf_path(batch, position: int) -> str:
    """A readable address of the `position`-th leaf, like `batch[1]['mask']`."""
    paths: list[str] = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}[{key!r}]")
        elif isinstance(node, (tuple, list)):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        else:
            paths.append(path)

    walk(batch, "batch")
    return paths[position] if position < len(paths) else "batch"


def write_batch(slots: WorkerSlots, leaves: list, slot: int, name, size: int, task_id: int):
    """Copy the leaves into the task's slot (growing it if needed); returns (specs, segment name)."""
    specs, needed = layout(leaves)
    segment = slots.segment_for(slot, name, size, needed, task_id)
    for leaf, spec in zip(leaves, specs):
        if leaf is not None and leaf.size:
            np.copyto(view(segment.array, spec), leaf, casting="no")
    return specs, segment.name


def _apply_state(target, payload: bytes, deleted: list[str]) -> None:
    """Merge the entries the parent's epoch hook changed into this copy of the dataset."""
    changed = pickle.loads(payload)
    setstate = getattr(type(target), "__setstate__", None)
    if setstate is None or setstate is getattr(object, "__setstate__", None):
        target.__dict__.update(changed)
        for name in deleted:
            target.__dict__.pop(name, None)
        return
    # A custom __setstate__ expects a whole state in the form its __getstate__ gives.
    state = dict(target.__getstate__())
    state.update(changed)
    for name in deleted:
        state.pop(name, None)
    target.__setstate__(state)


def main(conn, guard: Guard, prefix: str) -> None:
    """The worker loop: serve tasks from `conn` until told to stop or the parent goes away."""
    # Ctrl-C reaches the whole process group; the parent decides what happens, workers keep serving.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guard.arm()
    slots = WorkerSlots(prefix)
    target = call_mode = seed = None
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent closed the pipe or died
            kind = message[0]
            if kind == "stop":
                return
            if kind == "forget":  # not answered: a failure to unmap costs only memory
                try:
                    slots.forget(message[1])
                except Exception:
                    pass
                continue
            task_id = message[1] if kind == "task" else None
            try:
                with guard.deadline():
                    if kind == "init":
                        _, payload, call_mode, seed = message
                        target = _load_target(payload)
                        reply = ("ready", kind)
                    elif kind == "state":
                        _apply_state(target, message[1], message[2])
                        reply = ("ready", kind)
                    else:
                        _, task_id, epoch, index, slot, name, size = message
                        batch = compute_batch(target, call_mode, seed, epoch, index)
                        leaves, treedef = check_batch(batch, index)
                        specs, used = write_batch(slots, leaves, slot, name, size, task_id)
                        del batch, leaves
                        reply = ("done", task_id, treedef, specs, used)
                conn.send(reply)
            except Exception as exc:  # reported to the parent, which raises it with this traceback
                report_error(conn, task_id, exc)
    finally:
        slots.close()


def _load_target(payload: bytes):
    try:
        return pickle.loads(payload)
    except Exception as exc:
        raise RuntimeError(
            "could not unpickle the wrapped dataset in a worker process; it must be defined at the top "
            f"level of an importable module (not in __main__ of an interactive session): {exc}"
        ) from exc
