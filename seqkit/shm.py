"""Shared-memory slots that carry batches from worker processes to the parent without pickling arrays.

A slot is one POSIX shared-memory segment holding every leaf of one batch back to back. The parent owns
the ring of slots (it hands a free slot to each task and unlinks everything at shutdown); a worker that
finds its slot too small replaces it with a bigger segment it creates itself, and the parent adopts that
segment when the result arrives. So slots are sized from the first batch and grow only when a batch is
larger, and in steady state no segment is created or destroyed.

Every segment name starts with the pool's prefix, `seqkit_<owner pid>_<host tag><random>` (see
`new_prefix`), so whatever a dying worker created but never reported can still be found in /dev/shm and
removed, by the pool at shutdown or, if the whole process group was killed, by the next run
(`sweep_dead_owners`), which removes the segments of owners that are dead on this host.

This module is imported by workers: numpy and the standard library only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from seqkit.tempfiles import process_alive

_ALIGN = 64  # cache-line alignment for every leaf: copies run at full speed and dtypes stay aligned
_PAGE = 4096
_SHM_DIR = "/dev/shm"
# Segments kept beyond the ring's size for batches the consumer still holds (Keras keeps the current
# batch and the one before): without them a slot would be unlinked and re-created every epoch.
_SPARE_SLOTS = 2


@dataclass(frozen=True)
class LeafSpec:
    """Where one leaf of a batch lives in its slot. `dtype` is None for a None leaf."""

    dtype: str | None
    shape: tuple[int, ...]
    offset: int


def layout(leaves: list) -> tuple[list[LeafSpec], int]:
    """Offsets of `leaves` packed back to back, and the bytes they need."""
    specs = []
    end = 0
    for leaf in leaves:
        if leaf is None:
            specs.append(LeafSpec(None, (), end))
            continue
        offset = -(-end // _ALIGN) * _ALIGN
        specs.append(LeafSpec(leaf.dtype.str, tuple(leaf.shape), offset))
        end = offset + leaf.nbytes
    return specs, end


def grown_size(needed: int, current: int) -> int:
    """A new slot size: at least `needed`, with headroom when a slot has to grow a second time."""
    size = needed if current == 0 else max(needed, current + current // 4)
    return max(_PAGE, -(-size // _PAGE) * _PAGE)


def view(buf: np.ndarray, spec: LeafSpec) -> np.ndarray | None:
    """The leaf described by `spec` inside `buf`, without copying."""
    if spec.dtype is None:
        return None
    dtype = np.dtype(spec.dtype)
    count = int(np.prod(spec.shape, dtype=np.int64))
    return np.frombuffer(buf, dtype=dtype, count=count, offset=spec.offset).reshape(spec.shape)


class Segment:
    """One mapped segment; `array` is a uint8 view of the whole mapping."""

    def __init__(self, name: str, size: int = 0, *, create: bool = False):
        if create:
            check_room(size)
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=size)
        # The mapping is all we need; an open descriptor per segment would run into the fd limit when
        # many batches are held by the caller.
        fd, self.shm._fd = self.shm._fd, -1
        os.close(fd)
        self.name = name
        self.size = self.shm.size
        self.array = np.frombuffer(self.shm.buf, dtype=np.uint8)

    def lend(self) -> tuple[np.ndarray, memoryview]:
        """A fresh uint8 view of the mapping and the token that lives exactly as long as views of it.

        numpy collapses view chains to the first object that is not an array, here the memoryview
        np.frombuffer creates for this call, so a finalizer on it fires when the last view is gone.
        """
        flat = np.frombuffer(self.shm.buf, dtype=np.uint8)
        return flat, flat.base

    def close(self) -> None:
        self.array = None
        try:
            self.shm.close()
        except BufferError:
            # Arrays lent to the caller still use the mapping: leave it to them (it is unmapped when the
            # last one goes) and make sure SharedMemory.__del__ does not try again and complain.
            self.shm._buf = None
            self.shm._mmap = None

    def unlink(self) -> None:
        try:
            self.shm.unlink()
        except FileNotFoundError:
            pass


def segment_path(name: str) -> str:
    return os.path.join(_SHM_DIR, name)


def check_room(size: int) -> None:
    # tmpfs accepts a segment larger than its free space and then kills the writer with SIGBUS; say why
    # before that happens (Docker's default /dev/shm is 64 MB).
    try:
        stat = os.statvfs(_SHM_DIR)
    except OSError:
        return
    free = stat.f_bavail * stat.f_frsize
    if size > free:
        raise MemoryError(
            f"{_SHM_DIR} has {free / 2**20:.0f} MiB free, a batch slot needs {size / 2**20:.0f} MiB: "
            "enlarge it (docker run --shm-size=...) or lower prefetch / the batch size"
        )


_NAME = re.compile(r"^seqkit_(?P<pid>\d+)_(?P<tag>[0-9a-f]{6})[0-9a-f]{6}(?:_|$)")


@functools.cache
def host_tag() -> str:
    """Six hex digits naming this boot and pid namespace. A pid means a process only within both: the
    sweep leaves alone segments from another namespace that shares /dev/shm (a container with
    --ipc=host), whose owners it cannot see."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha1(f"{boot}|{namespace}".encode(), usedforsecurity=False).hexdigest()[:6]


