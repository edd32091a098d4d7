"""The container of a model file, read without trusting it: zip members and their npy arrays.

Nothing here allocates more than a member's header declares, and a member's declared size is
bounded by the file: a stored member holds its bytes in the file, a deflated one cannot declare
more than deflate can expand (1032 to 1). Members are read in bounded chunks, inflation stops
at the declared size, and every member's CRC-32 is checked against the zip directory before its
content is used. Every malformed input raises :class:`Malformed` (a ValueError) naming the
member; ``fastmf.serve.files.model_file`` turns it into ``ModelFileError`` with the file's path.
"""

from __future__ import annotations

import itertools
import re
import struct
import zipfile
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["Archive", "ArraySpec", "Malformed", "MemberReader"]

CHUNK = 1 << 20
"""Bytes read (or inflated) at a time."""
DEFLATE_MAX_RATIO = 1032
"""Deflate's largest expansion: a member cannot declare more than this many bytes per byte."""
MAX_MEMBERS = 4096
"""More members than any model file holds (it has about 35)."""
NPY_HEADER_LIMIT = 10_000
"""numpy's own bound on an npy header's length."""

_LOCAL = struct.Struct("<4sHHHHHLLLHH")
_LOCAL_MAGIC = b"PK\x03\x04"
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_NPY_MAGIC = b"\x93NUMPY"
# the header numpy writes: the dict's keys sorted, a shape of plain integers, space padding
_NPY_HEADER = re.compile(
    r"\{\s*'descr'\s*:\s*'([<>|=][iuf][1248])'\s*,\s*'fortran_order'\s*:\s*(True|False)\s*,"
    r"\s*'shape'\s*:\s*\(\s*((?:\d{1,19}\s*,\s*)*(?:\d{1,19})?)\s*\)\s*,?\s*\}\s*"
)


class Malformed(ValueError):
    """A structural fault of a model file, with the member it concerns."""


class ArraySpec:
    """The dtype and shape of an npy member, from its header (nothing allocated yet)."""

    __slots__ = ("data_offset", "dtype", "file_dtype", "shape")

    def __init__(self, file_dtype: np.dtype, shape: tuple[int, ...], data_offset: int):
        self.file_dtype = file_dtype  # as stored
        self.dtype = file_dtype.newbyteorder("=")  # as loaded
        self.shape = shape
        self.data_offset = data_offset

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"ArraySpec(dtype={self.dtype.str}, shape={self.shape})"


