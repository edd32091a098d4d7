"""Opening a model file for reading and telling what it is, before any member is decoded."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from fastmf._version import __version__
from fastmf.errors import ModelFileError
from fastmf.serve.files.container import Archive, Malformed
from fastmf.serve.files.schema import (
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_LIMIT,
    MANIFEST_RATIO,
    MARKER_CONTENT,
    MARKER_NAME,
    ZIP_MAGIC,
)


def open_regular(target: Path) -> tuple[Any, int]:
    """The file opened for reading, refused unless it is a regular file; never blocks."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {str(target)!r}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{str(target)!r} is a folder, not a fastmf model file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(_not_regular(target, st.st_mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(target, flags | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the two looks
            raise ModelFileError(_not_regular(target, st.st_mode))
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def _not_regular(target: Path, mode: int) -> str:
    kind = (
        "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )  # fmt: skip
    return f"{str(target)!r} is {kind}, not a fastmf model file; load a file written by save"


def check_marker(head: bytes, target: Path) -> None:
    """Refuse a file that does not start with the fastmf marker member."""
    if len(head) == 0:
        raise ModelFileError(
            f"{str(target)!r} is empty (0 bytes): not a fastmf model, or a save that never "
            f"completed; save the model again"
        )
    name = MARKER_NAME.encode("ascii")
    if head[:4] != ZIP_MAGIC or head[30 : 30 + len(name)] != name:
        raise ModelFileError(
            f"{str(target)!r} is not a fastmf model file (it does not start with the fastmf "
            f"marker); load a file written by model.save or fastmf.save"
        )


def read_manifest(archive: Archive) -> Any:
    """The manifest's JSON, after the marker member is checked; bounded in size."""
    if not archive.names or archive.names[0] != MARKER_NAME:
        raise Malformed(f"its first member is not {MARKER_NAME!r}")
    if archive.read(MARKER_NAME, len(MARKER_CONTENT)) != MARKER_CONTENT:
        raise Malformed(f"member {MARKER_NAME!r} does not hold the fastmf marker")
    if MANIFEST not in archive.infos:
        raise Malformed("it has no manifest.json")
    info = archive.infos[MANIFEST]
    if info.file_size > MANIFEST_RATIO * info.compress_size + 1024:
        raise Malformed(
            f"manifest.json declares {info.file_size} bytes from {info.compress_size} compressed "
            f"bytes; a manifest may expand at most {MANIFEST_RATIO} times"
        )
    data = archive.read(MANIFEST, MANIFEST_LIMIT)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed(f"manifest.json is not valid JSON ({type(exc).__name__}: {exc})") from None


def check_version(manifest: Any, target: Path) -> None:
    """Refuse a manifest without a valid format version, or one newer than this fastmf reads."""
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version < 1
        or manifest.get("format") != MARKER_NAME
    ):
        raise corrupt(target, "its manifest has no valid format version")
    if version > FORMAT_VERSION:
        written_by = manifest.get("fastmf_version")
        raise ModelFileError(
            f"{str(target)!r} was written by a newer fastmf ({str(written_by)[:40]}, model format "
            f"version {version}); this fastmf {__version__} reads format versions up to "
            f"{FORMAT_VERSION}: upgrade fastmf to load it"
        )


def corrupt(target: Path, reason: Any) -> ModelFileError:
    """The error for a file that is a fastmf model but cannot be loaded."""
    return ModelFileError(
        f"{str(target)!r} is a truncated or corrupted fastmf model file ({reason}); it cannot be "
        f"loaded: save the model again, or copy the file again if it was transferred"
    )