def new_prefix() -> str:
    """A fresh segment-name prefix for one pool of this process: `seqkit_<pid>_<host tag><random>`."""
    return f"seqkit_{os.getpid()}_{host_tag()}{secrets.token_hex(3)}"


def sweep_dead_owners() -> list[str]:
    """Unlink the segments left by seqkit processes that died without cleaning up (the whole process
    group SIGKILLed, so not even the resource tracker survived). Only names of this host tag whose owner
    pid is dead are touched; returns them."""
    try:
        names = os.listdir(_SHM_DIR)
    except OSError:
        return []
    tag = host_tag()
    owners: dict[int, bool] = {}
    swept = []
    for name in names:
        match = _NAME.match(name)
        if match is None or match["tag"] != tag:
            continue
        pid = int(match["pid"])
        if pid not in owners:
            owners[pid] = process_alive(pid)
        if owners[pid]:
            continue
        try:
            os.unlink(os.path.join(_SHM_DIR, name))
        except OSError:
            continue  # another run swept it first
        swept.append(name)
    return swept


def remove_leftovers(prefix: str) -> None:
    """Unlink every segment whose name starts with `prefix` (those a killed worker never reported)."""
    try:
        names = [name for name in os.listdir(_SHM_DIR) if name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        try:
            # Attaching and unlinking through SharedMemory also tells the resource tracker it is gone.
            segment = shared_memory.SharedMemory(name=name)
        except FileNotFoundError:
            continue
        except (ValueError, OSError):
            # Empty: the worker was stopped between creating and sizing it, before the resource
            # tracker heard of it; only the name is left to remove.
            try:
                os.unlink(os.path.join(_SHM_DIR, name))
            except OSError:
                pass
            continue
        try:
            segment.unlink()
        except FileNotFoundError:
            pass
        segment.close()


class SlotRing:
    """The parent's side: which slots are free and which segment each slot currently is.

    A slot whose arrays were handed to the caller without a copy is on loan: it comes back through
    `returned` (appended by a finalizer, from any thread) when the caller drops the last of them.
    """

    def __init__(self, count: int, prefix: str):
        self.prefix = prefix
        self.target = count
        self.segments: list[Segment | None] = [None] * count
        self.free: list[int] = list(range(count))[::-1]
        self.returned: deque[int] = deque()

    def acquire(self) -> int | None:
        return self.free.pop() if self.free else None

    def add(self) -> int:
        """One more slot, for when the caller holds on to lent batches."""
        self.segments.append(None)
        return len(self.segments) - 1

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def lend(self, slot: int, token) -> None:
        finalizer = weakref.finalize(token, self.returned.append, slot)
        finalizer.atexit = False

    def take_back(self) -> list[str]:
        """File returned slots as free; unlink those beyond what a reader normally needs (the ring, the
        batch being consumed and the one its consumer still holds). Returns the unlinked names."""
        retired = []
        while self.returned:
            slot = self.returned.popleft()
            segment = self.segments[slot]
            live = sum(segment is not None for segment in self.segments)
            if len(self.free) < self.target or segment is None or live <= self.target + _SPARE_SLOTS:
                self.free.append(slot)
                continue
            segment.unlink()
            segment.close()
            self.segments[slot] = None  # the id is never used again
            retired.append(segment.name)
        return retired

    def describe(self, slot: int) -> tuple[str | None, int]:
        segment = self.segments[slot]
        return (None, 0) if segment is None else (segment.name, segment.size)

    def adopt(self, slot: int, name: str) -> Segment:
        """Make `name` the segment of `slot` (a worker created it), unlinking the one it replaces."""
        old = self.segments[slot]
        if old is not None and old.name == name:
            return old
        if old is not None:
            old.unlink()
            old.close()
        segment = Segment(name)
        self.segments[slot] = segment
        return segment

    def destroy(self) -> None:
        # Lent mappings stay valid for the caller: unlinking removes only the name.
        for slot, segment in enumerate(self.segments):
            if segment is not None:
                segment.unlink()
                segment.close()
            self.segments[slot] = None
        remove_leftovers(self.prefix)


class WorkerSlots:
    """A worker's side: the segments it has mapped, by slot, created or grown on demand."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.mapped: dict[int, Segment] = {}

    def segment_for(self, slot: int, name: str | None, size: int, needed: int, task_id: int) -> Segment:
        current = self.mapped.get(slot)
        if current is not None and current.name != name:
            current.close()
            current = None
        if current is None and name is not None:
            current = Segment(name)
        if current is not None and current.size >= needed:
            self.mapped[slot] = current
            return current
        if current is not None:
            current.close()  # the parent unlinks it when it adopts the replacement
        grown = Segment(f"{self.prefix}_{slot}_{task_id}", grown_size(needed, size), create=True)
        self.mapped[slot] = grown
        return grown

    def forget(self, names: list[str]) -> None:
        """Unmap segments the parent retired, so their memory is freed."""
        for slot, segment in list(self.mapped.items()):
            if segment.name in names:
                segment.close()
                del self.mapped[slot]

    def close(self) -> None:
        for segment in self.mapped.values():
            segment.close()
        self.mapped.clear()
