"""Building model files by hand, for the tests that attack ``fastmf.load``.

``members(path)`` reads a saved file as a list of (name, content); ``write_zip`` writes such a
list back as a zip archive whose every header field can be set by hand (compression method,
declared sizes, CRC, raw data), which ``zipfile`` would not let a test get wrong on purpose.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Entry:
    """One zip member: its content, and the header fields to write for it (None: correct)."""

    name: str
    content: bytes
    method: int = 0
    raw: bytes | None = None  # the bytes stored in the file (default: content, deflated if 8)
    file_size: int | None = None
    crc: int | None = None
    flags: int = 0


def members(path: Path) -> list[Entry]:
    with zipfile.ZipFile(path) as zf:
        return [Entry(i.filename, zf.read(i.filename)) for i in zf.infolist()]


def manifest_of(entries: list[Entry]) -> dict:
    return json.loads(next(e for e in entries if e.name == "manifest.json").content)


def with_manifest(entries: list[Entry], manifest: dict) -> list[Entry]:
    data = json.dumps(manifest).encode()
    return [Entry(e.name, data) if e.name == "manifest.json" else e for e in entries]


def replace(entries: list[Entry], name: str, content: bytes) -> list[Entry]:
    assert any(e.name == name for e in entries), name
    return [Entry(name, content) if e.name == name else e for e in entries]


def npy(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, arr, allow_pickle=arr.dtype == object)
    return out.getvalue()


def npy_header(descr: str, shape: tuple, fortran: bool = False, n_data: int = 0) -> bytes:
    """An npy member with a hand-written header (any shape) and ``n_data`` zero bytes."""
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(n_data)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflated_zeros(n: int, prefix: bytes = b"", chunk: int = 1 << 20) -> bytes:
    """The raw deflate stream of ``prefix`` and ``n`` zero bytes, made without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    parts = [c.compress(prefix)]
    while n > 0:
        parts.append(c.compress(zeros[: min(n, chunk)]))
        n -= chunk
    parts.append(c.flush())
    return b"".join(parts)


def write_zip(path: Path, entries: list[Entry]) -> Path:
    out = bytearray()
    central = bytearray()
    for e in entries:
        raw = e.raw if e.raw is not None else (deflate(e.content) if e.method == 8 else e.content)
        size = e.file_size if e.file_size is not None else len(e.content)
        crc = e.crc if e.crc is not None else zlib.crc32(e.content)
        name = e.name.encode()
        offset = len(out)
        fields = (20, e.flags, e.method, 0, 0x21, crc, len(raw), size, len(name))
        out += struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", *fields, 0) + name + raw
        central += (
            struct.pack("<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, offset)
            + name
        )
    start = len(out)
    out += central
    out += struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                       len(central), start, 0)  # fmt: skip
    path.write_bytes(bytes(out))
    return path
