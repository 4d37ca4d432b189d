"""Temp files and folders that say who made them, and the sweep that removes those of dead writers.

Every seqkit writer (caches, packs, manifests) writes under a temp name
`.<base>.<token>.seqkit-<pid>@<host>.tmp` and renames it into place when done. A writer killed with
SIGKILL cannot clean up, so every writer first sweeps the folder it writes into: temps whose process on
this host is gone are removed. Temps of live processes, of other hosts (a shared file system) and
anything else are left alone. (Containers that share a folder and a host name but not a pid namespace
would see each other's writers as dead: give them different host names.)
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from pathlib import Path

HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"
_TEMP = re.compile(r"^\.(?P<base>.*)\.seqkit-(?P<pid>\d+)@(?P<host>[A-Za-z0-9._-]+)\.tmp$")
_LEGACY_TEMP = re.compile(r"^\.(?P<base>.+\.npy)\.(?P<pid>\d+)\.tmp$")  # seqkit 0.1's NpyWriter: pid only



def temp_name(base: str) -> str:
    """A new name for a temp file or folder for `base`, tagged with this process's pid and host (and a
    random token, so that two writers in one process never share a temp)."""
    return f".{base}.{secrets.token_hex(4)}.seqkit-{os.getpid()}@{HOST}.tmp"


def temp_owner(name: str) -> tuple[int, str] | None:
    """(pid, host) of the writer that made temp file `name`, or None if it is not a seqkit temp name."""
    match = _TEMP.match(name)
    if match:
        return int(match["pid"]), match["host"]
    match = _LEGACY_TEMP.match(name)
    if match:
        return int(match["pid"]), HOST
    return None


def process_alive(pid: int) -> bool:
    """Whether process `pid` (on this host) still runs. A zombie (dead, not yet reaped) does not: it
    runs no code and holds nothing."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
        return text[text.rindex(b")") + 2 : text.rindex(b")") + 3] not in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def sweep(directory: str | os.PathLike) -> list[Path]:
    """Remove the temp files and folders in `directory` whose writer was a process on this host that
    is no longer running; return what was removed. Others' live writes, other hosts' temps (a shared
    file system) and everything that is not a seqkit temp name are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(os.path.expanduser(os.fspath(directory))))
    except OSError:
        return removed
    for entry in entries:
        owner = temp_owner(entry.name)
        if owner is None:
            continue
        pid, host = owner
        if host != HOST or pid == os.getpid() or process_alive(pid):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass  # another process swept it first
        except OSError:
            continue  # not ours to remove (permissions): leave it
        removed.append(path)
    return removed
