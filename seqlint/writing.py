"""Writing a fixed file back without losing anything the user has.

* All at once: the new text goes to a temporary file beside the target, is flushed to disk, and
  replaces the target in one rename, so a crash leaves the old file or the new one, never half.
* Through symlinks: the link's target is rewritten and the link stays a link.
* As it was: the mode bits and the owner (running as root must not make a user's file root-owned)
  carry over; a file whose owner cannot be kept, a read-only file and a file with several hard links
  (a rename would split them) are refused instead.
* Never over someone else's edit: the target is read again just before the rename and compared with
  the text the fixes were computed from. If it changed, `FileChanged` is raised and nothing is written;
  the runner then fixes the new text, or gives up and says so.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


class FileChanged(Exception):
    """The file no longer holds the text the fixes were computed from; `.current` is what it holds."""

    def __init__(self, current: bytes):
        super().__init__("the file changed while seqlint was fixing it")
        self.current = current


def encode(text: str, encoding: str) -> bytes:
    """The bytes of `text` in the file's encoding (a UTF-8 BOM is written back when it was there)."""
    if encoding == "utf-8-sig":
        return ("\ufeff" + text).encode("utf-8")
    return text.encode(encoding)


def target_of(path: Path) -> Path:
    """The file a write to `path` must change: `path` itself, or what its symlinks lead to."""
    return Path(os.path.realpath(path))


def write_atomically(path: Path, data: bytes | str, encoding: str = "utf-8", *, expected: bytes | None = None) -> None:
    """Replace the content of `path` (or of the file its symlink points to) with `data` at once.

    `expected`: the bytes the new content was computed from; when the file holds anything else by
    the time of the rename, FileChanged is raised and the file is left alone.
    """
    if isinstance(data, str):
        data = encode(data, encoding)
    target = target_of(path)
    info = os.stat(target)
    mode = stat.S_IMODE(info.st_mode)
    # Mode bits as well as access(): root may write anything, but a file with no write bit is still
    # one its owner asked to keep.
    if not os.access(target, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(errno.EACCES, "file is read-only")
    if info.st_nlink > 1:
        raise PermissionError(errno.EMLINK, f"file has {info.st_nlink} hard links, which replacing it "
                              "would split; fix a copy, or remove the extra links")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".seqlint-tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _keep_owner(tmp, info)
        os.chmod(tmp, mode)  # after chown, which may clear set-id bits
        if expected is not None:
            # Last look before the rename: the window left for an edit to slip in is this read.
            current = _read(target)
            if current != expected:
                raise FileChanged(current)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _keep_owner(tmp: str, info: os.stat_result) -> None:
    """Give the new file the old one's owner and group; refuse if that is not possible."""
    new = os.stat(tmp)
    if (new.st_uid, new.st_gid) == (info.st_uid, info.st_gid):
        return
    try:
        os.chown(tmp, info.st_uid, info.st_gid)
    except PermissionError:
        if new.st_uid != info.st_uid:
            raise PermissionError(errno.EPERM, f"cannot keep the file's owner (uid {info.st_uid}): "
                                  "rewriting it would make it yours; not written") from None
        # Same owner, another group we do not belong to: keep the owner, the group cannot follow.
        try:
            os.chown(tmp, -1, info.st_gid)
        except PermissionError:
            raise PermissionError(errno.EPERM, f"cannot keep the file's group (gid {info.st_gid}); "
                                  "not written") from None
