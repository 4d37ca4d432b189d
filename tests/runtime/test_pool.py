"""seqkit.pool.ordered_map (the workers of `pack`): order, errors as raised, and the guarantees of issue 13
§2: an item that hangs raises WorkerError with the worker's stack, and a SIGKILLed caller leaves no
process behind. No Keras here: these workers start in milliseconds (their functions are in stuck_work.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seqkit.pool import WorkerError, ordered_map
from stuck_work import dies_on_2, fails_on_5, hangs_on_3, slow_square, square

REPO = Path(__file__).resolve().parents[2]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def pool_children():
    import multiprocessing

    return [p for p in multiprocessing.active_children() if p.name.startswith("seqkit-pool")]


def test_results_in_order_with_items_finishing_out_of_order():
    assert list(ordered_map(slow_square, range(20), 3)) == [(i, i * i) for i in range(20)]
    assert list(ordered_map(square, [], 2)) == []
    assert list(ordered_map(square, range(4), 1)) == [(i, i * i) for i in range(4)]  # inline
    assert pool_children() == []


def test_exception_is_raised_as_the_function_raised_it_with_the_workers_traceback():
    with pytest.raises(KeyError, match="no row 5") as caught:
        list(ordered_map(fails_on_5, range(10), 2))
    assert "in fails_on_5" in str(caught.value.__cause__)
    assert pool_children() == []


def test_item_that_hangs_raises_worker_error_with_its_stack():
    got = []
    with pytest.raises(WorkerError, match=r"item 3 took longer than timeout=1.5s") as caught:
        for item, result in ordered_map(hangs_on_3, range(8), 2, timeout=1.5):
            got.append(result)
    assert got == [0, 1, 2]
    assert caught.value.index == 3
    assert "in hangs_on_3" in caught.value.worker_traceback and "time.sleep(3600)" in caught.value.worker_traceback
    assert pool_children() == []


def test_worker_that_dies_is_reported():
    with pytest.raises(WorkerError, match=r"died with signal SIGKILL.*while working on item 2"):
        list(ordered_map(dies_on_2, range(6), 2))
    assert pool_children() == []


def test_stopping_early_stops_the_workers():
    results = ordered_map(hangs_on_3, range(8), 2)
    assert next(results) == (0, 0)
    results.close()  # the caller stops reading (an error of its own): item 3's worker is stuck
    assert pool_children() == []


def test_bad_arguments():
    with pytest.raises(TypeError, match="picklable"):
        list(ordered_map(lambda x: x, range(3), 2))
    with pytest.raises(ValueError, match="timeout"):
        list(ordered_map(square, range(3), 2, timeout=0))


SCRIPT = textwrap.dedent(
    """
    import time
    from seqkit.pool import ordered_map

    def stuck(x):
        time.sleep(3600)

    if __name__ == "__main__":
        next(ordered_map(stuck, range(4), 2, timeout=None))
    """
)


@pytest.mark.slow
def test_caller_killed_while_items_are_stuck_leaves_no_process(tmp_path):
    script = tmp_path / "pack_like.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stderr=subprocess.PIPE)
    # Wait until the fork server has started both workers (they then sleep in `stuck`).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(_descendants(proc.pid)) < 4:
        time.sleep(0.05)
    time.sleep(0.3)
    family = _descendants(proc.pid)
    # Two workers, the fork server, the resource tracker: all of them would be orphaned.
    assert len(family) == 4 and sum("resource_tracker" in cmd for cmd in family.values()) == 1, family
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in family):
        time.sleep(0.05)
    assert {pid: cmd for pid, cmd in family.items() if alive(pid)} == {}


def _descendants(root):
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[-1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return found


def test_any_picklable_result_comes_back():
    # Results are pickled back, so any picklable object comes through as itself.
    assert [r for _, r in ordered_map(json.loads, ['{"a": 1}', "[2]"], 2)] == [{"a": 1}, [2]]
