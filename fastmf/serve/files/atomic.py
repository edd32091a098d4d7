"""Writing a file atomically (a locked temporary file, flushed, renamed over the target) and
removing the temporary files that killed writes left behind."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no locks, no clean-up of temp files
    fcntl = None  # type: ignore[assignment]

__all__ = ["remove_stale_temp_files", "write_atomically"]

_STALE_AFTER = 60.0
"""Seconds after which an empty, unlocked temporary file counts as left by a killed save."""


def write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace ``target`` (a resolved path in an existing folder) by what ``write`` writes.

    The content goes to a temporary file in the target's folder, locked while it is written so
    that no other save removes it, flushed to disk and renamed over the target: a crash midway
    leaves any previous file intact. The target's mode is kept (a new file gets 0o666 less the
    umask). Temporary files of killed saves of the same target are removed first.
    """
    folder = target.parent
    remove_stale_temp_files(folder, target.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # live: no other save removes it
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            os.chmod(tmp, _file_mode(target))
            os.replace(tmp, target)  # still locked: the name is gone before the lock is
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _file_mode(target: Path) -> int:
    """The mode of an existing target, else the usual mode of a new file (0o666 less umask)."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform opens folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temp_files(folder: Path, name: str) -> list[str]:
    """Delete ``.NAME.*.tmp`` files left in ``folder`` by killed saves of ``name``.

    A save holds an exclusive ``flock`` on its temporary file from just after creating it until
    the file is renamed, so a file whose lock can be taken is not being written. A file still
    empty may belong to a save that has not locked it yet: it is removed only once older than
    a minute. Returns the names removed.
    """
    if fcntl is None:
        return []
    removed = []
    pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")  # mkstemp's names
    with contextlib.suppress(OSError):
        candidates = [e for e in os.scandir(folder) if pattern.fullmatch(e.name)]
        for entry in candidates:
            with contextlib.suppress(OSError):
                if _remove_if_stale(entry.path):
                    removed.append(entry.name)
    return removed


def _remove_if_stale(path: str) -> bool:
    """Remove one temporary file unless a live save holds its lock (or may soon)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live save holds it
        if st.st_size == 0 and time.time() - st.st_mtime < _STALE_AFTER:
            return False
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)
