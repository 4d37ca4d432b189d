"""Shared-memory slots that carry batches from worker processes to the parent without pickling arrays.

A slot is one POSIX shared-memory segment holding every leaf of one batch back to back. The parent owns
the ring of slots (it hands a free slot to each task and unlinks everything at shutdown); a worker that
finds its slot too small replaces it with a bigger segment it creates itself, and the parent adopts that
segment when the result arrives. So slots are sized from the first batch and grow only when a batch is
larger, and in steady state no segment is created or destroyed.

Every segment name starts with the pool's prefix, so whatever a dying worker created but never reported
can still be found in /dev/shm and removed.

This module is imported by workers: numpy and the standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

_ALIGN = 64  # cache-line alignment for every leaf: copies run at full speed and dtypes stay aligned
_PAGE = 4096
_SHM_DIR = "/dev/shm"


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
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=size)
        self.name = name
        self.size = self.shm.size
        self.array = np.frombuffer(self.shm.buf, dtype=np.uint8)

    def close(self) -> None:
        # numpy views keep the buffer exported; drop ours first, then the mapping itself is freed when
        # the last caller's view goes (close() refuses while views exist, which is harmless here).
        self.array = None
        try:
            self.shm.close()
        except BufferError:
            pass

    def unlink(self) -> None:
        try:
            self.shm.unlink()
        except FileNotFoundError:
            pass


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
        except (FileNotFoundError, ValueError, OSError):
            continue
        try:
            segment.unlink()
        except FileNotFoundError:
            pass
        segment.close()


class SlotRing:
    """The parent's side: which slots are free and which segment each slot currently is."""

    def __init__(self, count: int, prefix: str):
        self.prefix = prefix
        self.segments: list[Segment | None] = [None] * count
        self.free: list[int] = list(range(count))[::-1]

    def acquire(self) -> int | None:
        return self.free.pop() if self.free else None

    def release(self, slot: int) -> None:
        self.free.append(slot)

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

    def close(self) -> None:
        for segment in self.mapped.values():
            segment.close()
        self.mapped.clear()