class Archive:
    """The members of a zip file opened for reading, checked before any member is read.

    Parameters
    ----------
    fh : binary file, seekable
    size : int
        The file's size in bytes.
    """

    def __init__(self, fh: BinaryIO, size: int):
        self.fh = fh
        self.size = size
        try:
            zf = zipfile.ZipFile(fh, "r")  # parses the central directory, reads no member
            infos = zf.infolist()
            directory_start = int(getattr(zf, "start_dir", size))
        except Exception as exc:  # noqa: BLE001 - zipfile's parser raises many kinds on bad input
            raise Malformed(
                f"its zip directory is unreadable ({type(exc).__name__}: {exc})"
            ) from None
        if len(infos) > MAX_MEMBERS:
            raise Malformed(f"it has {len(infos)} members; a model file has at most {MAX_MEMBERS}")
        self.names = [info.filename for info in infos]
        seen: set[str] = set()
        for name in self.names:
            if name in seen:
                raise Malformed(f"member {name!r} appears twice in the zip directory")
            seen.add(name)
        self.infos = {info.filename: info for info in infos}
        self.data_start: dict[str, int] = {}
        spans = []
        for info in infos:
            start = self._check_member(info, min(directory_start, size))
            self.data_start[info.filename] = start
            spans.append((info.header_offset, start + info.compress_size, info.filename))
        spans.sort()
        for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
            if next_start < end:
                raise Malformed(f"members {name!r} and {next_name!r} overlap in the file")

    def _check_member(self, info: zipfile.ZipInfo, limit: int) -> int:
        """Where the member's data starts, after checking its local header and sizes."""
        name = info.filename
        if info.compress_type not in _METHODS:
            raise Malformed(
                f"member {name!r} uses zip compression method {info.compress_type}; fastmf reads "
                f"stored and deflated members only"
            )
        if info.flag_bits & 0x1:
            raise Malformed(f"member {name!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise Malformed(
                f"member {name!r} is stored but declares {info.compress_size} bytes in the file "
                f"and {info.file_size} bytes of content"
            )
        if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 64:
            raise Malformed(
                f"member {name!r} declares {info.file_size} bytes from {info.compress_size} "
                f"compressed bytes, more than deflate can expand"
            )
        if not 0 <= info.header_offset <= limit - _LOCAL.size:
            raise Malformed(f"member {name!r} starts outside the file's data")
        self.fh.seek(info.header_offset)
        raw = self.fh.read(_LOCAL.size)
        if len(raw) != _LOCAL.size:
            raise Malformed(f"member {name!r} has a truncated local header")
        magic, _, _, method, _, _, _, _, _, n_name, n_extra = _LOCAL.unpack(raw)
        if magic != _LOCAL_MAGIC:
            raise Malformed(f"member {name!r} has no local header at offset {info.header_offset}")
        if method != info.compress_type:
            raise Malformed(
                f"member {name!r} declares compression method {method} in its local header "
                f"and {info.compress_type} in the zip directory"
            )
        local_name = self.fh.read(n_name)
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        try:
            same = local_name.decode(encoding) == info.orig_filename
        except UnicodeDecodeError:
            same = False
        if not same:
            raise Malformed(f"member {name!r} is named differently in its local header")
        start = info.header_offset + _LOCAL.size + n_name + n_extra
        if start + info.compress_size > limit:
            raise Malformed(
                f"member {name!r} declares {info.compress_size} bytes but the file ends first "
                f"(the file is truncated)"
            )
        return start

    def open(self, name: str, limit: int | None = None) -> MemberReader:
        """A bounded reader of one member's content; ``limit`` caps its declared size."""
        info = self.infos.get(name)
        if info is None:
            raise Malformed(f"member {name!r} is missing")
        if limit is not None and info.file_size > limit:
            raise Malformed(f"member {name!r} declares {info.file_size} bytes, above {limit}")
        return MemberReader(self.fh, info, self.data_start[name])

    def read(self, name: str, limit: int) -> bytes:
        """A whole (small) member, CRC checked."""
        reader = self.open(name, limit)
        data = reader.read(reader.declared)
        reader.finish()
        return data

    def array_spec(self, name: str) -> ArraySpec:
        """The dtype and shape of an npy member from its header, checked against its size."""
        reader = self.open(name)
        prefix = reader.read(10)
        if len(prefix) < 10 or prefix[:6] != _NPY_MAGIC:
            raise Malformed(f"member {name!r} is not an npy array")
        major = prefix[6]
        if major == 1:
            header_len = struct.unpack("<H", prefix[8:10])[0]
            offset = 10
        elif major in (2, 3):
            header_len = struct.unpack("<I", prefix[8:10] + reader.read(2))[0]
            offset = 12
        else:
            raise Malformed(f"member {name!r} has npy format version {major}, not 1, 2 or 3")
        if header_len > NPY_HEADER_LIMIT:
            raise Malformed(f"member {name!r} has an npy header of {header_len} bytes")
        raw = reader.read(header_len)
        if len(raw) != header_len:
            raise Malformed(f"member {name!r} ends inside its npy header")
        try:
            header = raw.decode("utf-8" if major == 3 else "latin1")
        except UnicodeDecodeError:
            raise Malformed(f"member {name!r} has an undecodable npy header") from None
        match = _NPY_HEADER.fullmatch(header)
        if match is None:
            raise Malformed(
                f"member {name!r} has an npy header that does not describe a plain numeric "
                f"array: {header[:120]!r}"
            )
        descr, fortran, shape_text = match.groups()
        if fortran == "True":
            raise Malformed(f"member {name!r} holds a Fortran-ordered array")
        dtype = np.dtype(descr)
        shape = tuple(int(x) for x in shape_text.replace(",", " ").split())
        data_offset = offset + header_len
        n_bytes = dtype.itemsize
        for n in shape:
            n_bytes *= n
        if n_bytes != reader.declared - data_offset:
            raise Malformed(
                f"member {name!r} declares shape {shape} of {dtype.str} ({n_bytes} bytes) but "
                f"holds {reader.declared - data_offset} bytes of data"
            )
        return ArraySpec(dtype, shape, data_offset)

    def read_array(self, name: str, spec: ArraySpec) -> np.ndarray:
        """The array of an npy member whose header gave ``spec``, CRC checked, native order."""
        reader = self.open(name)
        reader.read(spec.data_offset)
        out = np.empty(spec.shape, dtype=spec.file_dtype)
        reader.readinto(out.reshape(-1).view(np.uint8).data)
        reader.finish()
        if not spec.file_dtype.isnative:
            out = out.astype(spec.dtype)
        return out


