"""Where a batch's time goes, line by line, through the user's own code.

Lines are timed by sampling: a thread wakes every `interval` seconds and reads the profiled thread's
stack from `sys._current_frames()`. Each sample weighs the wall time since the previous one, so a long
C call that holds the GIL (and delays the sample) is still charged in full to the line that made it.
It costs ~1-2% of one core whatever the code does. Exact per-line tracing costs a Python callback per
executed line (about a microsecond, under `sys.settrace` before 3.12 and still under `sys.monitoring`):
more than the lines of a per-element loop themselves, and charged to them.

Where Python has `sys.monitoring` (3.12+) the default (`auto`) adds it for what it does cheaply: exact
call counts and inclusive times of the user's functions (PY_START/PY_RETURN events; the first event
in library code returns DISABLE, so numpy's and Keras' Python code runs unobserved at full speed).
`method="monitoring"` also turns on its LINE events: exact per-line times and execution counts, at the
per-line cost above (right for numpy-heavy lines, misleading for tight pure-Python loops).

Every timer charges time to the innermost *user* frame's current line ("self" time: it includes the
library calls made from that line and excludes the user's own callees, whose lines get their own
share), to every user function on the stack (inclusive), and remembers who called each function.
"User code" is any file outside the standard library, site-packages and seqkit itself, plus the
dataset's own `__getitem__` wherever it lives, so a library dataset still shows where its time goes.

This module imports only the standard library: the monitoring path is tested on another interpreter.
"""

from __future__ import annotations

import _thread
import os
import site
import sys
import sysconfig
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

METHODS = ("auto", "monitoring", "sampling")
DEFAULT_INTERVAL = 0.001  # seconds between samples: ~1 ms resolution for ~1-2% of one core

LineKey = tuple  # (filename, line)
FunctionKey = tuple  # (filename, qualname, first line)


def has_monitoring() -> bool:
    return sys.version_info >= (3, 12) and hasattr(sys, "monitoring")


def _library_dirs() -> tuple[str, ...]:
    dirs = set()
    paths = sysconfig.get_paths()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            dirs.add(paths[name])
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # some virtualenv builds lack it
        pass
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        dirs.add(user_site)
    # seqkit's own runtime is library code for its users (and the profiler must not profile itself).
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return tuple(sorted(os.path.join(os.path.realpath(d), "") for d in dirs))


class CodeFilter:
    """Which code objects are the user's. `roots` (the dataset's `__getitem__`) always count."""

    def __init__(self, roots=()):
        self._library = _library_dirs()
        self._roots = set(roots)
        self._files: dict[str, bool] = {}
        self._codes: dict = {}

    def add_root(self, code) -> None:
        self._roots.add(code)
        self._codes.pop(code, None)

    def is_user_file(self, filename: str) -> bool:
        known = self._files.get(filename)
        if known is None:
            if not filename or filename.startswith("<"):
                known = False  # frozen modules, exec'd strings
            else:
                path = os.path.realpath(filename)
                known = not path.startswith(self._library)
            self._files[filename] = known
        return known

    def is_user(self, code) -> bool:
        known = self._codes.get(code)
        if known is None:
            known = code in self._roots or self.is_user_file(code.co_filename)
            self._codes[code] = known
        return known


def qualname(code) -> str:
    return getattr(code, "co_qualname", code.co_name)  # co_qualname is 3.11+


def function_key(code) -> FunctionKey:
    return (code.co_filename, qualname(code), code.co_firstlineno)


