"""Issue 13 §2: workers never hang and nothing outlives the parent, with real processes and real kill -9.

- a batch (or the dataset's loading) that hangs raises WorkerError naming it, with the worker's stack;
- SIGKILL of the parent while workers are stuck leaves no worker, fork server or resource tracker;
- SIGKILL of the whole process group leaves segments that the next run sweeps (dead owners only).

The workers' datasets live in stuck_work.py, which loads quickly within their deadline.
"""

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
from stuck_work import Hangs, HangsWhileLoading, Small

REPO = Path(__file__).resolve().parents[2]


def mp():
    from seqkit import multiprocess

    return multiprocess


# ---- helpers ----------------------------------------------------------------------------------------


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def descendants(root):
    """Every live process below `root`, from /proc: {pid: command line}."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
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


def our_workers():
    import multiprocessing

    return [p for p in multiprocessing.active_children() if p.name.startswith("seqkit-worker")]


def segments(prefix):
    return [name for name in os.listdir("/dev/shm") if name.startswith(prefix)]


def assert_clean(pids):
    assert our_workers() == []
    assert segments(f"seqkit_{os.getpid()}_") == []
    assert [pid for pid in pids if alive(pid)] == []


# ---- timeouts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sleep", "busy", "regex-holding-the-gil"])
def test_hung_batch_raises_worker_error_with_index_and_stack(how):
    seq = mp().MultiprocessSequence(Hangs(how), workers=2, prefetch=2, timeout=1.5)
    assert seq.timeout == 1.5
    seq[0]
    pids = seq.worker_pids
    with pytest.raises(mp().WorkerError) as caught:
        for i in range(1, len(seq)):
            seq[i]
    error = caught.value
    assert error.index == 2 and error.epoch == 0
    assert "batch 2 (epoch 0) took longer than timeout=1.5s" in str(error)
    # The stack comes from the stuck worker itself: its main thread, down to the line it is stuck on.
    stack = error.worker_traceback
    assert stack.startswith("Main thread")
    assert "in __getitem__" in stack and "compute_batch" in stack
    expected_line = {"sleep": "time.sleep(3600)", "busy": "spins", "regex-holding-the-gil": "re.match("}[how]
    assert expected_line in stack and expected_line in str(error)
    assert "_exit_when_owner_gone" not in stack  # our own watcher thread is left out
    assert_clean(pids)
    # The object is not poisoned: the next call starts new workers.
    assert seq[1][0, 0] == 1
    seq.close()
    assert_clean(seq.worker_pids)


def test_hang_while_loading_the_dataset_times_out():
    seq = mp().MultiprocessSequence(HangsWhileLoading(), workers=1, timeout=1.5)
    with pytest.raises(mp().WorkerError, match=r"loading the dataset took longer than timeout=1.5s") as caught:
        seq[0]
    assert "in __setstate__" in caught.value.worker_traceback
    assert_clean([])


def test_worker_that_cannot_stop_itself_is_stopped_by_the_parent(monkeypatch):
    # A stopped process runs nothing, not even faulthandler's watchdog thread: the parent's own
    # deadline (timeout plus a grace period, shortened here) must still end the wait.
    monkeypatch.setattr(mp(), "_BACKSTOP_GRACE_SECONDS", 0.5)
    seq = mp().MultiprocessSequence(Hangs("stopped", at=0), workers=1, timeout=1.5)
    with pytest.raises(mp().WorkerError, match="batch 0 .*took longer than timeout=1.5s") as caught:
        seq[0]
    assert caught.value.index == 0
    assert_clean([])


def test_timeout_argument_is_checked_up_front():
    for bad in (0, -1, "a", True):
        with pytest.raises(ValueError, match="timeout"):
            mp().MultiprocessSequence(Small(), timeout=bad)
    assert mp().MultiprocessSequence(Small(), timeout=None).timeout is None
    assert mp().MultiprocessSequence(Small()).timeout == mp().DEFAULT_TIMEOUT


# ---- the parent killed -----------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np

    class Stuck:
        def __len__(self):
            return 10

        def __getitem__(self, index):
            if index == 1:
                while True:  # one worker spins
                    pass
            if index == 2:
                time.sleep(3600)  # the other sleeps
            return np.full((64, 64), index, np.float32)

    if __name__ == "__main__":
        from seqkit.multiprocess import MultiprocessSequence

        seq = MultiprocessSequence(Stuck(), workers=2, prefetch=2, timeout=None)
        seq[0]
        print(json.dumps({"workers": seq.worker_pids, "prefix": f"seqkit_{os.getpid()}_"}), flush=True)
        seq[1]  # waits for ever: no timeout
    """
)


