"""Read MovieLens ratings bytes into checked column arrays, with the kernels of ``_parse_kernels``.

The three ratings formats (``u.data``, ``ratings.dat``, ``ratings.csv``) differ only in their
separator and header, so one parser serves them all; :func:`sniff_format` tells them apart from
the first line, so a file in another release's format gets an error that says so.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import BinaryIO

import numba
import numpy as np

from fastmf._threads import KERNEL_LOCK
from fastmf.datasets import _parse_kernels as K


@dataclass(frozen=True)
class RatingsFormat:
    """One ratings file layout: its file name, separator and header line (if any)."""

    key: str
    filename: str
    sep: bytes
    header: tuple[str, ...] | None
    description: str


UDATA = RatingsFormat("udata", "u.data", b"\t", None, "tab-separated u.data (ml-100k)")
DAT = RatingsFormat("dat", "ratings.dat", b"::", None, "'::'-separated ratings.dat (ml-1m, ml-10m)")
CSV = RatingsFormat(
    "csv",
    "ratings.csv",
    b",",
    ("userId", "movieId", "rating", "timestamp"),
    "ratings.csv with header userId,movieId,rating,timestamp (ml-20m and later)",
)
FORMAT_BY_FILENAME = {f.filename: f for f in (UDATA, DAT, CSV)}

# Inputs smaller than this are parsed on one thread: the parallel kernel costs more to start
# (and to compile on first use) than it saves.
PARALLEL_MIN_BYTES = 8 << 20

_FIELDS = ("user", "item", "rating", "timestamp")


@dataclass(frozen=True)
class Scale:
    """The ratings a release allows: ``low``..``high`` in steps of ``step``."""

    low: float
    high: float
    step: float
    description: str


STARS_1_5 = Scale(1.0, 5.0, 1.0, "whole stars 1-5")
HALF_STARS = Scale(0.5, 5.0, 0.5, "half stars 0.5-5.0")


def first_line(buf: np.ndarray) -> tuple[str, int]:
    """The first line of ``buf`` (latin-1, without its line end) and where the next one starts."""
    head = bytes(buf[:4096])
    end = head.find(b"\n")
    nxt = end + 1 if end >= 0 else len(head)
    if end < 0:
        end = len(head)
    line = head[:end].rstrip(b"\r")
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    return line.decode("latin-1"), nxt


def sniff_format(line: str) -> RatingsFormat | None:
    """Guess the format from the first line; None when it looks like no ratings format."""
    if "::" in line:
        return DAT
    if "\t" in line:
        return UDATA
    if "," in line:
        return CSV
    return None


def _describe(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def check_format(buf: np.ndarray, fmt: RatingsFormat, where: str, release: str | None) -> int:
    """Check that ``buf`` is in format ``fmt``; return the offset of the first data line.

    Raises ValueError naming the problem: an empty file, a file in another release's format, or
    a csv header with a missing or unexpected column.
    """
    if buf.size == 0:
        raise ValueError(f"{where} is empty; expected {fmt.description}")
    line, nxt = first_line(buf)
    who = f"{release} ships" if release else "expected"
    seen = sniff_format(line)
    if fmt.header is not None:
        names = [c.strip().strip('"') for c in line.split(",")]
        if seen is CSV and not all(n.lstrip("-").replace(".", "").isdigit() for n in names):
            missing = [c for c in fmt.header if c not in names]
            extra = [c for c in names if c not in fmt.header]
            if missing or extra or tuple(names) != fmt.header:
                problems = []
                if missing:
                    problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
                if extra:
                    problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
                if not problems:
                    problems.append("columns in another order")
                raise ValueError(
                    f"{where} has header {_describe(line)}: {'; '.join(problems)}. "
                    f"{who} {fmt.description}; is this the ratings file?"
                )
            return nxt
        if seen is CSV:
            raise ValueError(
                f"{where} has no header line (first line {_describe(line)}); {who} "
                f"{fmt.description}. Add the header line if the columns are in that order."
            )
    elif seen is fmt:
        return 0
    if seen is None:
        raise ValueError(
            f"{where} does not look like a MovieLens ratings file (first line {_describe(line)}); "
            f"{who} {fmt.description}"
        )
    raise ValueError(
        f"{where} is in the format of {seen.description}, not the {fmt.description} that "
        f"{'release ' + release + ' uses' if release else 'its name implies'} "
        f"(first line {_describe(line)}). Point to the matching release name or file."
    )


def _chunk_bounds(buf: np.ndarray, start: int, n_chunks: int) -> np.ndarray:
    """Chunk edges in ``buf[start:]``, each at the start of a line."""
    size = buf.size
    edges = [start]
    for c in range(1, n_chunks):
        guess = start + (size - start) * c // n_chunks
        edge = int(K.next_line_start(buf, max(guess - 1, edges[-1]), size))
        if edge > edges[-1] and edge < size:
            edges.append(edge)
    edges.append(size)
    return np.asarray(edges, dtype=np.int64)


def parse_ratings(
    buf: np.ndarray,
    fmt: RatingsFormat,
    where: str,
    *,
    release: str | None = None,
    scale: Scale | None = None,
    parallel: bool | None = None,
) -> dict[str, np.ndarray]:
    """Parse a ratings file's bytes into ``user``, ``item``, ``rating``, ``timestamp`` arrays.

    Parameters
    ----------
    buf : ndarray of shape (n_bytes,), dtype uint8
        The whole file.
    fmt : RatingsFormat
        The format the file must be in.
    where : str
        How to name the file in error messages.
    release : str, optional
        The release the file belongs to, for messages.
    scale : Scale, optional
        The ratings the release allows; any other value is an error.
    parallel : bool, optional
        Parse with several threads; by default when the input is large.

    Returns
    -------
    dict of str to ndarray
        ``user``, ``item`` (int32), ``rating`` (float32), ``timestamp`` (int64), all of one length.
    """
    start = check_format(buf, fmt, where, release)
    if parallel is None:
        parallel = buf.size >= PARALLEL_MIN_BYTES and numba.get_num_threads() > 1
    n_chunks = 4 * numba.get_num_threads() if parallel else 1
    bounds = _chunk_bounds(buf, start, n_chunks)
    with KERNEL_LOCK:
        counts = (K.count_lines_parallel if parallel else K.count_lines)(buf, bounds)
    first = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    n = int(first[-1])
    if n == 0:
        raise ValueError(f"{where} holds no ratings; expected {fmt.description}")
    out = _empty_columns(n)
    sep = np.frombuffer(fmt.sep, dtype=np.uint8)
    kernel = K.parse_chunks_parallel if parallel else K.parse_chunks
    with KERNEL_LOCK:
        written, codes, offsets = kernel(
            buf, bounds, first[:-1], sep, out["user"], out["item"], out["rating"], out["timestamp"]
        )
    bad = np.flatnonzero(codes)
    if bad.size:
        c = int(bad[0])
        raise ValueError(_error_message(buf, int(codes[c]), int(offsets[c]), fmt, where, release))
    if not np.array_equal(written, counts):  # cannot happen: both kernels agree on empty lines
        raise RuntimeError(f"internal error parsing {where}: line counts disagree")
    if scale is not None:
        check_scale(out["rating"], scale, where, release, buf=buf, start=start)
    return out


def _empty_columns(n: int) -> dict[str, np.ndarray]:
    return {
        "user": np.empty(n, dtype=np.int32),
        "item": np.empty(n, dtype=np.int32),
        "rating": np.empty(n, dtype=np.float32),
        "timestamp": np.empty(n, dtype=np.int64),
    }


STREAM_BLOCK = 16 << 20


def parse_ratings_stream(
    stream: BinaryIO,
    size: int,
    fmt: RatingsFormat,
    where: str,
    *,
    release: str | None = None,
    scale: Scale | None = None,
    read_errors: tuple[type[BaseException], ...] = (OSError,),
) -> dict[str, np.ndarray]:
    """Like :func:`parse_ratings`, but reading ``size`` bytes from ``stream`` as it parses.

    A thread reads (and, for a zip member, inflates) the stream block by block into one buffer
    while this thread parses each block's complete lines, so inflating and parsing overlap.
    Errors of kinds ``read_errors`` raised by the stream become a ValueError naming ``where``.
    """
    buf = np.empty(max(size, 0), dtype=np.uint8)
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        pos = 0
        try:
            view = memoryview(buf)
            while not stop.is_set():
                block = stream.read(STREAM_BLOCK)
                if not block:
                    break
                if pos + len(block) > size:
                    raise ValueError(
                        f"{where} holds more than the {size:,} bytes its archive lists: the "
                        "archive is corrupt or truncated. Delete it and download it again."
                    )
                view[pos : pos + len(block)] = block
                pos += len(block)
                ready.put((pos, False))
            if pos != size and not stop.is_set():
                raise ValueError(
                    f"{where} ends after {pos:,} of its {size:,} bytes: the archive is corrupt "
                    "or truncated. Delete it and download it again."
                )
            ready.put((pos, True))
        except BaseException as exc:  # noqa: BLE001 (the parsing thread raises it)
            ready.put(exc)

    reader = threading.Thread(target=produce, name="fastmf-read", daemon=True)
    reader.start()
    try:
        return _parse_blocks(buf, ready, fmt, where, release, scale, read_errors)
    finally:
        stop.set()
        reader.join()


def _parse_blocks(buf, ready, fmt, where, release, scale, read_errors) -> dict[str, np.ndarray]:
    # Each line takes at least 8 bytes ("1,1,1,1\n"), which bounds the row count. np.empty does
    # not touch memory, so the unused tail of the columns costs address space only.
    capacity = buf.size // 8 + 1
    out = _empty_columns(capacity)
    sep = np.frombuffer(fmt.sep, dtype=np.uint8)
    start = -1
    done = 0
    row = 0
    finished = False
    while not finished:
        item = ready.get()
        while isinstance(item, tuple) and not item[1] and not ready.empty():
            item = ready.get()  # parse all that has arrived in one call
        if not isinstance(item, tuple):  # the reader failed with this exception
            _raise_read_error(item, where, read_errors)
        avail, finished = item
        if start < 0:
            if not finished and K.next_line_start(buf, 0, avail) >= avail:
                continue  # the first line is not complete yet
            start = check_format(buf[:avail], fmt, where, release)
            done = start
        end = avail if finished else int(_last_line_end(buf, done, avail))
        if end <= done:
            continue
        bounds = np.array([done, end], dtype=np.int64)
        first = np.array([row], dtype=np.int64)
        written, codes, offsets = K.parse_chunks(
            buf, bounds, first, sep, out["user"], out["item"], out["rating"], out["timestamp"]
        )
        if codes[0]:
            raise ValueError(
                _error_message(buf, int(codes[0]), int(offsets[0]), fmt, where, release)
            )
        row += int(written[0])
        done = end
    if row == 0:
        raise ValueError(f"{where} holds no ratings; expected {fmt.description}")
    for column in out.values():
        # shrink in place: realloc gives the unused tail back without copying the rows
        column.resize(row, refcheck=False)
    if scale is not None:
        check_scale(out["rating"], scale, where, release, buf=buf, start=start)
    return out


def _raise_read_error(
    exc: BaseException, where: str, read_errors: tuple[type[BaseException], ...]
) -> None:
    if not isinstance(exc, read_errors):
        raise exc
    raise ValueError(
        f"{where}: cannot read the archive ({exc}); it is corrupt or truncated. "
        "Delete it and download it again."
    ) from exc


def _last_line_end(buf: np.ndarray, lo: int, hi: int) -> int:
    """Index just past the last newline in ``buf[lo:hi]`` (``lo`` when there is none)."""
    hits = np.flatnonzero(buf[max(lo, hi - (1 << 20)) : hi] == K.NEWLINE)
    if hits.size:
        return max(lo, hi - (1 << 20)) + int(hits[-1]) + 1
    hits = np.flatnonzero(buf[lo:hi] == K.NEWLINE)
    return lo + int(hits[-1]) + 1 if hits.size else lo


def _line_at(buf: np.ndarray, pos: int) -> tuple[int, str]:
    """(1-based line number, text of that line) for byte offset ``pos``."""
    pos = min(max(pos, 0), max(buf.size - 1, 0))
    line_no = int(np.count_nonzero(buf[:pos] == K.NEWLINE)) + 1
    lo = pos
    while lo > 0 and buf[lo - 1] != K.NEWLINE:
        lo -= 1
    hi = int(K.next_line_start(buf, pos, buf.size))
    text = bytes(buf[lo : min(hi, lo + 200)]).rstrip(b"\r\n").decode("latin-1")
    return line_no, text


def _error_message(
    buf: np.ndarray, code: int, pos: int, fmt: RatingsFormat, where: str, release: str | None
) -> str:
    kind, field = divmod(code, 10)
    name = _FIELDS[field]
    line_no, text = _line_at(buf, pos)
    if kind * 10 == K.ERR_NUMBER:
        what = {
            "rating": "a number like 4 or 3.5",
            "timestamp": "an integer (seconds since 1970)",
        }.get(name, "a non-negative integer")
        problem = f"the {name} field is not {what}"
    elif kind * 10 == K.ERR_TOO_LARGE:
        problem = f"the {name} value is too large for its column"
    elif kind * 10 == K.ERR_SEPARATOR:
        problem = f"expected the separator {fmt.sep.decode()!r} after the {name} field"
        if field < 3:
            problem += " (a missing column, or another release's format?)"
    else:
        problem = "unexpected text after the timestamp (an extra column?)"
    return (
        f"{where}, line {line_no}: {problem}. The line reads {_describe(text)}; expected "
        f"{fmt.description} with 4 columns user, item, rating, timestamp."
    )


def check_scale(
    ratings: np.ndarray,
    scale: Scale,
    where: str,
    release: str | None,
    *,
    buf: np.ndarray | None = None,
    start: int = 0,
) -> None:
    """Raise ValueError when a rating is off ``scale`` (outside its range or between its steps)."""
    count, row = K.off_scale(ratings, np.float32(scale.low), np.float32(scale.high),
                             np.float32(scale.step))  # fmt: skip
    if count == 0:
        return
    count, row = int(count), int(row)
    line = ""
    if buf is not None:
        line_no = _nth_line_number(buf, start, row)
        line = f" (line {line_no})"
    who = f"release {release}" if release else "this file"
    raise ValueError(
        f"{where}: {count} rating(s) off the scale of {who}, {scale.description}; the first "
        f"is {float(ratings[row]):g} at row {row}{line}. Check that the file belongs to "
        f"{release or 'the release you meant'}."
    )


def _nth_line_number(buf: np.ndarray, start: int, row: int) -> int:
    """1-based line number in the file of data row ``row`` (counting only non-empty lines)."""
    nl = np.flatnonzero(buf[start:] == K.NEWLINE)
    header_lines = int(np.count_nonzero(buf[:start] == K.NEWLINE))
    # lines are non-empty in practice; an exact count over empty lines is not worth the cost here
    return header_lines + min(row, nl.size) + 1