@dataclass
class LineTimes:
    """What one line-timing pass saw. Seconds are totals over the pass's batches."""

    method: str
    batch_seconds: list[float] = field(default_factory=list)  # wall time of each batch, timer on
    self_seconds: dict = field(default_factory=dict)  # (filename, line) -> s
    line_function: dict = field(default_factory=dict)  # (filename, line) -> FunctionKey
    function_seconds: dict = field(default_factory=dict)  # FunctionKey -> s (inclusive)
    callers: dict = field(default_factory=dict)  # FunctionKey -> Counter{(caller's FunctionKey, line): weight}
    hits: dict | None = None  # (filename, line) -> executions (exact line monitoring only)
    calls: dict | None = None  # FunctionKey -> calls (sys.monitoring only)
    samples: int | None = None  # (sampling only)
    observed_seconds: float = 0.0  # what the shares are fractions of

    def share(self, seconds: float) -> float:
        return seconds / self.observed_seconds if self.observed_seconds > 0 else 0.0

    def top_lines(self, n: int = 10) -> list[tuple[LineKey, float]]:
        return sorted(self.self_seconds.items(), key=lambda item: -item[1])[:n]

    def top_functions(self, n: int = 10) -> list[tuple[FunctionKey, float]]:
        return sorted(self.function_seconds.items(), key=lambda item: -item[1])[:n]


class _Timer:
    """Start, then run each batch through `call(getitem, index)`, then `stop()` for the LineTimes."""

    method = ""

    def __init__(self, code_filter: CodeFilter):
        self.filter = code_filter
        self.batch_seconds: list[float] = []
        self._active = False
        self._batch_start = 0.0
        self._tid = _thread.get_ident()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def call(self, getitem: Callable, index):
        self._batch_start = time.perf_counter()
        self._active = True
        try:
            return getitem(index)
        finally:
            self._active = False
            self.batch_seconds.append(time.perf_counter() - self._batch_start)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> LineTimes:
        raise NotImplementedError


