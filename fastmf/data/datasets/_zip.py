"""Read a deflated zip member as a stream, with ISA-L's inflate when the ``isal`` package is there.

Inflating ML-25M's ratings.csv (680 MB) takes about 4 s with the standard zlib and about 1 s with
ISA-L (``isal.isal_zlib``, the same interface). Both release the GIL as they inflate, so the parser
works on one block while the next is inflated. Without ``isal`` everything works the same, slower.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from types import ModuleType
from typing import IO

try:  # optional: a faster inflate with zlib's interface
    from isal import isal_zlib as _fast_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _fast_zlib = None

# What a damaged member raises while it is read.
# zipfile raises NotImplementedError for a compression method it lacks, RuntimeError for an
# encrypted member: both are a file fastmf cannot read, like a damaged one
READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError,
)  # fmt: skip
if _fast_zlib is not None:
    READ_ERRORS += (_fast_zlib.error,)

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
_RAW_BLOCK = 1 << 20  # inflates to about 3 MB of ratings text


def inflate_module() -> ModuleType:
    """The module that inflates: ``isal.isal_zlib`` when installed, else ``zlib``."""
    return _fast_zlib if _fast_zlib is not None else zlib


class _DeflatedMember(io.RawIOBase):
    """A deflated member's uncompressed bytes, checked against its CRC-32 at the end."""

    def __init__(self, path: str, info: zipfile.ZipInfo, module: ModuleType) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        try:
            self._file.seek(info.header_offset)
            header = self._file.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size:
                raise zipfile.BadZipFile(f"{info.filename}: the local header is cut short")
            signature, name_len, extra_len = _LOCAL_HEADER.unpack(header)
            if signature != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"{info.filename}: bad local header signature")
            self._file.seek(name_len + extra_len, io.SEEK_CUR)
        except BaseException:
            self._file.close()
            raise
        self._left = info.compress_size
        self._crc = 0
        self._expected_crc = info.CRC
        self._inflate = module.decompressobj(-15)
        self._crc32 = module.crc32
        self._name = info.filename
        self._pending = b""
        self._offset = 0
        self._flushed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is inflated so far when ``n`` < 0); b"" at the end, once
        the CRC-32 was checked."""
        while self._offset >= len(self._pending):
            if self._left > 0:
                raw = self._file.read(min(self._left, _RAW_BLOCK))
                if not raw:
                    raise EOFError(f"{self._name}: the compressed data ends early")
                self._left -= len(raw)
                out = self._inflate.decompress(raw)
            elif not self._flushed:
                out = self._inflate.flush()
                self._flushed = True
                if not self._inflate.eof:
                    raise zipfile.BadZipFile(f"{self._name}: the compressed data is cut short")
            else:
                if self._crc != self._expected_crc:
                    raise zipfile.BadZipFile(f"Bad CRC-32 for file {self._name!r}")
                return b""
            self._crc = self._crc32(out, self._crc)
            self._pending, self._offset = out, 0
        start = self._offset
        if start == 0 and (n < 0 or n >= len(self._pending)):
            self._offset = len(self._pending)
            return self._pending
        stop = len(self._pending) if n < 0 else min(start + n, len(self._pending))
        self._offset = stop
        return self._pending[start:stop]

    def close(self) -> None:
        self._file.close()
        super().close()


def open_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, module: ModuleType | None = None
) -> IO[bytes]:
    """A binary stream of member ``info`` of ``zf`` (opened from a file path).

    Deflated, unencrypted members are inflated here (with :func:`inflate_module`); any other
    member is left to ``zipfile``.
    """
    encrypted = info.flag_bits & 0x1
    if info.compress_type != zipfile.ZIP_DEFLATED or encrypted or not zf.filename:
        return zf.open(info)
    return _DeflatedMember(zf.filename, info, module or inflate_module())  # type: ignore[return-value]
