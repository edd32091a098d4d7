"""Where fastmf keeps downloads and parsed ratings, and the parsed cache itself.

The parsed cache holds one folder per source file: a ``.npy`` file per column and ``meta.json``
with the source's fingerprint, the cache format version and a checksum of each column. The
fingerprint keys the source as git's index keys a file: device, inode, size, modification time
and status-change time (ctime, in nanoseconds). ``cp -p`` or ``rsync -t`` can set a file's mtime
back after editing it in place, but not its ctime, so such an edit still changes the fingerprint.
The folder's name carries a hash of the fingerprint, so a changed source gets a new folder.

A folder is written under a temporary name and renamed into place when complete, so a reader
finds either a whole cache or none. A cache is checked on load as the parser checks fresh
columns (dtypes, lengths, ids non-negative, ratings finite and on the release's scale) and
against its checksums; one that fails is removed with a warning and the source parsed again.
The columns are memory-mapped copy-on-write (``mmap_mode="c"``): a user who edits the DataFrame
changes private pages, never the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from fastmf._kernels import parsing as K
from fastmf._kernels.hashing import hash_bytes
from fastmf._threads import KERNEL_LOCK
from fastmf.data.datasets.releases import Scale

# Bump when the parser or the cache layout changes: older caches are then parsed again.
CACHE_VERSION = 2

# The checksum's name in meta.json (fastmf._kernels.hashing.hash_words): a new name discards
# older caches.
CHECKSUM = "fastmf-keyed-sum-fmix64-1"

COLUMNS = {"user": "int32", "item": "int32", "rating": "float32", "timestamp": "int64"}


def default_data_home() -> Path:
    """The user's cache folder for fastmf: ``$FASTMF_HOME``, else the platform's cache folder."""
    env = os.environ.get("FASTMF_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "fastmf" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fastmf"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "fastmf"


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """``data_home`` as a Path, or the default folder when None. Nothing is created."""
    if data_home is None:
        return default_data_home()
    if not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            f"data_home must be a path (str or os.PathLike) or None, not {type(data_home).__name__}"
        )
    return Path(data_home).expanduser()


def fingerprint(path: Path, member: str | None = None) -> dict:
    """What identifies a source's content cheaply, as git's index does: its path, zip member,
    device, inode, size, mtime and ctime (nanoseconds)."""
    st = path.stat()
    return {
        "path": str(path.resolve()),
        "member": member,
        "device": st.st_dev,
        "inode": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "version": CACHE_VERSION,
    }


def checksum(a: np.ndarray) -> str:
    """The 64-bit checksum of an array's bytes (C order), as 16 hex digits."""
    return f"{hash_bytes(a):016x}"


def _digest(obj: object) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir(home: Path, label: str, fp: dict) -> Path:
    """The parsed-cache folder for a source with fingerprint ``fp``."""
    source_key = _digest([fp["path"], fp["member"]])
    return home / "parsed" / f"{label}-{source_key}-{_digest(fp)}"


class DamagedCache(ValueError):
    """A cache folder that does not hold what its metadata says."""


def load(folder: Path, fp: dict, scale: Scale) -> dict[str, np.ndarray] | None:
    """The cached columns memory-mapped copy-on-write, or None when there is no cache for ``fp``.

    A cache that fails its checks (unreadable or edited metadata, a column of the wrong dtype or
    length, a checksum that does not match, an id below 0, a rating off ``scale``) is removed
    with a RuntimeWarning, and None is returned so that the source is parsed again.
    """
    if not folder.is_dir():
        return None
    try:
        return _checked(folder, fp, scale)
    except (DamagedCache, OSError, ValueError, KeyError, TypeError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        warnings.warn(
            f"the parsed cache {folder} is damaged ({exc}); it was removed and the ratings are "
            "parsed again from their source",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _checked(folder: Path, fp: dict, scale: Scale) -> dict[str, np.ndarray]:
    """The columns of ``folder`` once every check passed; raises DamagedCache naming the first
    that failed."""
    meta = json.loads((folder / "meta.json").read_text())
    if not isinstance(meta, dict):
        raise DamagedCache("meta.json holds no object")
    if meta.get("source") != fp:
        raise DamagedCache("meta.json names another source than the folder's name")
    if meta.get("columns") != COLUMNS or meta.get("checksum") != CHECKSUM:
        raise DamagedCache("meta.json lists other columns or another checksum")
    n = meta["n_rows"]
    sums = meta["checksums"]
    if not isinstance(n, int) or n < 1 or not isinstance(sums, dict):
        raise DamagedCache(f"meta.json has n_rows {n!r}")
    arrays = {}
    for name, dtype in COLUMNS.items():
        try:
            a = np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DamagedCache(f"{name}.npy is not a readable .npy file: {exc}") from exc
        if a.shape != (n,) or a.dtype != np.dtype(dtype) or not a.flags.c_contiguous:
            raise DamagedCache(
                f"{name}.npy holds {a.dtype} of shape {a.shape}, expected {dtype} of shape ({n},)"
            )
        # a plain ndarray view of the map: pandas and numpy treat it like any other array
        arrays[name] = a.view(np.ndarray)
        if checksum(arrays[name]) != sums.get(name):
            raise DamagedCache(f"{name}.npy does not match its checksum")
    with KERNEL_LOCK:
        faults = K.column_faults(
            arrays["user"], arrays["item"], arrays["rating"], np.float32(scale.low),
            np.float32(scale.high), np.float32(scale.step), np.int64(1 << 16),
        )  # fmt: skip
    kinds = ("a negative user id", "a negative item id", f"a rating off {scale.description}")
    for what, row in zip(kinds, faults, strict=True):
        if row >= 0:
            raise DamagedCache(f"row {int(row)} holds {what}")
    return arrays


def store(folder: Path, arrays: dict[str, np.ndarray], fp: dict, extra: dict) -> bool:
    """Write ``arrays`` to the cache folder atomically; True when written.

    The columns go to a temporary sibling folder that is renamed to ``folder`` once complete.
    Older caches of the same source are removed. When the cache cannot be written (read-only or
    full disk), a warning says so and nothing is left behind.
    """
    parent = folder.parent
    tmp = parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        for name in COLUMNS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)
        n = len(arrays["user"])
        sums = {name: checksum(arrays[name]) for name in COLUMNS}
        meta = {"source": fp, "n_rows": n, "columns": COLUMNS, "checksum": CHECKSUM,
                "checksums": sums, **extra}  # fmt: skip
        # meta.json last: a folder without it is never read
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not just lost a race with another writer
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(
            f"could not write the parsed cache to {parent} ({exc}); the ratings are loaded but "
            "will be parsed again next time. Pass a writable data_home or set FASTMF_HOME.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    _remove_stale(folder)
    return True


def _remove_stale(folder: Path) -> None:
    """Remove other cache folders of the same source (older fingerprints), and temporary
    folders that a killed process left more than a day ago."""
    prefix = folder.name.rsplit("-", 1)[0] + "-"
    for other in folder.parent.glob(prefix + "*"):
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    day_ago = time.time() - 86_400
    for tmp in folder.parent.glob(".tmp-*"):
        try:
            if tmp.stat().st_mtime < day_ago:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