class SamplingTimer(_Timer):
    method = "sampling"

    def __init__(self, code_filter: CodeFilter, interval: float = DEFAULT_INTERVAL):
        super().__init__(code_filter)
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = interval
        self._stacks: Counter = Counter()  # tuple of (code, line), innermost first -> seconds
        self._samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._switch = None
        self._result: LineTimes | None = None

    def start(self) -> None:
        # When the sampler wants the GIL, the running thread gives it up after the switch interval:
        # keep that below the sampling interval, or samples come every 5 ms whatever we ask.
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, max(self.interval / 4, 1e-4)))
        self._thread = threading.Thread(target=self._run, name="seqkit-profile-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        boundary = _Timer.call.__code__
        tid = self._tid
        last = time.perf_counter()
        stacks = self._stacks
        while not self._stop.wait(self.interval):
            now = time.perf_counter()
            if not self._active:
                last = now
                continue
            frame = sys._current_frames().get(tid)
            weight = now - max(last, self._batch_start)
            last = now
            stack = []
            while frame is not None:
                code = frame.f_code
                if code is boundary:
                    break
                stack.append((code, frame.f_lineno))
                frame = frame.f_back
            else:
                continue  # the batch ended while we looked: the stack is no longer inside it
            if stack and weight > 0:
                stacks[tuple(stack)] += weight
                self._samples += 1
            del frame

    def stop(self) -> LineTimes:
        if self._result is not None:
            return self._result
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
        result = LineTimes(self.method, batch_seconds=list(self.batch_seconds), samples=self._samples)
        callers: dict = defaultdict(Counter)
        for stack, weight in self._stacks.items():
            result.observed_seconds += weight
            # The outermost frame is the dataset's __getitem__ (or whatever `getitem` was): always shown.
            user = [(code, line) for i, (code, line) in enumerate(stack) if i == len(stack) - 1 or self.filter.is_user(code)]
            code, line = user[0]
            key = (code.co_filename, line)
            result.self_seconds[key] = result.self_seconds.get(key, 0.0) + weight
            result.line_function.setdefault(key, function_key(code))
            seen = set()
            for frame_code, frame_line in user[1:]:
                result.line_function.setdefault((frame_code.co_filename, frame_line), function_key(frame_code))
            for (inner, _), (outer, outer_line) in zip(user, user[1:] + [(None, None)]):
                fkey = function_key(inner)
                if fkey not in seen:  # recursion: a function's inclusive time counts once per sample
                    seen.add(fkey)
                    result.function_seconds[fkey] = result.function_seconds.get(fkey, 0.0) + weight
                if outer is not None:
                    callers[fkey][(function_key(outer), outer_line)] += weight
        result.callers = dict(callers)
        self._result = result
        return result


class MonitoringTimer(_Timer):
    """sys.monitoring: exact inclusive times and call counts of user functions; with `lines`, exact
    per-line self times and execution counts too."""

    method = "monitoring"
    _TOOL_IDS = (2, 3, 4)  # PROFILER_ID first; 3 and 4 have no assigned role

    def __init__(self, code_filter: CodeFilter, *, lines: bool = True):
        if not has_monitoring():
            raise RuntimeError(f"sys.monitoring needs Python 3.12+, this is {sys.version.split()[0]}")
        super().__init__(code_filter)
        self.lines = lines
        self._calls: Counter = Counter()
        self._tool = None
        self._stack: list[list] = []  # [code, line, line started (None while a user callee runs), call started]
        self._self: dict = {}
        self._functions: dict = {}
        self._callers: dict = defaultdict(Counter)
        self._hits: Counter = Counter()
        self._result: LineTimes | None = None

    def start(self) -> None:
        monitoring = sys.monitoring
        for tool in self._TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                monitoring.use_tool_id(tool, "seqkit-profile")
                self._tool = tool
                break
        else:
            raise RuntimeError("every sys.monitoring profiler tool id is taken by another tool")
        # Locations disabled by an earlier run (DISABLE is sticky) may be user code for this dataset.
        monitoring.restart_events()
        events = monitoring.events
        wanted = [
            (events.PY_START, self._on_start),
            (events.PY_RESUME, self._on_resume),
            (events.PY_RETURN, self._on_exit),
            (events.PY_YIELD, self._on_exit),
            (events.PY_UNWIND, self._on_unwind),
        ]
        if self.lines:
            wanted.append((events.LINE, self._on_line))
        mask = 0
        for event, callback in wanted:
            monitoring.register_callback(self._tool, event, callback)
            mask |= event
        monitoring.set_events(self._tool, mask)

    # The callbacks run for every event of every thread: filter first, cheaply.
    def _on_start(self, code, offset):
        if not self.filter.is_user(code):
            return sys.monitoring.DISABLE
        if not self._active or _thread.get_ident() != self._tid:
            return None
        self._calls[code] += 1
        self._enter(code)
        return None

    def _on_resume(self, code, offset):  # a generator or coroutine picks up again
        if not self.filter.is_user(code):
            return sys.monitoring.DISABLE
        if self._active and _thread.get_ident() == self._tid:
            self._enter(code)
        return None

    def _enter(self, code) -> None:
        now = time.perf_counter()
        stack = self._stack
        if stack:
            caller = stack[-1]
            if caller[2] is not None:
                key = (caller[0], caller[1])
                self._self[key] = self._self.get(key, 0.0) + now - caller[2]
                caller[2] = None
            line = caller[1]
            if not self.lines:  # no LINE events: ask the caller's frame where it is
                frame = sys._getframe(2)  # 0: _enter, 1: the callback, 2: the callee, 3: its caller
                while frame is not None and frame.f_code is not code:
                    frame = frame.f_back
                line = frame.f_back.f_lineno if frame is not None and frame.f_back is not None else line
            self._callers[code][(caller[0], line)] += 1
        stack.append([code, code.co_firstlineno, now, now])

    def _on_line(self, code, line):
        if not self.filter.is_user(code):
            return sys.monitoring.DISABLE
        if not self._active or _thread.get_ident() != self._tid:
            return None
        now = time.perf_counter()
        stack = self._stack
        if not stack or stack[-1][0] is not code:
            stack.append([code, line, now, now])  # a frame entered before the batch began
        else:
            top = stack[-1]
            if top[2] is not None:
                key = (code, top[1])
                self._self[key] = self._self.get(key, 0.0) + now - top[2]
            top[1] = line
            top[2] = now
        self._hits[(code, line)] += 1
        return None

    def _on_exit(self, code, offset, value):
        if not self.filter.is_user(code):
            return sys.monitoring.DISABLE
        self._leave(code)
        return None

    def _on_unwind(self, code, offset, exception):
        # PY_UNWIND cannot be disabled per location: never return DISABLE here.
        if self.filter.is_user(code):
            self._leave(code)

    def _leave(self, code) -> None:
        if not self._active or _thread.get_ident() != self._tid:
            return
        stack = self._stack
        if not stack or stack[-1][0] is not code:
            return
        now = time.perf_counter()
        top = stack.pop()
        if top[2] is not None:
            key = (code, top[1])
            self._self[key] = self._self.get(key, 0.0) + now - top[2]
        if not any(entry[0] is code for entry in stack):  # recursion: only the outermost call counts
            self._functions[code] = self._functions.get(code, 0.0) + now - top[3]
        if stack:
            stack[-1][2] = now

    def call(self, getitem: Callable, index):
        self._stack.clear()
        return super().call(getitem, index)

    def stop(self) -> LineTimes:
        if self._result is not None:
            return self._result
        if self._tool is not None:
            monitoring = sys.monitoring
            monitoring.set_events(self._tool, 0)
            events = monitoring.events
            for event in (events.PY_START, events.PY_RESUME, events.PY_RETURN, events.PY_YIELD, events.PY_UNWIND, events.LINE):
                monitoring.register_callback(self._tool, event, None)
            monitoring.free_tool_id(self._tool)
            self._tool = None
        result = LineTimes(self.method, batch_seconds=list(self.batch_seconds), hits={} if self.lines else None, calls={})
        result.observed_seconds = sum(self.batch_seconds)
        for code, count in self._calls.items():
            fkey = function_key(code)
            result.calls[fkey] = result.calls.get(fkey, 0) + count
        for (code, line), seconds in self._self.items():
            key = (code.co_filename, line)
            result.self_seconds[key] = result.self_seconds.get(key, 0.0) + seconds
            result.line_function.setdefault(key, function_key(code))
        for code, seconds in self._functions.items():
            fkey = function_key(code)
            result.function_seconds[fkey] = result.function_seconds.get(fkey, 0.0) + seconds
        for code, counter in self._callers.items():
            merged = result.callers.setdefault(function_key(code), Counter())
            for (caller, line), count in counter.items():
                merged[(function_key(caller), line)] += count
                result.line_function.setdefault((caller.co_filename, line), function_key(caller))
        for (code, line), count in self._hits.items():
            key = (code.co_filename, line)
            result.hits[key] = result.hits.get(key, 0) + count
        self._result = result
        return result


class HybridTimer(SamplingTimer):
    """Sampled lines plus sys.monitoring's exact function times and call counts (Python 3.12+)."""

    method = "sampling+monitoring"

    def __init__(self, code_filter: CodeFilter, interval: float = DEFAULT_INTERVAL):
        super().__init__(code_filter, interval)
        self._monitor = MonitoringTimer(code_filter, lines=False)

    def start(self) -> None:
        self._monitor.start()
        try:
            super().start()
        except BaseException:
            self._monitor.stop()
            raise

    def call(self, getitem: Callable, index):
        monitor = self._monitor
        monitor._stack.clear()
        monitor._active = True
        try:
            return super().call(getitem, index)
        finally:
            monitor._active = False

    def stop(self) -> LineTimes:
        exact = self._monitor.stop()
        result = super().stop()
        result.method = self.method
        if exact.function_seconds:
            # Exact inclusive times, as fractions of the sampled total so that shares stay comparable.
            wall = sum(self.batch_seconds)
            scale = result.observed_seconds / wall if wall > 0 else 0.0
            result.function_seconds = {key: seconds * scale for key, seconds in exact.function_seconds.items()}
        result.calls = exact.calls
        return result


def make_timer(method: str, code_filter: CodeFilter, *, interval: float = DEFAULT_INTERVAL) -> _Timer:
    """`auto`: sampled lines, plus sys.monitoring's exact function times where Python has it."""
    if method not in METHODS:
        raise ValueError(f"line_method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "monitoring" and not has_monitoring():
        raise ValueError(f"line_method='monitoring' needs Python 3.12+ (sys.monitoring); this is {sys.version.split()[0]}")
    if method == "monitoring":
        return MonitoringTimer(code_filter)
    if method == "auto" and has_monitoring():
        return HybridTimer(code_filter, interval)
    return SamplingTimer(code_filter, interval)