def _start_script(tmp_path, **popen):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=REPO,
        **popen,
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(proc.communicate()[1])
    started = json.loads(line)
    # Both workers are inside their stuck batches before anything is killed.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = []
        for pid in started["workers"]:
            with open(f"/proc/{pid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[-1].split()[0])
        if "R" in states and "S" in states:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    return proc, started


def _wait_gone(pids, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.slow
def test_parent_killed_while_workers_are_stuck_leaves_no_process(tmp_path):
    proc, started = _start_script(tmp_path)
    family = descendants(proc.pid)
    # What would be orphaned: the two stuck workers, the fork server and the resource tracker.
    assert set(started["workers"]) <= set(family)
    assert any("forkserver" in cmd for cmd in family.values())
    assert any("resource_tracker" in cmd for cmd in family.values())
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, not its group
    proc.communicate(timeout=30)
    left = _wait_gone(list(family))
    assert left == [], {pid: family[pid] for pid in left}
    # The resource tracker outlived the workers long enough to unlink their segments.
    assert segments(started["prefix"]) == []


@pytest.mark.slow
def test_process_group_killed_leaves_segments_the_next_run_sweeps(tmp_path):
    from seqkit import shm

    proc, started = _start_script(tmp_path, start_new_session=True)
    family = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)  # everything, the resource tracker too: no cleanup code runs
    proc.communicate(timeout=30)
    assert _wait_gone([proc.pid, *family]) == []
    left = segments(started["prefix"])
    assert left, "precondition: the killed group left its segments"
    # Decoys the sweep must not touch: a live owner's segment, and a dead owner's from another host tag.
    live = Path(f"/dev/shm/seqkit_{os.getppid()}_{shm.host_tag()}abcdef_0_0")
    foreign_tag = "000000" if shm.host_tag() != "000000" else "111111"
    foreign = Path(f"/dev/shm/seqkit_{proc.pid}_{foreign_tag}abcdef_0_0")
    live.touch()
    foreign.touch()
    try:
        with mp().MultiprocessSequence(Small(), workers=1) as seq:  # the next run
            seq[0]
        assert [name for name in left if Path("/dev/shm", name).exists()] == []
        assert live.exists() and foreign.exists()
    finally:
        live.unlink(missing_ok=True)
        foreign.unlink(missing_ok=True)


def test_sweep_removes_only_dead_owners_segments_of_this_host():
    from seqkit import shm

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)  # exited and reaped: no such process any more
    assert not alive(dead)
    tag = shm.host_tag()
    other_tag = "000000" if tag != "000000" else "111111"
    names = {
        f"seqkit_{dead}_{tag}0a0b0c_0_1": False,  # dead owner, this host: swept
        f"seqkit_{dead}_{tag}0a0b0c_s0_a0": False,
        f"seqkit_{os.getppid()}_{tag}0a0b0c_0_1": True,  # live owner
        f"seqkit_{dead}_{other_tag}0a0b0c_0_1": True,  # another pid namespace or boot: not ours to judge
        f"seqkit_{dead}_deadbeef_0_1": True,  # not our naming
        f"other_{dead}_{tag}0a0b0c": True,
    }
    for name in names:
        Path("/dev/shm", name).touch()
    try:
        swept = shm.sweep_dead_owners()
        assert sorted(name for name in names if not names[name]) == sorted(n for n in swept if n in names)
        assert {name: Path("/dev/shm", name).exists() for name in names} == names
    finally:
        for name in names:
            Path("/dev/shm", name).unlink(missing_ok=True)
