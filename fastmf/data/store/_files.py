"""The store's files: raw arrays written with running checksums, small ``.npy`` arrays, and the
manifest that names every file with its size and CRC-32 (written last: no manifest, no store)."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fastmf.data.store._errors import StoreCorruptError, StoreVersionError

FORMAT = "fastmf-rating-store"
VERSION = 1
MANIFEST = "manifest.json"
# the big arrays: one raw little-endian file each
COLUMNS: dict[str, tuple[str, np.dtype]] = {
    "users": ("users.i32", np.dtype("<i4")),
    "items": ("items.i32", np.dtype("<i4")),
    "values": ("values.f32", np.dtype("<f4")),
    "timestamps": ("timestamps.i64", np.dtype("<i8")),
}
SMALL = ("user_ids", "item_ids", "user_strata", "item_strata", "block_offsets")
# ratings per model row, written by every build since they were added (older stores lack them)
COUNTS = ("user_counts", "item_counts")
_CRC_STEP = 64 << 20


class ColumnWriter:
    """Appends arrays to a raw file, keeping its size and CRC-32 as it goes."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path = path
        self.dtype = dtype
        self.file = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by close()
        self.size = 0
        self.crc = 0

    def write(self, arr: np.ndarray) -> None:
        data = np.ascontiguousarray(arr, dtype=self.dtype)
        view = memoryview(data).cast("B")  # type: ignore[arg-type]  # arrays are buffers
        self.file.write(view)
        self.crc = zlib.crc32(view, self.crc)
        self.size += view.nbytes

    def close(self) -> dict[str, int]:
        """Flush to disk; returns the file's entry for the manifest."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return {"size": self.size, "crc32": self.crc}


def save_small(folder: Path, name: str, arr: np.ndarray) -> dict[str, int]:
    """A small array as ``name.npy``; returns its manifest entry."""
    path = folder / f"{name}.npy"
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return {"size": path.stat().st_size, "crc32": file_crc(path)}


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CRC_STEP):
            crc = zlib.crc32(chunk, crc)
    return crc


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps({"format": FORMAT, "version": VERSION, **manifest}, indent=1)
    path = folder / MANIFEST
    with open(path, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the store at ``folder``, its format and version checked."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise FileNotFoundError(f"no rating store at {folder}: the folder does not exist")
    if not path.is_file():
        raise StoreCorruptError(
            f"{folder} holds no {MANIFEST}: it is not a rating store, or its build did not "
            f"finish; build it again with RatingStore.build"
        )
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreCorruptError(f"{path} is not valid JSON ({exc}); build the store again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreCorruptError(f"{path} is not a fastmf rating store manifest")
    if manifest.get("version") != VERSION:
        raise StoreVersionError(
            f"{folder} is a rating store of format version {manifest.get('version')!r}; this "
            f"fastmf reads version {VERSION}: build it again with this version"
        )
    return manifest


def check_files(folder: Path, manifest: dict[str, Any], *, verify: bool) -> None:
    """Every file the manifest names exists with its size (and, with ``verify``, its CRC-32)."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise StoreCorruptError(f"the manifest of {folder} lists no files; build the store again")
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise StoreCorruptError(f"{path} is missing from the store; build the store again")
        size = path.stat().st_size
        if size != entry["size"]:
            raise StoreCorruptError(
                f"{path} has {size} bytes, the manifest says {entry['size']}: the file was "
                f"changed or truncated after the build; build the store again"
            )
        if verify and file_crc(path) != entry["crc32"]:
            raise StoreCorruptError(
                f"{path} does not match its checksum in the manifest: the file was changed "
                f"after the build; build the store again"
            )


def load_small(folder: Path, name: str) -> np.ndarray:
    try:
        return np.load(folder / f"{name}.npy", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StoreCorruptError(f"{folder / name}.npy cannot be read ({exc})") from exc


def ids_for_disk(ids: np.ndarray) -> tuple[np.ndarray, str]:
    """Ids as an array ``np.save`` writes without pickling, and their kind."""
    if ids.dtype.kind in "iu":
        return ids, "int"
    if all(isinstance(x, str) for x in ids):
        return ids.astype(str), "str"
    return np.array([str(int(x)) for x in ids]), "bigint"


def ids_from_disk(arr: np.ndarray, kind: str) -> np.ndarray:
    if kind == "str":
        return arr.astype(object)
    if kind == "bigint":
        return np.array([int(x) for x in arr], dtype=object)
    return arr
