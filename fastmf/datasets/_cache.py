"""Where fastmf keeps downloads and parsed ratings, and the parsed cache itself.

The parsed cache holds one folder per source file: a ``.npy`` file per column and ``meta.json``
with the source's fingerprint (path, size, modification time) and the cache format version. The
folder's name carries a hash of that fingerprint, so a changed source gets a new folder. A folder
is written under a temporary name and renamed into place when complete, so a reader finds either
a whole cache or none. Later loads memory-map the columns copy-on-write (``mmap_mode="c"``): no
copy up front, and a user who edits the DataFrame changes private pages, never the cache.
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

# Bump when the parser or the cache layout changes: older caches are then parsed again.
CACHE_VERSION = 1

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
    """What identifies a source's content cheaply: its path, zip member, size and mtime."""
    st = path.stat()
    return {
        "path": str(path.resolve()),
        "member": member,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "version": CACHE_VERSION,
    }


def _digest(obj: object) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir(home: Path, label: str, fp: dict) -> Path:
    """The parsed-cache folder for a source with fingerprint ``fp``."""
    source_key = _digest([fp["path"], fp["member"]])
    return home / "parsed" / f"{label}-{source_key}-{_digest(fp)}"


def load(folder: Path, fp: dict) -> dict[str, np.ndarray] | None:
    """The cached columns memory-mapped copy-on-write, or None when absent, stale or damaged."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("source") != fp:
            return None
        n = int(meta["n_rows"])
        arrays = {}
        for name, dtype in COLUMNS.items():
            a = np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False)
            if a.shape != (n,) or a.dtype != np.dtype(dtype):
                return None
            # a plain ndarray view of the map: pandas and numpy treat it like any other array
            arrays[name] = a.view(np.ndarray)
        return arrays
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
        meta = {"source": fp, "n_rows": n, "columns": COLUMNS, **extra}
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