class MemberReader:
    """Reads one member's content in bounded chunks, never past its declared size."""

    def __init__(self, fh: BinaryIO, info: zipfile.ZipInfo, data_start: int):
        self.fh = fh
        self.name = info.filename
        self.declared = info.file_size
        self.expected_crc = info.CRC
        self.pos = data_start
        self.left_in = info.compress_size
        self.left_out = info.file_size
        self.crc = 0
        self.inflater = (
            zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        )
        self.tail = b""

    def _raw(self, n: int) -> bytes:
        n = min(n, self.left_in)
        if n <= 0:
            return b""
        self.fh.seek(self.pos)
        data = self.fh.read(n)
        if len(data) != n:
            raise Malformed(f"member {self.name!r} is truncated")
        self.pos += n
        self.left_in -= n
        return data

    def _next(self, n: int) -> bytes:
        """Up to ``n`` bytes of content (fewer only at the member's end)."""
        n = min(n, self.left_out, CHUNK)
        if n <= 0:
            return b""
        if self.inflater is None:
            data = self._raw(n)
        else:
            data = b""
            while not data:
                compressed = self.tail or self._raw(CHUNK)
                if not compressed or self.inflater.eof:
                    raise Malformed(
                        f"member {self.name!r} inflates to fewer bytes than the "
                        f"{self.declared} it declares"
                    )
                try:
                    data = self.inflater.decompress(compressed, n)
                except zlib.error as exc:
                    raise Malformed(
                        f"member {self.name!r} is not valid deflate data ({exc})"
                    ) from None
                self.tail = self.inflater.unconsumed_tail
        self.left_out -= len(data)
        self.crc = zlib.crc32(data, self.crc)
        return data

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes of content, or fewer at the member's end."""
        parts = []
        while n > 0:
            data = self._next(n)
            if not data:
                break
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def readinto(self, out: memoryview) -> None:
        """Fill ``out`` entirely, or raise: the member is shorter."""
        at = 0
        while at < len(out):
            if self.inflater is None:
                n = min(len(out) - at, CHUNK, self.left_out)
                if n <= 0:
                    break
                self.fh.seek(self.pos)
                got = self.fh.readinto(out[at : at + n])  # type: ignore[attr-defined]
                if got != n:
                    raise Malformed(f"member {self.name!r} is truncated")
                self.crc = zlib.crc32(out[at : at + n], self.crc)
                self.pos += n
                self.left_in -= n
                self.left_out -= n
            else:
                data = self._next(len(out) - at)
                if not data:
                    break
                n = len(data)
                out[at : at + n] = data
            at += n
        if at != len(out):
            raise Malformed(f"member {self.name!r} ends early")

    def finish(self) -> None:
        """Check that the content ended where declared and that its CRC-32 matches."""
        if self.left_out != 0:
            raise Malformed(f"member {self.name!r} was not read to its end")
        if self.inflater is not None:
            compressed = self.tail or self._raw(CHUNK)
            try:
                extra = self.inflater.decompress(compressed, 1) if compressed else b""
            except zlib.error as exc:
                raise Malformed(f"member {self.name!r} is not valid deflate data ({exc})") from None
            if extra:
                raise Malformed(
                    f"member {self.name!r} inflates to more than the {self.declared} bytes it "
                    f"declares"
                )
        if self.crc != self.expected_crc:
            raise Malformed(
                f"member {self.name!r} fails its CRC-32 check (the file is corrupted: "
                f"{self.crc:08x} read, {self.expected_crc:08x} expected)"
            )
