"""What every seqkit worker process is guaranteed: it dies with its owner, and no job in it runs forever.

Used by MultiprocessSequence and by `seqkit.pool.ordered_map`. Imported by workers, so the standard
library only.

Dying with the owner. With the default "forkserver" start method a worker's parent is the fork server,
not the process that wants its batches (the owner), and the fork server itself lives as long as any
worker holds its "alive" pipe, which every worker does. So a worker stuck in a batch when its owner is
SIGKILLed kept itself, the fork server and the resource tracker alive for ever. Three layers:
  * a lifeline: one pipe per pool whose write end only the owner holds and never writes to. A thread in
    every worker blocks on the read end and ends the process when it reports end-of-file, which the
    kernel does the moment the owner is gone, however it died;
  * `prctl(PR_SET_PDEATHSIG, SIGKILL)` on Linux: the kernel's own guarantee when the worker's parent is
    the owner ("spawn"/"fork" from its main thread; the signal follows the *thread* that forked, so it
    is not set for a worker started from another thread, such as a tf.data thread), and for the fork
    server's children if the fork server is killed;
  * the job deadline below, which needs neither the parent nor the GIL, so even a worker stuck in C code
    holding the GIL is gone after `timeout` seconds.
Once the workers are gone the fork server sees its pipe close and exits, and so does the resource
tracker.

No job runs forever. Every job (loading the dataset, one batch, one item) runs under an interval timer
(`setitimer`, two system calls per job). When the time is up, SIGALRM reaches faulthandler's handler,
which is C code that needs no GIL: it writes the Python stack of every thread of the worker into the
worker's stack pipe, then lets the signal's default action end the process. The owner sees the death by
SIGALRM, reads the pipe and raises `WorkerError` naming the job with the worker's stack. (Where there is
no setitimer, `faulthandler.dump_traceback_later(exit=True)` does the same, at ~150 us per job for its
thread.) So a dataset must not use SIGALRM itself (`signal.alarm`) inside a worker. SIGUSR1 dumps the
same stacks on demand: the owner's fallback for a worker that did not stop itself (stopped in a
debugger, stuck in the kernel).
"""

from __future__ import annotations

import ctypes
import faulthandler
import linecache
import os
import pickle
import re
import select
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["WorkerError", "Guard", "WorkerProcess", "start_workers", "stop_workers"]

# Sent by the owner when a worker overran its deadline without stopping itself (a process stopped in a
# debugger, stuck in the kernel): faulthandler dumps the worker's stacks without the GIL.
STACK_SIGNAL = getattr(signal, "SIGUSR1", None)
# What the job deadline's interval timer sends (None: no setitimer on this platform).
TIMER_SIGNAL = signal.SIGALRM if hasattr(signal, "setitimer") else None
_PR_SET_PDEATHSIG = 1
_STACK_PIPE_BYTES = 1 << 20  # room for a dump of many threads, so the dumping thread never blocks
_MAIN_THREAD_LINE = "seqkit worker main thread "
_STOP_GRACE_SECONDS = 2.0
_LIFELINE_EXIT_SECONDS = 0.5  # a worker's lifeline thread ends it within milliseconds, unless it cannot run
_DUMP_PAUSE_SECONDS = 0.2  # a live worker's dump is complete once its pipe has been quiet this long


class WorkerError(RuntimeError):
    """A batch (or item) could not be produced by a worker: it raised, overran its timeout, or the
    worker process died. `index` is the batch or item, `worker_traceback` the worker's traceback or,
    after a timeout, the stack it was stuck in."""

    def __init__(self, message: str, *, index=None, epoch=None, worker_traceback: str = ""):
        super().__init__(message)
        self.index = index
        self.epoch = epoch
        self.worker_traceback = worker_traceback


def check_timeout(timeout, name: str = "timeout") -> float | None:
    """`timeout` as seconds (a positive number), or None for no limit."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:  # NaN too
        raise ValueError(f"{name} must be a number of seconds > 0 or None, got {timeout!r}")
    return None if timeout == float("inf") else float(timeout)


# ---- the worker's side -----------------------------------------------------------------------------


@dataclass
class Guard:
    """What a worker needs to die with its owner and to time its jobs; built by `start_workers` and
    passed to the worker as an argument (the pipe ends travel as duplicated descriptors)."""

    lifeline: object  # read end (a multiprocessing Connection); end-of-file means the owner is gone
    stacks: object  # write end of this worker's stack pipe
    timeout: float | None
    parent_death_signal: bool
    close_fds: tuple = ()  # descriptors a forked worker inherited but must not hold (the lifeline's write end)

    def arm(self) -> None:
        """Call first thing in the worker."""
        for fd in self.close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        owner_gone = self.lifeline.fileno()
        if self.parent_death_signal:
            _set_parent_death_signal()
        stack_fd = self.stacks.fileno()
        _grow_pipe(stack_fd)
        # A dump must never block the thread that writes it (and then exits the process): a full pipe
        # truncates the dump instead.
        os.set_blocking(stack_fd, False)
        os.write(stack_fd, f"{_MAIN_THREAD_LINE}{threading.main_thread().ident:#018x}\n".encode())
        if STACK_SIGNAL is not None:
            faulthandler.register(STACK_SIGNAL, file=stack_fd, all_threads=True, chain=False)
        if TIMER_SIGNAL is not None and self.timeout is not None:
            # Dump, then the default action (chain=True re-raises with it): the process ends by SIGALRM.
            signal.signal(TIMER_SIGNAL, signal.SIG_DFL)
            faulthandler.register(TIMER_SIGNAL, file=stack_fd, all_threads=True, chain=True)
        watcher = threading.Thread(target=_exit_when_owner_gone, args=(owner_gone,), name="seqkit-lifeline", daemon=True)
        watcher.start()

    @contextmanager
    def deadline(self):
        """Run one job with the timeout: past it, the stacks go to the owner and the worker exits."""
        if self.timeout is None:
            yield
        elif TIMER_SIGNAL is not None:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            faulthandler.dump_traceback_later(self.timeout, exit=True, file=self.stacks.fileno())
            try:
                yield
            finally:
                faulthandler.cancel_dump_traceback_later()


def _exit_when_owner_gone(fd: int) -> None:
    while True:
        try:
            if os.read(fd, 1) == b"":
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os._exit(1)


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # the lifeline still works


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        return
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if setsize is None:
        return
    try:
        fcntl.fcntl(fd, setsize, _STACK_PIPE_BYTES)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default 64 KiB holds the usual one or two threads


# ---- the owner's side ------------------------------------------------------------------------------


class WorkerProcess:
    """One worker: the process, the duplex pipe the caller talks over, and the worker's stack pipe."""

    def __init__(self, process, conn, stacks):
        self.process = process
        self.conn = conn
        self._stacks = stacks  # read end
        self._stack_text = b""
        self._stacks_closed = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_stacks(self, wait: float = 0.0) -> str:
        """Whatever the worker dumped, formatted (see `format_stacks`). Waits up to `wait` seconds for
        a dump to start; a dump ends with the pipe closing (the worker exited) or a pause."""
        fd = self._stacks.fileno()
        deadline = time.monotonic() + wait
        while not self._stacks_closed:
            dumping = b"most recent call first" in self._stack_text
            timeout = _DUMP_PAUSE_SECONDS if dumping else deadline - time.monotonic()
            try:
                ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
                chunk = os.read(fd, 1 << 16) if ready else None
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                break
            if chunk is None:
                break
            if not chunk:
                self._stacks_closed = True  # the worker is gone: the dump is complete
                break
            self._stack_text += chunk
        return format_stacks(self._stack_text.decode("utf-8", "replace"))

    def timed_out(self) -> bool:
        """Did the worker (now dead) stop itself because a job overran its deadline (Guard.deadline)?"""
        self.read_stacks()
        if TIMER_SIGNAL is not None:
            return self.process.exitcode == -TIMER_SIGNAL
        return b"\nTimeout (" in self._stack_text

    def request_stacks(self, wait: float = 1.0) -> str:
        """Ask a live worker for its stacks (SIGUSR1) and return them."""
        if STACK_SIGNAL is not None and self.process.is_alive():
            try:
                os.kill(self.process.pid, STACK_SIGNAL)
            except OSError:
                pass
        return self.read_stacks(wait=wait)

    def exit_description(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def close(self) -> None:
        for end in (self.conn, self._stacks):
            try:
                end.close()
            except OSError:
                pass
        self.process.close()


def report_error(conn, tag, exc: BaseException) -> None:
    """Send the parent a worker's exception for task `tag`: pickled when it survives a round trip
    (else only its text), with the formatted traceback. A parent already gone is no error."""
    text = traceback.format_exc()
    try:
        payload = pickle.dumps(exc)
        pickle.loads(payload)
    except Exception:
        payload = None
    try:
        conn.send(("error", tag, payload, f"{type(exc).__name__}: {exc}", text))
    except (OSError, EOFError):
        pass


def start_workers(context, target, count: int, args: tuple, *, name: str, timeout: float | None):
    """Start `count` processes running `target(conn, guard, *args)`; returns (workers, lifeline).

    The caller keeps `lifeline` (the write end of the lifeline pipe) open for as long as the workers
    should live, and closes it in `stop_workers`.
    """
    lifeline_read, lifeline_write = context.Pipe(duplex=False)
    forked = context.get_start_method() == "fork"
    # PR_SET_PDEATHSIG fires when the thread that forked the worker ends: the fork server's only thread
    # is fine, and so is our main thread; any other thread may end long before this process does.
    from_main_thread = threading.current_thread() is threading.main_thread()
    death_signal = context.get_start_method() == "forkserver" or from_main_thread
    workers: list[WorkerProcess] = []
    try:
        for number in range(count):
            parent_end, child_end = context.Pipe(duplex=True)
            stacks_read, stacks_write = context.Pipe(duplex=False)
            guard = Guard(
                lifeline=lifeline_read,
                stacks=stacks_write,
                timeout=timeout,
                parent_death_signal=death_signal,
                close_fds=(lifeline_write.fileno(),) if forked else (),
            )
            process = context.Process(target=target, args=(child_end, guard, *args), name=f"{name}-{number}", daemon=True)
            try:
                process.start()
            finally:
                child_end.close()
                stacks_write.close()
            os.set_blocking(stacks_read.fileno(), False)
            workers.append(WorkerProcess(process, parent_end, stacks_read))
    except BaseException:
        stop_workers(workers, lifeline_write, graceful=False)
        raise
    finally:
        lifeline_read.close()
    return workers, lifeline_write


def stop_workers(workers: list[WorkerProcess], lifeline, graceful: bool, stop_message=("stop",)) -> None:
    """Stop the workers: ask them (and wait, if `graceful`), then close the lifeline, which ends any
    worker still running even in the middle of a job, and kill what is left after a moment."""
    for worker in workers:
        try:
            worker.conn.send(stop_message)
        except (OSError, ValueError):
            pass
    if graceful:
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
    if lifeline is not None:
        lifeline.close()
    deadline = time.monotonic() + _LIFELINE_EXIT_SECONDS
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        if worker.process.is_alive():
            worker.process.kill()  # stuck with the GIL held, or stopped
            worker.process.join()
    for worker in workers:
        worker.close()


_THREAD_HEADER = re.compile(r"^(Current thread|Thread) (0x[0-9a-f]+) \(most recent call first\):$")
_FRAME_LINE = re.compile(r'^  File "(?P<path>.+)", line (?P<line>\d+) in (?P<name>.+)$')


def format_stacks(raw: str) -> str:
    """A faulthandler dump made readable: the worker's main thread first and named, the lifeline
    watcher left out, and each frame followed by its source line."""
    main = None
    blocks: list[tuple[str | None, list[str]]] = []
    for line in raw.splitlines():
        if line.startswith(_MAIN_THREAD_LINE):
            main = line[len(_MAIN_THREAD_LINE) :].strip()
            continue
        header = _THREAD_HEADER.match(line)
        if header:
            blocks.append((header.group(2), []))
            continue
        if line.startswith("Timeout (") or not line.strip():
            continue
        if not blocks:
            blocks.append((None, []))
        frame = _FRAME_LINE.match(line)
        blocks[-1][1].append(line)
        if frame:
            source = linecache.getline(frame["path"], int(frame["line"])).strip()
            if source:
                blocks[-1][1].append(f"    {source}")
    shown = []
    for ident, lines in blocks:
        if any("in _exit_when_owner_gone" in line for line in lines):
            continue
        is_main = ident is not None and main is not None and int(ident, 16) == int(main, 16)
        title = "Main thread" if is_main else f"Thread {ident}"
        shown.append((not is_main, f"{title} (most recent call first):\n" + "\n".join(lines)))
    shown.sort(key=lambda item: item[0])
    return "\n\n".join(text for _, text in shown)
